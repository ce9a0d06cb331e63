"""The heartbeat ([notify] heartbeat, sent by `spool flush`) and `kachecks notify --test`."""

import json
import os
import signal
import socket
import time

import pytest
from werkzeug import Response

from harness.peers.hostile import Mute
from harness.peers.smtp import SmtpSink
from kachecks.notify import event as events
from kachecks.notify import spool as store

HOST = socket.gethostname()


def heartbeat_times(messages):
    """The time each heartbeat mail stands for (its event id), in the order received."""
    return [int(m["X-Kachecks-Events"].split("-")[0]) / 1e9 for m in messages if "HEARTBEAT" in m["Subject"]]


# -- kachecks notify --test ----------------------------------------------------------------------

def test_notify_test_sends_a_heartbeat_through_the_relay_and_prints_its_answer(notifier, relay):
    notifier.configure(relay)
    result = notifier.notify("--test")
    assert result.returncode == 0, result.stderr
    assert f"mail (127.0.0.1:{relay.port} -> admin@lvs.example.org): accepted: 250 2.0.0 OK queued" \
        in result.stdout
    (msg,) = relay.wait_for(1)
    assert msg["Subject"] == f"[{HOST}] HEARTBEAT (test) from {HOST}: kachecks can notify you"
    assert "Sent by: kachecks notify --test" in msg.get_content()
    assert not notifier.spool.exists()  # directly, not through the spool


def test_notify_test_names_a_recipient_the_relay_refuses_and_exits_1(notifier):
    bounce = "550 5.1.1 <admin@lvs.example.org>: Recipient address rejected: User unknown"
    with SmtpSink(refuse_rcpt={"admin@lvs.example.org": bounce}) as relay:
        notifier.configure(relay)
        result = notifier.notify("--test")
    assert result.returncode == 1
    assert "mail (127.0.0.1" in result.stderr and "NOT accepted" in result.stderr
    assert "relay refused every recipient: admin@lvs.example.org: 550 5.1.1" in result.stderr
    assert "mail did not accept the heartbeat" in result.stderr
    assert relay.messages == []


def test_notify_test_fails_when_one_of_several_recipients_bounces(notifier):
    """The relay took the mail for the others: still a failure, naming the address."""
    with SmtpSink(refuse_rcpt={"oncall@lvs.example.org": "550 5.1.1 User unknown"}) as relay:
        notifier.configure(relay, mail={"to": ["admin@lvs.example.org", "oncall@lvs.example.org"]})
        result = notifier.notify("--test")
        (msg,) = relay.wait_for(1)
    assert result.returncode == 1
    assert "but refused oncall@lvs.example.org: 550 5.1.1 User unknown" in result.stderr
    assert relay.envelopes[0][1] == ["admin@lvs.example.org"]
    assert "HEARTBEAT" in msg["Subject"]


@pytest.mark.slow
def test_notify_test_against_a_relay_that_never_answers_exits_1_within_the_timeout(notifier):
    with Mute() as mute:
        notifier.configure(smtp={"port": mute.port, "timeout": 3})
        started = time.monotonic()
        result = notifier.notify("--test", timeout=3 + 20)  # a hang fails here
        took = time.monotonic() - started
        assert mute.connected.is_set()
    assert result.returncode == 1
    assert "mail (127.0.0.1" in result.stderr and "NOT accepted" in result.stderr
    assert "(smtp.timeout = 3 s)" in result.stderr
    assert took >= 3  # it did wait for the relay, as long as configured


def test_notify_test_through_a_webhook_that_accepts(notifier, httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    notifier.configure(mail={"enabled": False}, webhook={"url": httpserver.url_for("/hook")})
    result = notifier.notify("--test")
    assert result.returncode == 0, result.stderr
    assert f"webhook ({httpserver.url_for('/hook')}): accepted: HTTP 200 OK" in result.stdout
    (request, _), = httpserver.log
    body = json.loads(request.get_data())
    assert body["text"] == f"[{HOST}] HEARTBEAT (test) from {HOST}: kachecks can notify you"
    assert body["events"][0]["type"] == "HEARTBEAT"


def test_notify_test_names_only_the_channel_that_refused(notifier, relay, httpserver):
    httpserver.expect_request("/hook").respond_with_response(Response("no", status=403))
    notifier.configure(relay, webhook={"url": httpserver.url_for("/hook")})
    result = notifier.notify("--test")
    assert result.returncode == 1
    assert "mail (127.0.0.1" in result.stdout and "accepted: 250" in result.stdout
    assert f"webhook ({httpserver.url_for('/hook')}): NOT accepted: " in result.stderr
    assert "HTTP 403 FORBIDDEN" in result.stderr
    assert "webhook did not accept the heartbeat" in result.stderr and "mail did not" not in result.stderr
    relay.wait_for(1)


def test_notify_test_without_any_channel_or_with_an_event_is_an_error(notifier):
    notifier.configure(mail={"enabled": False})
    result = notifier.notify("--test")
    assert result.returncode == 1
    assert "no channel to test" in result.stderr
    result = notifier.notify("--test", "INSTANCE", "VI_1", "MASTER")
    assert result.returncode == 1 and "--test takes no event" in result.stderr


# -- [notify] heartbeat, sent by `kachecks spool flush` ---------------------------------------

def test_no_heartbeat_unless_configured(notifier, relay):
    notifier.configure(relay)
    flushed = notifier.kachecks("spool", "flush")
    assert flushed.returncode == 0 and "heartbeat" not in flushed.stdout
    assert relay.messages == []


@pytest.mark.slow
def test_one_heartbeat_per_period_per_channel_over_several_flushes(notifier, relay, httpserver):
    """Each period's heartbeat is stamped one period after the last: none skipped, none twice."""
    httpserver.expect_request("/hook").respond_with_data("ok")
    period = 4
    notifier.configure(relay, webhook={"url": httpserver.url_for("/hook")}, notify={"heartbeat": period})
    end = time.monotonic() + 60
    flushes = []  # (wall time before, after) of each flush
    while len(heartbeat_times(relay.messages)) < 3:
        assert time.monotonic() < end, f"{len(relay.messages)} heartbeat(s) after {len(flushes)} flushes"
        before = time.time()
        flushed = notifier.kachecks("spool", "flush")  # a new flusher each time: a restart
        flushes.append((before, time.time()))
        assert flushed.returncode == 0, flushed.stderr
    mails = heartbeat_times(relay.messages)
    hooks = [json.loads(r.get_data())["events"][0]["time"] for r, _ in httpserver.log]
    assert len(mails) == 3 and len(hooks) == 3 and mails == hooks
    gaps = [round(b - a, 3) for a, b in zip(mails, mails[1:])]
    # Each flush looks at the clock somewhere between its before and after: if no two
    # consecutive looks can be a period apart, no period was missed, and each heartbeat
    # is stamped exactly one period after the last. On a machine so loaded that a flush
    # outlasts a period, a missed period is stamped when found (at least two periods on).
    kept_pace = all(after - before < period
                    for (before, _), (_, after) in zip(flushes, flushes[1:]))
    if kept_pace:
        assert gaps == [period, period], flushes
    else:
        assert all(gap == period or gap >= 2 * period for gap in gaps), (gaps, flushes)
    assert len({m["Message-ID"] for m in relay.messages}) == 3
    subject = f"[{HOST}] HEARTBEAT from {HOST}: kachecks can notify you"
    assert all(m["Subject"] == subject for m in relay.messages)
    assert notifier.queued() == []


@pytest.mark.slow
def test_a_heartbeat_waits_for_a_dead_relay_one_per_period_and_goes_out_when_it_is_back(
        notifier, unused_port):
    relay = SmtpSink(port=unused_port)
    notifier.configure(relay, notify={"heartbeat": 3})
    for _ in range(3):  # within one period: one heartbeat queued, however many flushes
        assert notifier.kachecks("spool", "flush").returncode == 1
    assert len(notifier.queued()) == 1
    listing = notifier.kachecks("spool", "list").stdout
    assert f"HEARTBEAT {HOST} ALIVE" in listing
    assert "mail: 3 attempt(s), last at " in listing and str(unused_port) in listing
    end = time.monotonic() + 30
    while len(notifier.queued()) < 2:  # the next period: a second one
        assert time.monotonic() < end
        assert notifier.kachecks("spool", "flush").returncode == 1
    with relay:
        flushed = notifier.kachecks("spool", "flush")
        assert flushed.returncode == 0, flushed.stderr
        mails = relay.wait_for(2)
    times = heartbeat_times(mails)
    assert round(times[1] - times[0], 3) == 3
    assert notifier.queued() == []


def test_a_flush_killed_between_spooling_and_recording_a_heartbeat_neither_loses_nor_doubles_it(
        notifier, relay):
    """The state such a kill leaves: the heartbeat queued, nothing recorded."""
    notifier.configure(relay, notify={"heartbeat": "1h"})
    beat = events.heartbeat(time.time() - 5, "kachecks spool flush, every 1h ([notify] heartbeat)")
    with store.Spool(str(notifier.spool)) as spool:
        spool.write("mail", beat["id"] + ".json", beat)
    for _ in range(2):
        flushed = notifier.kachecks("spool", "flush")
        assert flushed.returncode == 0, flushed.stderr
        assert "heartbeat spooled" not in flushed.stdout
    (msg,) = relay.messages
    assert msg["X-Kachecks-Events"] == beat["id"]
    with store.Spool(str(notifier.spool)) as spool:
        assert spool.read("mail", ".heartbeat.json") == {"last": beat["time"]}


def test_a_flush_killed_while_sending_a_heartbeat_resends_it_once_with_the_same_message_id(notifier):
    killed = []

    def kill_flusher():
        if not killed:
            pid = notifier.holder()
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    with SmtpSink(after_data=kill_flusher) as relay:
        notifier.configure(relay, notify={"heartbeat": "1h"})
        assert notifier.kachecks("spool", "flush").returncode == -signal.SIGKILL
        assert len(notifier.queued()) == 1  # stored by the relay, not confirmed: still queued
        for _ in range(2):
            flushed = notifier.kachecks("spool", "flush")
            assert flushed.returncode == 0, flushed.stderr
            assert "heartbeat spooled" not in flushed.stdout
        first, second = relay.wait_for(2)
    assert len(relay.messages) == 2
    assert first["Message-ID"] == second["Message-ID"]  # the same heartbeat, at-least-once


@pytest.mark.slow
def test_a_heartbeat_travels_alone_even_inside_a_batch_window(notifier, relay):
    notifier.configure(relay, spool={"batch_window": 5}, notify={"heartbeat": "1h"})
    assert notifier.notify("INSTANCE", "VI_1", "MASTER", "100").returncode == 0
    assert notifier.kachecks("spool", "flush").returncode == 0
    notifier.wait_delivered()
    subjects = sorted(m["Subject"] for m in relay.messages)
    assert subjects == sorted([f"[{HOST}] HEARTBEAT from {HOST}: kachecks can notify you",
                               f"[{HOST}] VI_1: UNKNOWN -> MASTER (prio 100)"])
