"""Configurations with planted problems: each is found at its file and line, with its code.

A planted problem carries a comment ``# expect: SEVERITY CODE`` (``expect(ID)``:
only when read as director ID, ``-i ID``); keepalived drops comments, so the
marker changes nothing it reads. Clean configurations give no finding at all.
"""

import re
import subprocess

import pytest

from kachecks.doctor import configtest, syntax

MARKER = re.compile(r"expect(?:\((?P<id>[\w.-]+)\))?: (?P<severity>error|warning) (?P<code>[a-z-]+)")
PLANTED = ["typos", "includes", "definitions", "braces", "order"]
KEEPALIVED = configtest.find()
UNKNOWN = re.compile(r"^\((?:(?P<file>.*): )?Line (?P<line>\d+)\) Unknown keyword '(?P<word>[^']*)'$")
NOT_TRACKED = re.compile(r"^\((?:(?P<file>.*): )?Line (?P<line>\d+)\) \(\w+\) track \w+ \S+ not found")


def expected(directory, config_id):
    """{(file, line, severity, code)} the markers under ``directory`` promise."""
    found = set()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        for number, text in enumerate(path.read_text().splitlines(), 1):
            for m in MARKER.finditer(text):
                if m["id"] in (None, config_id):
                    found.add((str(path.relative_to(directory)), number, m["severity"], m["code"]))
    return found


@pytest.mark.parametrize("name,config_id", [(n, "lvs1") for n in PLANTED] + [("definitions", "lvs2")])
def test_each_planted_problem_is_found_at_its_file_and_line(doctor, corpus, name, config_id):
    run = doctor("--no-run", "-f", "keepalived.conf", "-i", config_id, cwd=corpus / name)
    want = expected(corpus / name, config_id)
    assert want, "the corpus plants nothing"
    assert run.where() == want, run
    assert run.code == 1


def test_the_seeds_configuration_read_verbatim_has_its_nopreempt_found(doctor, corpus):
    run = doctor("--no-run", "-f", "seed-keepalived-tp.conf", cwd=corpus)
    assert run.code == 1
    assert run.where() == {("seed-keepalived-tp.conf", 25, "error", "syntax")}, run
    message = run.findings[0]["message"]
    assert "'Nopreempt'" in message and "case-sensitive" in message and "'nopreempt'" in message


def test_text_output_is_one_compiler_style_line_per_finding(doctor, corpus):
    run = doctor("--no-run", "-f", "seed-keepalived-tp.conf", cwd=corpus, as_json=False)
    assert run.stdout.splitlines() == [
        "seed-keepalived-tp.conf:25: error: syntax: unknown keyword 'Nopreempt' in vrrp_instance:"
        " keywords are case-sensitive, keepalived ignores this line; did you mean 'nopreempt'?"]
    assert run.stderr.startswith("kachecks doctor: 1 error, 0 warnings, 1 file read")


def test_a_clean_configuration_gives_no_finding_and_exit_0(doctor, corpus):
    run = doctor("--no-run", "-f", "keepalived.conf", "-i", "lvs1", cwd=corpus / "clean")
    assert (run.code, run.findings) == (0, []), run
    assert "0 errors, 0 warnings, 3 files read" in run.stderr


@pytest.mark.skipif(KEEPALIVED is None, reason="keepalived is not installed")
@pytest.mark.parametrize("name", ["typos", "includes", "definitions"])
def test_unknown_keywords_are_where_keepalived_t_itself_finds_them(doctor, corpus, name):
    """keepalived is the oracle for line numbers through includes, definitions and @ lines."""
    directory = corpus / name
    said = subprocess.run([KEEPALIVED, "-t", "-f", "keepalived.conf", "-i", "lvs1"], cwd=directory,
                          capture_output=True, text=True, timeout=60)
    installed = configtest.version(KEEPALIVED)
    theirs = set()
    for line in (said.stdout + said.stderr).splitlines():
        m = UNKNOWN.match(line.strip())
        too_new = syntax.since(m["word"]) if m else None
        if m and not (too_new and tuple(map(int, too_new.split("."))) > installed):
            theirs.add((_ours(directory, m["file"]), int(m["line"])))
    run = doctor("--no-run", "-f", "keepalived.conf", "-i", "lvs1", cwd=directory)
    ours = {(f["file"], f["line"]) for f in run.findings if f["message"].startswith("unknown keyword")}
    assert theirs and ours == theirs


def _ours(directory, name):
    """keepalived names an include as its glob matched it, relative to the including file."""
    if name is None:
        return "keepalived.conf"
    matches = [p for p in directory.rglob(name.rsplit("/", 1)[-1])]
    assert len(matches) == 1, name
    return str(matches[0].relative_to(directory))


@pytest.mark.skipif(KEEPALIVED is None, reason="keepalived is not installed")
def test_keepalived_t_messages_are_merged_without_repeating_ours(doctor, corpus):
    run = doctor("--no-run", "-f", "seed-keepalived-tp.conf", cwd=corpus, keepalived=True)
    nopreempt = [f for f in run.findings if "Nopreempt" in f["message"]]
    assert [(f["line"], f["code"]) for f in nopreempt] == [(25, "syntax")]
    assert not nopreempt[0]["message"].startswith("keepalived")  # ours, keepalived's dropped
    merged = [f for f in run.findings if f["message"].startswith("keepalived ")]
    assert all(f["code"] == "syntax" for f in merged)
    assert f"keepalived {'.'.join(map(str, configtest.version(KEEPALIVED)))} -t exit" in run.stderr


@pytest.mark.skipif(KEEPALIVED is None, reason="keepalived is not installed")
def test_tracked_names_defined_too_late_are_where_keepalived_t_finds_them(doctor, corpus):
    directory = corpus / "order"
    said = subprocess.run([KEEPALIVED, "-t", "-f", "keepalived.conf"], cwd=directory,
                          capture_output=True, text=True, timeout=60)
    theirs = {int(m["line"]) for line in (said.stdout + said.stderr).splitlines()
              if (m := NOT_TRACKED.match(line.strip()))}
    run = doctor("--no-run", "-f", "keepalived.conf", cwd=directory)
    assert theirs and {f["line"] for f in run.findings} == theirs
