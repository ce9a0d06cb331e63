"""The one guard: whatever escapes an entry point is one line and a defined code."""

import subprocess
import sys
from pathlib import Path

import pytest

from kachecks.errors import KachecksError, ProbeFailure, UsageError
from kachecks.runtime import guarded
from kachecks.status import ExitCode

ROOT = Path(__file__).resolve().parents[2]


def raising(exc):
    def func():
        raise exc
    return func


@pytest.mark.parametrize("exc, line", [
    (UsageError("missing --url"), "prog: missing --url"),
    (KachecksError("spool unusable"), "prog: spool unusable"),
    (ProbeFailure("connection refused", "connect"), "prog: connection refused"),
    (KeyboardInterrupt(), "prog: interrupted"),
    (RuntimeError("boom"), "prog: internal error: RuntimeError: boom"),
    (BrokenPipeError(32, "Broken pipe"), "prog: write error: output closed"),
])
def test_any_escape_is_one_line_on_stderr_and_the_error_code(capsys, exc, line):
    assert guarded(raising(exc), prog="prog") == ExitCode.FAILURE
    captured = capsys.readouterr()
    assert captured.err == line + "\n"
    assert captured.out == ""


def test_error_code_is_the_callers_choice(capsys):
    assert guarded(raising(ValueError("x")), prog="p",
                   error_code=ExitCode.NAGIOS_UNKNOWN) == ExitCode.NAGIOS_UNKNOWN


def test_bare_usage_prints_the_message_alone(capsys):
    assert guarded(raising(UsageError("invalid port number '0'")), prog="kachecks genhash",
                   bare_usage=True) == 1
    assert capsys.readouterr().err == "invalid port number '0'\n"


def test_the_functions_code_and_arguments_pass_through(capsys):
    assert guarded(lambda a, b=0: a + b, 5, b=7, prog="p") == 12
    assert guarded(lambda: None, prog="p") == ExitCode.OK
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("code, expected", [(None, 0), (0, 0), (3, 3), ("bye", 1)])
def test_system_exit_from_a_library_becomes_a_returned_code(capsys, code, expected):
    assert guarded(raising(SystemExit(code)), prog="p") == expected
    assert capsys.readouterr().err == ("p: bye\n" if code == "bye" else "")


def test_report_receives_the_error_line(capsys):
    seen = []
    guarded(raising(UsageError("bad")), prog="p", report=seen.append)
    assert seen == ["p: bad"]


class FullStdout:
    """A stdout whose buffered text cannot be written out."""

    def write(self, text):
        return len(text)

    def flush(self):
        raise OSError(28, "No space left on device")

    def fileno(self):
        return sys.__stdout__.fileno()


def test_output_lost_after_success_is_a_failure_with_one_line(capsys, monkeypatch):
    monkeypatch.setattr("os.dup2", lambda *a: None)  # keep pytest's own stdout
    monkeypatch.setattr(sys, "stdout", FullStdout())
    assert guarded(lambda: print("digest"), prog="p") == ExitCode.FAILURE
    assert capsys.readouterr().err == "p: write error: No space left on device\n"


def test_output_lost_after_a_failure_keeps_that_failure_and_says_nothing_more(capsys,
                                                                               monkeypatch):
    monkeypatch.setattr("os.dup2", lambda *a: None)
    monkeypatch.setattr(sys, "stdout", FullStdout())
    assert guarded(lambda: 7, prog="p") == 7
    assert capsys.readouterr().err == ""


def test_a_write_to_a_full_device_is_one_line_and_exit_1():
    code = ("import sys\nfrom kachecks.runtime import guarded\n"
            "sys.exit(guarded(lambda: print('digest'), prog='p'))\n")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-c", code], stdout=full, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT, timeout=20)
    assert proc.returncode == 1
    assert len(proc.stderr.splitlines()) == 1
    assert "No space left on device" in proc.stderr and "Traceback" not in proc.stderr
