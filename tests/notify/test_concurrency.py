"""Many notify processes at once, and keepalived's SIGKILL of a STOP script's group."""

import os
import signal
import subprocess

import pytest

from harness.peers.cli import command


@pytest.mark.slow
def test_200_notify_processes_at_once_deliver_200_events_exactly_once(notifier, relay):
    notifier.configure(relay)
    env = dict(os.environ)
    procs = [subprocess.Popen(command("kachecks") + ["notify", "INSTANCE", f"VI_{i}", "MASTER", str(i)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
             for i in range(200)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
        proc.stderr.close()
    msgs = relay.wait_for(200, timeout=120)
    notifier.wait_idle(timeout=60)
    assert len(relay.messages) == 200
    assert len({m["Message-ID"] for m in msgs}) == 200
    names = sorted(m["Subject"].split("] ", 1)[1].split(":")[0] for m in msgs)
    assert names == sorted(f"VI_{i}" for i in range(200))
    assert notifier.queued() == []


@pytest.mark.slow
def test_mail_still_delivered_when_the_notify_process_group_is_sigkilled(notifier, relay):
    """keepalived runs STOP notifies in their own group and SIGKILLs it after 1 s."""
    notifier.configure(relay, spool={"batch_window": 1})  # delivery is still pending at the kill
    script = f'{" ".join(command("kachecks"))} notify INSTANCE VI_1 STOP 100; echo spooled; sleep 30'
    proc = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout.readline() == "spooled\n"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=5)
    proc.stdout.close()
    (msg,) = relay.wait_for(1, timeout=20)
    assert "VI_1: UNKNOWN -> STOP (prio 100)" in msg["Subject"]


def test_notify_process_does_not_import_the_delivery_stack(notifier, unused_port):
    """keepalived waits for this process: asyncio, aiosmtplib and requests stay out of it."""
    notifier.configure(spool={"retry_for": 0})
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    result = subprocess.run(command("kachecks") + ["notify", "INSTANCE", "VI_1", "BACKUP", "100"],
                            capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "kachecks.notify.spool" in imported  # the probe itself works
    assert not imported & {"asyncio", "aiosmtplib", "requests", "email.message", "logging"}
