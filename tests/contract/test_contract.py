"""The exit-code contract (docs/reference.md, "Exit codes"), pinned on a sample check."""

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import signalled
from harness.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]


def sample(*args, **kw):
    return subprocess.run([sys.executable, "-m", "tests.contract.sample_check", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=20, **kw)


def test_healthy_exits_0_with_one_status_line():
    proc = sample()
    assert proc.returncode == 0
    assert proc.stdout == "SAMPLE OK - all good\n"


def test_unhealthy_exits_1_with_reason():
    proc = sample("--behave", "fail")
    assert proc.returncode == 1
    assert proc.stdout == "SAMPLE FAIL - md5 mismatch (got aa, want bb)\n"


@pytest.mark.parametrize("args", [["--no-such-option"], ["--timeout", "zero"], ["--timeout", "-1"],
                                  ["--behave", "usage"], ["stray"], ["--weight"]])
def test_usage_errors_exit_1_with_one_line_and_no_traceback(args):
    proc = sample(*args)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1
    assert "Traceback" not in proc.stderr and "error" in proc.stderr


def test_internal_error_exits_1_not_a_traceback():
    proc = sample("--behave", "crash")
    assert proc.returncode == 1
    assert "internal error: RuntimeError: boom" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [["--behave", "fail"], ["--behave", "crash"], ["--bogus"]])
def test_dynamic_never_turns_a_failure_into_2(args):
    assert sample("--dynamic", *args).returncode == 1


def test_dynamic_healthy_exits_2_plus_weight():
    assert sample("--dynamic").returncode == 3  # default weight 1
    assert sample("--dynamic", "--weight", "10").returncode == 12
    assert sample("--dynamic", "--behave", "weight", "--found-weight", "0").returncode == 2
    assert sample("--dynamic", "--behave", "weight", "--found-weight", "999").returncode == 255


def test_drain_file_drains(tmp_path):
    drain = tmp_path / "drain"
    assert sample("--drain-file", drain, "--dynamic").returncode == 3
    drain.touch()
    proc = sample("--drain-file", drain, "--dynamic")
    assert proc.returncode == 2
    assert "DRAIN" in proc.stdout
    assert sample("--drain-file", drain).returncode == 1


def test_nagios_codes_and_perfdata():
    ok = sample("--nagios")
    assert ok.returncode == 0
    assert ok.stdout == "SAMPLE OK: all good | time=0.25s\n"
    assert sample("--nagios", "--behave", "warn").returncode == 1
    assert sample("--nagios", "--behave", "fail").returncode == 2
    unknown = sample("--nagios", "--bogus")
    assert unknown.returncode == 3 and unknown.stdout.startswith("SAMPLE UNKNOWN: ")


def test_dynamic_and_nagios_exclude_each_other():
    assert sample("--dynamic", "--nagios").returncode == 3


def test_verbose_prints_the_cause_then_the_details():
    assert sample("--verbose").stdout.splitlines() == [
        "SAMPLE OK - all good", "cause: L7OK: the service answered as expected", "detail line"]
    assert sample("--verbose", "--behave", "fail").stdout.splitlines() == [
        "SAMPLE FAIL - md5 mismatch (got aa, want bb)",
        "cause: L7RSP at digest: malformed or unexpected answer: digest, regex, no LDAP entry,"
        " stale replica"]


def test_syslog_only_on_state_change(syslog_socket, tmp_path):
    behaviour = tmp_path / "behave"

    def run_as(what):
        behaviour.write_text(what)
        assert sample("--behave-file", behaviour).returncode == (0 if what == "ok" else 1)
        return syslog_socket()

    first = run_as("ok")
    assert len(first) == 1 and "[192.0.2.1]:80 UP: all good" in first[0]  # first run: a change
    assert run_as("ok") == []
    down = run_as("fail")
    assert len(down) == 1
    assert "kachecks-sample[" in down[0] and "[192.0.2.1]:80 DOWN: md5 mismatch" in down[0]
    assert down[0].startswith("<28>")  # daemon.warning
    assert run_as("fail") == []
    up = run_as("ok")
    assert len(up) == 1 and "[192.0.2.1]:80 UP: all good" in up[0]


def test_quiet_logs_nothing(syslog_socket):
    sample("--quiet", "--behave", "fail")
    assert syslog_socket() == []


def test_deadline_expiry_names_the_phase():
    proc = sample("--behave", "hang", "--timeout", "0.3")
    assert proc.returncode == 1
    assert "timeout after 0.3 s during read" in proc.stdout


@pytest.mark.slow
def test_watchdog_ends_a_probe_that_ignores_the_deadline():
    started = time.monotonic()
    proc = sample("--behave", "stuck", "--timeout", "0.5")
    assert proc.returncode == 1
    assert time.monotonic() - started < 2.5
    assert "Traceback" not in proc.stdout + proc.stderr


def writer_once_read(fifo):
    """A write end of ``fifo`` once a reader has opened it, else None."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # no reader yet
            return None
        raise


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("behave", ["hang", "stuck"])
def test_signal_mid_probe_exits_1_promptly(signum, behave, tmp_path):
    behave_file = tmp_path / "behave"
    os.mkfifo(behave_file)  # the probe's first act is opening it: that is the probe started
    proc = subprocess.Popen([sys.executable, "-m", "tests.contract.sample_check",
                             "--behave-file", behave_file, "--timeout", "20"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writer = wait_for(lambda: writer_once_read(behave_file), 10, what="the probe to start")
    os.write(writer, behave.encode())
    os.close(writer)
    sent = time.monotonic()
    done = signalled.stop(proc, signum, 5)
    out, err = done.stdout, done.stderr
    assert proc.returncode == 1
    assert time.monotonic() - sent < 0.5
    assert "Traceback" not in out + err


def test_help_lists_common_options():
    proc = sample("--help")
    assert proc.returncode == 0
    for option in ("--timeout", "--dynamic", "--drain-file", "--nagios", "--fwmark", "--bind"):
        assert option in proc.stdout
