"""A signal at any moment of a check's life ends it with exit 1 and one line.

keepalived sends SIGTERM at misc_timeout (and SIGKILL later); an
administrator's terminal sends SIGINT and, when it closes, SIGHUP. Whenever
one lands — while the check's own modules are still loading, mid-probe,
while it reports — the check must exit 1 (the status keepalived reads as
"down"), never die by the signal and never print a traceback.

A random delay cannot aim at "while the modules load" reliably, so a
sitecustomize hook on PYTHONPATH sends the signal from inside the
process exactly when a given module starts importing, or when the probe
opens its connection (the ``socket.connect`` audit event).
"""

import json
import os
import signal
import subprocess
import time

import pytest

from harness import signalled
from harness.redteam import assert_clean, spawn
from harness.peers import cli

HOOK = '''\
import os
import sys

_at = os.environ.get("KACHECKS_TEST_SIGNAL_AT", "")
_signum = int(os.environ.get("KACHECKS_TEST_SIGNAL", "15"))


def _fire():
    os.kill(os.getpid(), _signum)


class _ImportTrap:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == _at:
            sys.meta_path.remove(_ImportTrap)
            _fire()
        return None


if _at.startswith("audit:"):
    _fired = []

    def _audit(event, args):
        if event == _at[len("audit:"):] and not _fired:
            _fired.append(event)
            _fire()

    sys.addaudithook(_audit)
elif _at:
    sys.meta_path.insert(0, _ImportTrap)
'''

SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]
SIGNAL_IDS = [s.name for s in SIGNALS]


@pytest.fixture
def signal_hook(tmp_path, monkeypatch):
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(HOOK)
    # before what is already there: pass 2 of scripts/test finds kachecks by PYTHONPATH
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(hook_dir), *filter(None, [os.environ.get("PYTHONPATH")])]))

    def at(where, signum):
        monkeypatch.setenv("KACHECKS_TEST_SIGNAL_AT", where)
        monkeypatch.setenv("KACHECKS_TEST_SIGNAL", str(int(signum)))

    return at


def _assert_terminated(finished, signum):
    assert finished.returncode == 1, finished
    assert_clean(finished)
    assert f"terminated by {signal.Signals(signum).name}" in finished.output, finished


# (moment, module or audit event): the check's own modules load after the
# signal handlers are in place; the connection is mid-probe.
MOMENTS = [
    ("loading the check module", "kachecks.checks.tcp"),
    ("loading the contract", "kachecks.checks.contract"),
    ("loading the option parser", "kachecks.argspec"),
    ("connecting", "audit:socket.connect"),
]


@pytest.mark.parametrize("signum", SIGNALS, ids=SIGNAL_IDS)
@pytest.mark.parametrize("moment, where", MOMENTS, ids=[m for m, _ in MOMENTS])
def test_a_signal_at_any_moment_of_a_check_exits_1_without_a_traceback(
        signal_hook, mute, signum, moment, where):
    signal_hook(where, signum)
    finished = spawn("kachecks-tcp", f"127.0.0.1:{mute.port}", "--expect", "never",
                     "--timeout", "20")
    _assert_terminated(finished, signum)
    assert finished.elapsed < 10, finished


@pytest.mark.parametrize("signum", SIGNALS, ids=SIGNAL_IDS)
def test_a_signal_while_reporting_a_healthy_result_exits_1(signal_hook, web, signum):
    """Told to stop, a check never claims success: keepalived stopped waiting anyway."""
    signal_hook("kachecks.syslogger", signum)  # loaded to log the first state
    finished = spawn("kachecks-tcp", f"127.0.0.1:{web.port}")
    assert finished.returncode == 1, finished
    assert_clean(finished)


@pytest.mark.parametrize("signum", SIGNALS, ids=SIGNAL_IDS)
@pytest.mark.parametrize("check, where", [
    (("kachecks-http", "--url", "http://127.0.0.1:{port}/"), "kachecks.checks.http"),
    (("kachecks", "check", "http", "--url", "http://127.0.0.1:{port}/"), "kachecks.checks.http"),
    (("kachecks", "check", "tcp", "127.0.0.1:{port}", "--expect", "never"), "kachecks.argspec"),
    (("kachecks", "genhash", "-s", "127.0.0.1", "-p", "{port}", "-u", "/"),
     "kachecks.genhash.cli"),
    (("kachecks", "genhash", "-s", "127.0.0.1", "-p", "{port}", "-u", "/"),
     "audit:socket.connect"),
], ids=["kachecks-http", "kachecks check http", "kachecks check tcp", "genhash loading",
        "genhash connecting"])
def test_a_signal_in_the_other_forked_commands_exits_1(signal_hook, mute, signum, check, where):
    signal_hook(where, signum)
    args = [word.format(port=mute.port) for word in check]
    finished = spawn(*args, "-t" if "genhash" in args else "--timeout", "20")
    _assert_terminated(finished, signum)


THREAD_HOOK = '''\
import faulthandler
import json
import os
import signal

import _socket

_log = os.environ["KACHECKS_TEST_THREAD_MASKS"]


def _note(where):
    blocked = sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, ()))
    with open(_log, "a") as out:
        out.write(json.dumps({"where": where, "blocked": blocked}) + "\\n")


_later = faulthandler.dump_traceback_later


def _starting_the_watchdog(*args, **kwargs):  # the mask its thread is born with
    _note("faulthandler's watchdog thread")
    return _later(*args, **kwargs)


_getaddrinfo = _socket.getaddrinfo


def _resolving(*args, **kwargs):  # runs on the resolver thread: its own mask
    _note("the resolver thread")
    return _getaddrinfo(*args, **kwargs)


faulthandler.dump_traceback_later = _starting_the_watchdog
_socket.getaddrinfo = _resolving
'''


def test_every_thread_a_check_starts_is_born_deaf_to_the_terminating_signals(
        tmp_path, monkeypatch, web):
    """Python runs handlers in the main thread only; a signal the kernel hands another
    thread (one just started takes any it does not block yet) leaves the main thread
    asleep in poll(2) until --timeout. Seen under load: kachecks-tcp mid-probe, SIGHUP
    taken by faulthandler's watchdog thread as it started, exit 20 s later."""
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(THREAD_HOOK)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(hook_dir), *filter(None, [os.environ.get("PYTHONPATH")])]))
    masks = tmp_path / "masks"
    monkeypatch.setenv("KACHECKS_TEST_THREAD_MASKS", str(masks))
    finished = spawn("kachecks-tcp", f"localhost:{web.port}")  # a name: resolved on a thread
    assert finished.returncode == 0, finished
    notes = [json.loads(line) for line in masks.read_text().splitlines()]
    assert {note["where"] for note in notes} == {"faulthandler's watchdog thread",
                                                 "the resolver thread"}, notes
    for note in notes:
        assert {signal.SIGHUP, signal.SIGINT, signal.SIGTERM} <= set(note["blocked"]), note


ELSEWHERE_HOOK = '''\
import signal
import sys
import threading
import time


def _elsewhere():
    time.sleep(0.5)  # the check waits in poll(2) by now
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)  # handled on this thread


def _audit(event, args):
    if event == "socket.connect" and not _started:
        _started.append(threading.Thread(target=_elsewhere, daemon=True))
        _started[0].start()


_started = []
sys.addaudithook(_audit)
'''


def test_a_signal_handled_off_the_main_thread_still_ends_the_probe_at_once(tmp_path,
                                                                        monkeypatch, mute):
    """What a signal landing just before the main thread enters poll(2), or on another
    thread, leaves: Python's handler pending while the main thread sleeps in poll. The
    probe's poll includes Python's wakeup descriptor, which such a signal makes readable."""
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(ELSEWHERE_HOOK)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(hook_dir), *filter(None, [os.environ.get("PYTHONPATH")])]))
    finished = spawn("kachecks-tcp", f"127.0.0.1:{mute.port}", "--expect", "never",
                     "--timeout", "20", timeout=30)
    _assert_terminated(finished, signal.SIGTERM)
    assert finished.elapsed < 10, finished  # not at the timeout (20 s)


RESOLVING_HOOK = '''\
import _socket
import signal
import threading
import time

_getaddrinfo = _socket.getaddrinfo


def _slow(*args, **kwargs):  # a resolver that takes its time, on the resolver thread
    time.sleep(20)
    return _getaddrinfo(*args, **kwargs)


def _elsewhere():
    time.sleep(1.0)  # the check waits for the resolver by now
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)  # handled on this thread


_socket.getaddrinfo = _slow
threading.Thread(target=_elsewhere, daemon=True).start()
'''


def test_a_signal_handled_off_the_main_thread_ends_a_wait_for_the_resolver(tmp_path,
                                                                         monkeypatch, mute):
    """The same, while the main thread waits for a name to resolve on another thread (a
    lock, not a poll): the wait goes round every interrupt.WAKE, so the pending handler
    runs then, not when the resolver returns."""
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(RESOLVING_HOOK)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(hook_dir), *filter(None, [os.environ.get("PYTHONPATH")])]))
    finished = spawn("kachecks-tcp", f"localhost:{mute.port}", "--timeout", "30", timeout=40)
    _assert_terminated(finished, signal.SIGTERM)
    assert finished.elapsed < 10, finished  # not when the resolver returns (20 s)


def _block_terminating_signals():
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)


@pytest.mark.parametrize("signum", SIGNALS, ids=SIGNAL_IDS)
def test_a_signal_held_back_while_the_interpreter_starts_is_handled_once_it_can_be(mute, signum):
    """What a starter that blocks the signals across exec (env --block-signal) gets:
    even a signal sent at once, before any Python runs, ends in exit 1 and one line."""
    proc = subprocess.Popen(cli.command("kachecks-tcp") + [f"127.0.0.1:{mute.port}", "--expect",
                                                           "never", "--timeout", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_block_terminating_signals)
    done = signalled.stop(proc, signum, 15)
    out, err = done.stdout, done.stderr
    assert proc.returncode == 1, (out, err)
    assert "Traceback" not in out + err
    assert f"terminated by {signal.Signals(signum).name}" in out + err


def _mid_probe(mute):
    proc = subprocess.Popen(cli.command("kachecks-tcp") + [f"127.0.0.1:{mute.port}", "--expect",
                                                           "never", "--timeout", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert mute.connected.wait(10), "the check never connected"
    return proc


@pytest.mark.parametrize("signum", SIGNALS, ids=SIGNAL_IDS)
def test_a_signal_mid_probe_from_outside_exits_1_promptly(mute, signum):
    proc = _mid_probe(mute)
    sent = time.monotonic()
    done = signalled.stop(proc, signum, 10, what="kachecks-tcp mid-probe")
    out, err = done.stdout, done.stderr
    assert proc.returncode == 1, (out, err)
    assert time.monotonic() - sent < 2
    assert "Traceback" not in out + err
    assert f"TCP FAIL - terminated by {signal.Signals(signum).name}" in out


def test_a_burst_of_signals_still_exits_1(mute):
    """keepalived's SIGTERM, an operator's Ctrl-C and a closing terminal, all at once."""
    proc = _mid_probe(mute)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        os.kill(proc.pid, signum)
    done = signalled.finish(proc, 10, sent="a burst of SIGTERM, SIGINT, SIGHUP, SIGTERM")
    out, err = done.stdout, done.stderr
    assert proc.returncode == 1, (out, err)
    assert "Traceback" not in out + err
