"""A process that outlives its grace after a signal fails the test with a diagnosis taken
before it is killed (harness/signalled.py): the one way tests and peers wait for a
signalled process, so a rare "did not exit within 10 s" on a loaded CI machine says why."""

import signal
import subprocess
import sys

import pytest

from harness import signalled
from harness.wait import wait_for

IGNORING = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")
BLOCKING = ("import signal, sys, time\n"
            "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")


def started(code):
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    return proc


def test_a_process_ignoring_sigterm_fails_naming_its_ignored_signals_then_is_killed():
    proc = started(IGNORING)
    with pytest.raises(signalled.Lingered) as lingered:
        signalled.stop(proc, signal.SIGTERM, 0.5, what="the ignorer")
    message = str(lingered.value)
    assert f"the ignorer (pid {proc.pid}) did not exit within 0.5 s of SIGTERM" in message
    for field in ("State: S", "SigPnd:", "ShdPnd:", "SigBlk:", "SigCgt:", "Threads: 1",
                  "wchan:"):
        assert field in message, message
    sig_ign = next(line for line in message.splitlines() if "SigIgn:" in line)
    assert "SIGTERM" in sig_ign, message
    assert f"thread {proc.pid} (python" in message, message
    assert "syscall" in message and "waited for a CPU" in message, message
    assert "\nsystem: load " in message, message  # a starved machine looks like a stuck process
    assert proc.returncode == -signal.SIGKILL  # diagnosed first, then killed and reaped


def test_a_process_blocking_sigterm_shows_it_blocked_and_pending():
    proc = started(BLOCKING)
    with pytest.raises(signalled.Lingered) as lingered:
        signalled.stop(proc, signal.SIGTERM, 0.5)
    lines = str(lingered.value).splitlines()
    assert "SIGTERM" in next(line for line in lines if line.strip().startswith("SigBlk:"))
    assert "SIGTERM" in next(line for line in lines if line.strip().startswith("ShdPnd:"))
    assert proc.returncode == -signal.SIGKILL


def test_a_process_that_exited_but_left_its_output_held_names_the_holder():
    """communicate() waits for the pipes too: the exit was prompt, a leftover child was not."""
    # the sleep ignores SIGTERM (as the shell makes it), not SIGKILL
    proc = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 60 & echo $!"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    holder = int(proc.stdout.readline())
    with pytest.raises(signalled.Lingered) as lingered:
        signalled.stop(proc, signal.SIGTERM, 0.5, group=True)
    assert f"held open by pid {holder}: sleep 60" in str(lingered.value)
    wait_for(lambda: signalled.diagnosis(holder).startswith(f"pid {holder} is gone"), 10,
             what="the group's SIGKILL to end the holder too")


def test_a_peer_left_lingering_at_teardown_is_killed_with_a_warning_not_a_failure():
    proc = started(IGNORING)
    with pytest.warns(signalled.LingeredWarning, match="SigIgn: .*SIGTERM"):
        done = signalled.stop(proc, signal.SIGTERM, 0.5, strict=False)
    assert done.returncode == -signal.SIGKILL


def test_a_process_that_exits_on_its_signal_returns_its_status_and_output():
    proc = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True);"
                             " time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "up\n"
    done = signalled.stop(proc, signal.SIGTERM, 10)
    assert (done.returncode, done.stdout) == (-signal.SIGTERM, "")


def test_a_namespace_process_started_from_paths_stops_on_sigterm():
    """The reference lab starts its agents from Path arguments; stopping one must name it."""
    from pathlib import Path

    from harness.peers.netns import Process

    argv = [Path(sys.executable), "-c", "import time; print('up', flush=True); time.sleep(60)"]
    popen = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert popen.stdout.readline() == "up\n"
    assert Process(popen, argv, None).stop() == -signal.SIGTERM
