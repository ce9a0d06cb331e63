"""Nothing is lost: relay down, relay refusing, expiry, list/flush/purge."""

import json
import os
import signal
import time

import pytest

from harness.peers.smtp import SmtpSink
from kachecks.notify import summary


def test_relay_down_notify_returns_at_once_and_flush_delivers_each_later(notifier, unused_port):
    relay = SmtpSink(port=unused_port)  # not started yet: nothing listens there
    notifier.configure(relay, spool={"retry_for": 0})
    events = [("INSTANCE", "VI_1", "BACKUP", "100"), ("INSTANCE", "VI_1", "MASTER", "100"),
              ("RS", "[192.168.8.101]:tcp:80", "DOWN")]
    for args in events:
        started = time.monotonic()
        result = notifier.notify(*args)
        assert time.monotonic() - started < 1.0
        assert result.returncode == 0, result.stderr
    notifier.wait_idle()
    assert len(notifier.queued()) == 3
    listing = notifier.kachecks("spool", "list")
    assert listing.returncode == 0
    assert "INSTANCE VI_1 MASTER prio 100" in listing.stdout
    assert "RS [192.168.8.101]:tcp:80 DOWN" in listing.stdout

    with relay:
        flushed = notifier.kachecks("spool", "flush")
        assert flushed.returncode == 0, flushed.stderr
        assert "delivered 3 event(s), 0 still queued" in flushed.stdout
        msgs = relay.wait_for(3)
    assert [m["Subject"].split("] ", 1)[1] for m in msgs] == [
        "VI_1: UNKNOWN -> BACKUP (prio 100)",
        "VI_1: BACKUP -> MASTER (prio 100)",
        "[192.168.8.101]:tcp:80: UNKNOWN -> DOWN",
    ]
    assert notifier.queued() == []
    assert "is empty" in notifier.kachecks("spool", "list").stdout


@pytest.mark.slow
def test_relay_answering_4xx_then_5xx_is_retried_with_backoff_until_accepted(notifier, syslog_socket):
    with SmtpSink(replies=["451 4.3.0 Try again later", "550 5.7.1 Relaying denied"]) as relay:
        notifier.configure(relay)
        assert notifier.notify("INSTANCE", "VI_1", "MASTER", "100").returncode == 0
        (msg,) = relay.wait_for(1, timeout=20)
        assert relay.attempts == 3
        ids = {m["Message-ID"] for m in relay.messages}
        assert len(ids) == 1
    notifier.wait_idle()
    assert notifier.queued() == []
    logs = "\n".join(syslog_socket())
    assert "relay answered 451 4.3.0 Try again later" in logs
    assert "relay answered 550 5.7.1 Relaying denied" in logs
    assert "delivered by mail " + msg["Message-ID"] in logs


def spooled_at(name):
    """The event time a spool file name starts with, in seconds."""
    return int(name.split("-", 1)[0]) / 1e9


def test_expired_events_are_logged_and_kept_never_silently_dropped(notifier, unused_port, syslog_socket):
    notifier.configure(SmtpSink(port=unused_port), spool={"expire": "1h", "retry_for": 0})
    assert notifier.notify("INSTANCE", "VI_1", "FAULT", "100").returncode == 0
    notifier.wait_idle()  # its deliverer found no relay: still queued
    (name,) = notifier.queued()
    with SmtpSink(port=unused_port) as relay:
        late = notifier.deliver(clock=lambda: spooled_at(name) + 3600.001)
        assert late.delivered == 0 and relay.messages == []
    logs = "\n".join(syslog_socket())
    assert "expired undelivered by mail" in logs
    assert "INSTANCE VI_1 FAULT prio 100" in logs
    assert any(m.startswith("<27>") and "expired" in m for m in logs.split("\n"))  # daemon.err
    listing = notifier.kachecks("spool", "list").stdout
    assert "expired:mail" in listing and "INSTANCE VI_1 FAULT" in listing

    purged = notifier.kachecks("spool", "purge", "--expired")
    assert purged.returncode == 0 and "purged 1 event(s)" in purged.stdout
    assert "is empty" in notifier.kachecks("spool", "list").stdout


def test_an_event_is_still_delivered_just_before_it_expires(notifier, unused_port):
    notifier.configure(SmtpSink(port=unused_port), spool={"expire": "1h", "retry_for": 0})
    assert notifier.notify("INSTANCE", "VI_1", "FAULT", "100").returncode == 0
    notifier.wait_idle()
    (name,) = notifier.queued()
    with SmtpSink(port=unused_port) as relay:
        in_time = notifier.deliver(clock=lambda: spooled_at(name) + 3599.999)
        assert in_time.delivered == 1
        (msg,) = relay.wait_for(1)
    assert "VI_1: UNKNOWN -> FAULT (prio 100)" in msg["Subject"]
    assert notifier.queued() == [] and notifier.queued(["expired"]) == []


def test_flush_takes_over_from_a_deliverer_backing_off(notifier, unused_port):
    relay = SmtpSink(port=unused_port)
    notifier.configure(relay, spool={"retry_for": "10m"})
    assert notifier.notify("INSTANCE", "VI_1", "MASTER", "100").returncode == 0
    with relay:
        started = time.monotonic()
        flushed = notifier.kachecks("spool", "flush")
        assert flushed.returncode == 0, flushed.stderr
        assert time.monotonic() - started < 10
        relay.wait_for(1)
    notifier.wait_idle()
    assert len(relay.messages) == 1


def test_purge_removes_queued_events_and_logs_each(notifier, unused_port, syslog_socket):
    notifier.configure(SmtpSink(port=unused_port), spool={"retry_for": 0})
    assert notifier.notify("INSTANCE", "VI_1", "MASTER", "100").returncode == 0
    notifier.wait_idle()
    assert notifier.kachecks("spool", "purge").returncode == 0
    assert notifier.queued() == []
    assert any("purged from mail: INSTANCE VI_1 MASTER prio 100" in m for m in syslog_socket())


def test_without_any_channel_events_are_logged_and_not_left_in_the_spool(notifier, syslog_socket):
    notifier.configure(mail={"enabled": False})
    assert notifier.notify("INSTANCE", "VI_1", "BACKUP", "100").returncode == 0
    notifier.wait_delivered()
    assert any("event INSTANCE VI_1 BACKUP prio 100" in m for m in syslog_socket())


def test_mail_taken_by_the_relay_but_unconfirmed_is_resent_with_the_same_message_id(notifier):
    """At-least-once: the deliverer dies after the relay stored the mail, before the 250."""
    killed = []

    def kill_deliverer():
        if not killed:
            pid = notifier.holder()
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    with SmtpSink(after_data=kill_deliverer) as relay:
        notifier.configure(relay)
        assert notifier.notify("INSTANCE", "VI_1", "MASTER", "100").returncode == 0
        relay.wait_for(1)
        notifier.wait_idle()
        assert len(notifier.queued()) == 1  # not confirmed, so still queued
        assert notifier.kachecks("spool", "flush").returncode == 0
        first, second = relay.wait_for(2)
    assert first["Message-ID"] == second["Message-ID"]
    assert first.get_content() == second.get_content()
    assert notifier.queued() == []


def test_spool_list_json_shows_each_event_with_its_channels_attempts_and_last_error(
        notifier, unused_port, httpserver):
    httpserver.expect_request("/hook").respond_with_data("ok")
    relay = SmtpSink(port=unused_port)  # down: mail fails, the webhook takes it
    notifier.configure(relay, webhook={"url": httpserver.url_for("/hook")}, spool={"retry_for": 0})
    assert notifier.notify("INSTANCE", "VI_1", "MASTER", "100").returncode == 0
    notifier.wait_idle()
    assert notifier.kachecks("spool", "flush").returncode == 1  # a second attempt
    (notifier.spool / "mail" / "x.json").write_text("{}")  # a file that is no event
    listing = notifier.kachecks("spool", "list", "--json")
    assert listing.returncode == 0, listing.stderr
    doc = json.loads(listing.stdout)
    (evt,) = doc["events"]
    assert (evt["type"], evt["name"], evt["state"], evt["priority"]) == ("INSTANCE", "VI_1", "MASTER", 100)
    assert evt["created"].endswith("Z") and 0 <= evt["age_seconds"] < 120
    (mail,) = evt["channels"]  # the webhook has it already
    assert (mail["queue"], mail["status"], mail["attempts"]) == ("mail", "sending", 2)
    assert f"port {unused_port}" in mail["last_error"] and mail["last_attempt"].endswith("Z")
    assert mail["next_attempt"] is None  # nobody lingers: the next `spool flush`
    assert doc["queues"]["mail"]["events"] == 1 and doc["queues"]["webhook"]["events"] == 0
    assert doc["queues"]["mail"]["deliveries"] == {"ok": 0, "failed": 2, "unsendable": 0, "expired": 0}
    assert doc["queues"]["webhook"]["deliveries"]["ok"] == 1
    assert doc["problems"] == [{"queue": "mail", "file": "x.json", "problem": "not an event file name"}]
    text = notifier.kachecks("spool", "list").stdout  # the text form is still there
    assert "INSTANCE VI_1 MASTER prio 100" in text and "mail: 2 attempt(s)" in text

    (notifier.spool / "mail" / "x.json").unlink()
    with relay:
        assert notifier.kachecks("spool", "flush").returncode == 0
    doc = json.loads(notifier.kachecks("spool", "list", "--json").stdout)
    assert doc["events"] == [] and "failing" not in doc["queues"]["mail"]
    assert doc["queues"]["mail"]["deliveries"] == {"ok": 1, "failed": 2, "unsendable": 0, "expired": 0}


def test_spool_counts_for_metrics_read_ages_from_the_names_alone(notifier, unused_port):
    """What the agent exports: events and the oldest one's age per channel, at a given time."""
    notifier.configure(SmtpSink(port=unused_port), spool={"retry_for": 0})
    assert notifier.notify("INSTANCE", "VI_1", "BACKUP", "100").returncode == 0
    assert notifier.notify("INSTANCE", "VI_1", "MASTER", "100").returncode == 0
    notifier.wait_idle()
    first = sorted(notifier.queued())[0]
    now = int(first[:19]) / 1e9 + 90
    for name in notifier.queued():
        (notifier.spool / "mail" / name).write_text("garbage")  # not one event file is read
    counts = summary.counts(str(notifier.spool), now=now)
    assert counts["mail"]["events"] == 2
    assert counts["mail"]["oldest_age_seconds"] == 90.0
    assert counts["incoming"] == {"events": 0, "oldest_age_seconds": 0.0, "oldest": None, "expired": 0}
    assert counts["mail"]["deliveries"]["failed"] >= 1
    assert summary.counts(str(notifier.spool / "none"))["mail"]["events"] == 0
