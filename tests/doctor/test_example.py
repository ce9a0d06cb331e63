"""The shipped keepalived.conf (the reference deployment) is clean: no false positive.

It names /usr/bin/kachecks-http and friends, so it is read on a director where
kachecks is installed: a mount namespace where /usr/bin also holds root-owned
wrappers running this checkout's executables, inside a network namespace with
the eth0 the example uses, so keepalived -t judges it as on lvs1.
"""

import json
import os
from pathlib import Path

import pytest

from harness.peers import cli
from harness.peers.keepalived import secure_dir
from harness.peers.netns import cleanup, create_namespace
from kachecks.doctor import configtest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "packaging/debian/examples/keepalived.conf"
EXECUTABLES = ("kachecks", "kachecks-http", "kachecks-tcp", "kachecks-ldap")
PREFIX = f"kcdoc{os.getpid()}"


@pytest.fixture
def director(tmp_path):
    """run(*doctor args) on a director: kachecks in /usr/bin, an eth0, keepalived's view."""
    shims = secure_dir(tmp_path / "usr-bin")
    for name in EXECUTABLES:
        (shims / name).write_text(f'#!/bin/sh\nexec "{cli.command(name)[0]}" "$@"\n')
        os.chmod(shims / name, 0o755)
    cleanup(PREFIX)
    ns = create_namespace(f"{PREFIX}-lvs1")
    ns.ip("link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
    ns.ip("link", "set", "eth0", "up")

    def run(*args):
        mount = f"mount -t overlay overlay -o lowerdir={shims}:/usr/bin /usr/bin"
        done = ns.run(["unshare", "--mount", "sh", "-c", f'{mount} && exec "$@"', "sh",
                       "/usr/bin/kachecks", "doctor", "--json", *map(str, args)],
                      timeout=120, env=dict(os.environ))
        return done.returncode, json.loads(done.stdout or "[]"), done.stderr

    try:
        yield run
    finally:
        cleanup(PREFIX)


@pytest.mark.netns
@pytest.mark.skipif(configtest.find() is None, reason="keepalived is not installed")
def test_the_shipped_example_is_clean_keepalived_t_included(director):
    code, findings, stderr = director("--no-run", "-f", EXAMPLE)
    assert (code, findings) == (0, []), stderr
    assert "0 errors, 0 warnings" in stderr and "-t exit 0" in stderr


@pytest.mark.netns
@pytest.mark.skipif(configtest.find() is None, reason="keepalived is not installed")
def test_the_readme_s_keepalived_conf_is_clean_too(director, tmp_path):
    readme = (ROOT / "README.md").read_text()
    conf = tmp_path / "keepalived.conf"
    conf.write_text(readme.split("### keepalived.conf, the reference deployment\n\n```\n", 1)[1]
                    .split("```", 1)[0])
    code, findings, stderr = director("--no-run", "-f", conf)
    assert "virtual_server 192.168.8.142 80" in conf.read_text()
    assert (code, findings) == (0, []), stderr


@pytest.mark.netns
def test_the_shipped_example_run_against_absent_servers_only_warns(director):
    """No real server answers in the namespace: a warning each, never an error."""
    code, findings, stderr = director("--no-keepalived", "-f", EXAMPLE)
    assert code == 0, stderr
    commands = [line for line in EXAMPLE.read_text().splitlines()
                if line.strip().startswith(("misc_path ", "script "))]
    assert len(findings) == len(commands) == 5
    assert {(f["severity"], f["code"]) for f in findings} == {("warning", "unreachable")}
    assert all("192.168.8.10" in f["message"] for f in findings)


def test_the_example_where_kachecks_is_not_installed_says_so(doctor, tmp_path):
    """The same file with its programs where nothing is installed: every one is missing."""
    conf = tmp_path / "keepalived.conf"
    conf.write_text(EXAMPLE.read_text().replace("/usr/bin/", f"{tmp_path}/usr/bin/"))
    run = doctor("--no-run", "-f", conf)
    assert run.code == 1
    assert {(f["severity"], f["code"]) for f in run.findings} == {("error", "not-executable")}
    assert len(run.findings) == 10  # 5 checks and 5 notify lines
