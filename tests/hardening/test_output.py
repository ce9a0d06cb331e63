"""Lost output is not lost health: a check exits by its verdict, genhash by its output.

keepalived runs checks with stdout on /dev/null, but an administrator's
wrapper may close it (``>&-``) or point it at a full disk. The check's exit
code is what keepalived acts on, so a healthy server stays healthy; genhash
exists to print a digest, so there the lost output is the failure, said in
one line.
"""

import os
import subprocess

import pytest

from harness.redteam import assert_clean, single_line, spawn
from harness.peers import cli


def _closed_stdout():
    os.close(1)


def _full_stdout():
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, 1)
    os.close(full)


def _closed_stdout_and_stderr():
    os.close(1)
    os.close(2)


OUTPUTS = {"closed": _closed_stdout, "full": _full_stdout}


def _spawn_with(output, *args):
    return spawn(*args, stdout=None, preexec_fn=OUTPUTS[output])


@pytest.mark.parametrize("output", list(OUTPUTS))
@pytest.mark.parametrize("extra, code", [((), 0), (("--dynamic",), 3), (("--dynamic", "--weight",
                                                                            "10"), 12),
                                         (("--nagios",), 0), (("--verbose",), 0)],
                         ids=["plain", "dynamic", "dynamic-weight", "nagios", "verbose"])
def test_a_healthy_check_exits_by_its_verdict_whatever_happened_to_stdout(web, output, extra,
                                                                           code):
    finished = _spawn_with(output, "kachecks-http", "--url", f"http://{web.address}/", *extra)
    assert finished.returncode == code, finished
    assert_clean(finished)


@pytest.mark.parametrize("output", list(OUTPUTS))
def test_an_unhealthy_check_with_lost_stdout_still_exits_1(unused_port, output):
    finished = _spawn_with(output, "kachecks-tcp", f"127.0.0.1:{unused_port}")
    assert finished.returncode == 1, finished
    assert_clean(finished)


@pytest.mark.parametrize("output", list(OUTPUTS))
def test_kachecks_check_with_lost_stdout_exits_by_its_verdict(web, output):
    finished = _spawn_with(output, "kachecks", "check", "tcp", f"127.0.0.1:{web.port}")
    assert finished.returncode == 0, finished
    assert_clean(finished)


def test_a_healthy_check_with_no_stdout_and_no_stderr_exits_0(web):
    proc = subprocess.run(cli.command("kachecks-tcp") + [f"127.0.0.1:{web.port}"],
                          preexec_fn=_closed_stdout_and_stderr, timeout=20)
    assert proc.returncode == 0


@pytest.mark.parametrize("output", list(OUTPUTS))
@pytest.mark.parametrize("args", [("-s", "127.0.0.1", "-p", "{port}", "-u", "/"), ("--help",)],
                         ids=["digest", "help"])
def test_genhash_with_lost_stdout_says_so_in_one_line_and_exits_1(web, output, args):
    finished = _spawn_with(output, "kachecks", "genhash",
                           *[a.format(port=web.port) for a in args])
    assert finished.returncode == 1, finished
    assert_clean(finished)
    assert len(finished.stderr.splitlines()) == 1, finished
    assert "write error" in finished.stderr, finished


@pytest.mark.parametrize("output", list(OUTPUTS))
@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_a_checks_help_that_cannot_be_printed_is_one_write_error_line(output, flag):
    finished = _spawn_with(output, "kachecks-tcp", flag)
    assert finished.returncode == 1, finished
    assert_clean(finished)
    assert single_line(finished.stderr).startswith("kachecks-tcp: write error: "), finished
