"""`kachecks doctor` as a command: help with examples, man page, output formats."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.peers import cli
from kachecks.doctor.findings import CODES

DEBIAN = Path(__file__).resolve().parents[2] / "packaging" / "debian"


def test_kachecks_lists_doctor_and_its_help_explains_every_code_with_examples():
    listed = cli.run("kachecks", "--help")
    assert re.search(r"^  doctor +Audit keepalived.conf", listed.stdout, re.M)
    shown = cli.run("kachecks", "doctor", "--help", env={"COLUMNS": "80"})
    assert shown.returncode == 0 and shown.stderr == ""
    for code in CODES:
        assert re.search(rf"^    {code} ", shown.stdout, re.M), code
    assert "kachecks doctor && systemctl reload keepalived" in shown.stdout
    assert "Examples:" in shown.stdout


def test_json_findings_have_exactly_the_five_fields(doctor, corpus):
    run = doctor("--no-run", "-f", corpus / "typos" / "keepalived.conf", "-i", "lvs1")
    assert run.findings and all(set(f) == {"file", "line", "severity", "code", "message"}
                                for f in run.findings)
    assert all(isinstance(f["line"], int) for f in run.findings)


def test_quiet_drops_only_the_summary(doctor, corpus):
    loud = doctor("--no-run", "-f", corpus / "seed-keepalived-tp.conf", as_json=False)
    quiet = doctor("--no-run", "-q", "-f", corpus / "seed-keepalived-tp.conf", as_json=False)
    assert quiet.stdout == loud.stdout and loud.stderr and quiet.stderr == ""
    assert quiet.code == loud.code == 1


@pytest.mark.slow
def test_the_man_page_kachecks_doctor_1_is_made_from_the_help(tmp_path):
    """man-from-help gives `kachecks doctor` a page of its own beside kachecks(1)."""
    build = tmp_path / "debian"
    shutil.copytree(DEBIAN / "man-include", build / "man-include")
    (build / "man").mkdir()
    env = dict(os.environ, PYTHONPATH=str(DEBIAN.parents[1]), SOURCE_DATE_EPOCH="1767225600")
    with open(build / "man" / "kachecks.1", "w") as out:
        subprocess.run([str(DEBIAN / "man-from-help"), cli.command("kachecks")[0], "0.1.0",
                        str(build / "man-include" / "kachecks.h2m")], stdout=out, env=env, check=True)
    page = build / "man" / "kachecks-doctor.1"
    text = page.read_text().replace("\\-", "-")
    assert text.startswith('.TH KACHECKS-DOCTOR 1 "January 2026" "kachecks-doctor 0.1.0"')
    assert re.search(r'^\.SH "?NAME"?\nkachecks-doctor - ', text, re.M)
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", cli.run("kachecks", "doctor", "--help").stdout))
    assert options and not [o for o in options if o not in text]
    rendered = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", str(page)], capture_output=True,
                              text=True, env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin"})
    assert rendered.returncode == 0 and rendered.stderr == "", rendered.stderr
    assert "EXIT STATUS" in rendered.stdout and "kachecks doctor && systemctl reload" in rendered.stdout
    assert "kachecks-doctor(1)" in subprocess.run(
        ["man", "-l", str(build / "man" / "kachecks.1")], capture_output=True, text=True,
        env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin"}).stdout
