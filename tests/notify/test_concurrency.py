"""Many notify processes at once, and keepalived's SIGKILL of a STOP script's group."""

import os
import shlex
import signal
import subprocess
import time

import pytest

from harness import signalled
from harness.peers.cli import command
from harness.peers.smtp import HoldFirst, SmtpSink
from kachecks.notify import event as events
from kachecks.notify import spool as store


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
    script = f"{shlex.join(command('kachecks'))} notify INSTANCE VI_1 STOP 100; echo spooled; sleep 30"
    proc = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout.readline() == "spooled\n"
    signalled.stop(proc, signal.SIGKILL, 5, group=True)  # the sleep is killed too: no reader waits
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


# -- the stranded event of the 200-at-once burst, and the hand-over between deliverers ------------

def spool_by_hand(notifier, *names, ns, channel="incoming"):
    """Events of instances ``names`` written straight into the spool, all stamped ``ns``.

    Two `kachecks notify` forked in one clock tick get the same start time to the
    nanosecond (the kernel counts a process's start in ticks of 10 ms): this is
    the state such a pair leaves, without waiting for the coincidence.
    """
    made = []
    with store.Spool(str(notifier.spool)) as spool:
        for name in names:
            evt = events.make("INSTANCE", name, "MASTER", 100, raw=f"INSTANCE {name} MASTER 100")
            evt["id"], evt["time"] = events.new_id(ns), ns / 1e9
            spool.write(channel, evt["id"] + ".json", evt)
            made.append(evt)
    return made


def test_two_events_stamped_the_same_nanosecond_make_two_mails_with_batch_window_0(notifier, relay):
    """batch_window = 0 means one mail per event, even for events of the same clock tick."""
    notifier.configure(relay, spool={"batch_window": 0})
    first, second = spool_by_hand(notifier, "VI_1", "VI_2", ns=time.time_ns())
    assert first["id"].split("-")[0] == second["id"].split("-")[0]
    flushed = notifier.kachecks("spool", "flush")
    assert flushed.returncode == 0, flushed.stderr
    assert "delivered 2 event(s), 0 still queued" in flushed.stdout
    msgs = relay.wait_for(2)
    assert sorted(m["X-Kachecks-Events"] for m in msgs) == sorted([first["id"], second["id"]])
    assert not any("more)" in m["Subject"] for m in msgs)


@pytest.mark.slow
def test_events_less_than_batch_window_apart_still_make_one_mail(notifier, relay):
    notifier.configure(relay, spool={"batch_window": 1})
    now = time.time_ns()
    spool_by_hand(notifier, "VI_1", ns=now)
    spool_by_hand(notifier, "VI_2", ns=now + 400_000_000)
    spool_by_hand(notifier, "VI_3", ns=now + 1_000_000_000)  # exactly one window later: the next mail
    assert notifier.kachecks("spool", "flush").returncode == 0
    first, second = relay.wait_for(2)
    assert first["Subject"].endswith("VI_1: UNKNOWN -> MASTER (prio 100) (+1 more)")
    assert "VI_3" in second["Subject"] and "more" not in second["Subject"]


def test_an_event_spooled_while_the_deliverer_sends_is_delivered_by_that_deliverer(notifier):
    """The notify that finds the lock held starts nobody: the deliverer holding it must see its event."""
    hold = HoldFirst()
    with SmtpSink(after_data=hold) as relay:
        notifier.configure(relay)
        assert notifier.notify("INSTANCE", "VI_1", "MASTER", "100").returncode == 0
        assert hold.sending.wait(30)
        deliverer = notifier.holder()
        assert deliverer
        assert notifier.notify("INSTANCE", "VI_2", "MASTER", "100").returncode == 0
        assert notifier.holder() == deliverer  # nobody else took over
        hold.release()
        first, second = relay.wait_for(2)
    assert [m["Subject"].split("] ")[1].split(":")[0] for m in (first, second)] == ["VI_1", "VI_2"]
    notifier.wait_delivered()


@pytest.mark.slow
def test_a_deliverer_busy_for_longer_than_retry_for_still_retries_an_event_it_took_over(notifier):
    """retry_for counts from the first failure, not from the deliverer's start: an event
    spooled late in a long burst gets its retries like the first one."""
    hold = HoldFirst()
    with SmtpSink(after_data=hold) as relay:
        notifier.configure(relay, spool={"retry_for": "2s"})
        assert notifier.notify("INSTANCE", "VI_1", "MASTER", "100").returncode == 0
        assert hold.sending.wait(30)
        started = time.monotonic()
        assert notifier.notify("INSTANCE", "VI_2", "MASTER", "100").returncode == 0
        relay.replies.append("451 4.3.0 busy, try again")  # the second mail's first attempt
        while time.monotonic() - started < 2.5:  # the deliverer has now run longer than retry_for
            time.sleep(0.1)
        hold.release()
        first, second = relay.wait_for(2, timeout=20)
    assert relay.attempts == 3
    assert "VI_2" in second["Subject"]
    notifier.wait_delivered()


@pytest.mark.slow
def test_an_event_fanned_out_while_the_last_channel_waits_for_its_batch_is_not_left_behind(
        notifier, relay, httpserver):
    """mail went first (a batch recorded before a crash is resent without waiting); while the
    webhook's batch waits, a new event is fanned out to both queues: mail must send it too
    before the deliverer lets go of the lock."""
    httpserver.expect_request("/hook").respond_with_data("ok")
    notifier.configure(relay, webhook={"url": httpserver.url_for("/hook")}, spool={"batch_window": 8})
    (evt,) = spool_by_hand(notifier, "VI_1", ns=time.time_ns(), channel="mail")
    with store.Spool(str(notifier.spool)) as spool:
        spool.write("webhook", evt["id"] + ".json", evt)
        spool.write("mail", ".batch", {"names": [evt["id"] + ".json"], "previous": {},
                                       "message_id": f"<{evt['id']}.kachecks@lvs1>"})
    flush = subprocess.Popen(command("kachecks") + ["spool", "flush"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        relay.wait_for(1, timeout=20)  # mail sent the recorded batch; the webhook now waits
        assert notifier.notify("INSTANCE", "VI_2", "BACKUP", "50").returncode == 0
        out, err = flush.communicate(timeout=60)
    finally:
        signalled.stop(flush, signal.SIGKILL, 10, what="kachecks spool flush")
    assert flush.returncode == 0, out + err
    assert "0 still queued" in out
    first, second = relay.wait_for(2)
    assert "VI_2" in second["Subject"]
    assert notifier.queued() == []
