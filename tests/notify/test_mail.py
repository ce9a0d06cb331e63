"""Mail as the administrator receives it, through a real aiosmtpd relay."""

import email.utils
import os
import shlex
import subprocess
import time

import pytest

from harness.peers.cli import command
from harness.peers.smtp import SmtpSink


def test_generic_notify_mail_has_readable_subject_headers_and_body(notifier, relay):
    notifier.configure(relay, mail={"to": ["ops@example.org", "oncall@example.org"]})
    assert notifier.notify("INSTANCE", "VI_1", "BACKUP", "100").returncode == 0
    assert notifier.notify("INSTANCE", "VI_1", "MASTER", "100").returncode == 0
    first, second = relay.wait_for(2)
    assert first["Subject"].endswith("VI_1: UNKNOWN -> BACKUP (prio 100)")
    assert second["Subject"] == f"[{os.uname().nodename}] VI_1: BACKUP -> MASTER (prio 100)"
    assert second["From"] == "kachecks@lvs1.example.org"
    assert second["To"] == "ops@example.org, oncall@example.org"
    assert relay.envelopes[1] == ("kachecks@lvs1.example.org", ["ops@example.org", "oncall@example.org"])
    assert email.utils.parsedate_to_datetime(second["Date"]) is not None
    assert second["Message-ID"] != first["Message-ID"]
    body = second.get_content()
    assert f"Host:           {os.uname().nodename}" in body
    assert "Previous state: BACKUP" in body
    assert "New state:      MASTER" in body
    assert "Priority:       100" in body
    assert "Raw event:      INSTANCE VI_1 MASTER 100" in body
    notifier.wait_idle()
    assert notifier.queued() == []


def test_the_relay_is_greeted_with_the_configured_name_not_one_looked_up(notifier, relay):
    """[smtp] helo and [mail] from set: the deliverer asks no resolver for this host's
    name (socket.getfqdn), so no DNS query leaves the machine running the tests."""
    notifier.configure(relay)
    assert notifier.notify("INSTANCE", "VI_1", "MASTER", "100").returncode == 0
    (msg,) = relay.wait_for(1)
    assert relay.sessions[0]["helo"] == "lvs1.example.org"
    assert relay.envelopes[0][0] == msg["From"] == "kachecks@lvs1.example.org"


def test_starttls_and_auth_with_password_file(notifier, tmp_path, certdir):
    secret = tmp_path / "smtp.pass"
    secret.write_text("s3cret\n")
    secret.chmod(0o640)
    with SmtpSink(starttls=True, auth=("kachecks", "s3cret"), certdir=certdir) as relay:
        notifier.configure(relay, smtp={"username": "kachecks", "password_file": str(secret)})
        assert notifier.notify("GROUP", "G1", "MASTER", "0").returncode == 0
        (msg,) = relay.wait_for(1)
        assert relay.sessions[0] == {"tls": True, "authenticated": True, "helo": "lvs1.example.org"}
        assert "G1: UNKNOWN -> MASTER (prio 0)" in msg["Subject"]


def test_implicit_tls_relay(notifier, certdir):
    with SmtpSink(implicit_tls=True, certdir=certdir) as relay:
        notifier.configure(relay)
        assert notifier.notify("INSTANCE", "VI_1", "FAULT", "100").returncode == 0
        (msg,) = relay.wait_for(1)
        assert relay.sessions[0]["tls"] is True
        assert "-> FAULT" in msg["Subject"]


def test_starttls_is_used_when_offered_without_being_configured(notifier, certdir):
    with SmtpSink(starttls=True, certdir=certdir) as relay:
        notifier.configure(relay)  # security = "starttls" is the default
        notifier.configure(relay, smtp={"verify": False})
        assert notifier.notify("INSTANCE", "VI_1", "MASTER", "100").returncode == 0
        relay.wait_for(1)
        assert relay.sessions[0]["tls"] is True


def test_subject_and_body_templates_come_from_config(notifier, relay):
    notifier.configure(relay, mail={"subject": "kcnt {state} on {host}: {name}",
                                    "body": "was {previous}, now {state}, prio {priority}, raw <{raw}>\n"})
    assert notifier.notify("RS", "[192.168.8.101]:tcp:80", "DOWN").returncode == 0
    (msg,) = relay.wait_for(1)
    assert msg["Subject"] == f"kcnt DOWN on {os.uname().nodename}: [192.168.8.101]:tcp:80"
    assert msg.get_content() == "was UNKNOWN, now DOWN, prio -, raw <RS [192.168.8.101]:tcp:80 DOWN>\n"


def test_password_file_readable_by_others_is_refused_with_one_line(notifier, tmp_path, certdir):
    secret = tmp_path / "smtp.pass"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    with SmtpSink(starttls=True, auth=("kachecks", "s3cret"), certdir=certdir) as relay:
        notifier.configure(relay, smtp={"username": "kachecks", "password_file": str(secret)},
                           spool={"retry_for": 0})
        result = notifier.notify("INSTANCE", "VI_1", "MASTER", "100")
        assert result.returncode == 0  # spooled: the event is not lost
        assert result.stderr.count("\n") == 1
        assert "mode 0644" in result.stderr and "chmod 600" in result.stderr
        notifier.wait_idle()
        flushed = notifier.kachecks("spool", "flush")
        assert flushed.returncode == 1
        assert "mode 0644" in flushed.stderr and "Traceback" not in flushed.stderr
        assert relay.messages == []
        secret.chmod(0o600)
        assert notifier.kachecks("spool", "flush").returncode == 0
        relay.wait_for(1)


@pytest.mark.slow
def test_events_close_together_are_batched_into_one_mail_in_order(notifier, relay):
    notifier.configure(relay, spool={"batch_window": 2})
    for args in (("GROUP", "G1", "MASTER", "0"), ("INSTANCE", "VI_1", "MASTER", "100"),
                 ("INSTANCE", "VI_2", "MASTER", "50")):
        assert notifier.notify(*args).returncode == 0
    (msg,) = relay.wait_for(1)
    notifier.wait_idle()
    assert len(relay.messages) == 1
    assert msg["Subject"].endswith("G1: UNKNOWN -> MASTER (prio 0) (+2 more)")
    body = msg.get_content()
    assert body.index("GROUP G1") < body.index("INSTANCE VI_1") < body.index("INSTANCE VI_2")
    assert len(msg["X-Kachecks-Events"].split()) == 3


@pytest.mark.slow
def test_notify_processes_run_out_of_order_are_mailed_in_the_order_keepalived_forked_them(notifier, relay):
    """keepalived forks BACKUP then MASTER; a loaded director runs the second one first."""
    notifier.configure(relay, spool={"batch_window": 3})
    kachecks = shlex.join(command("kachecks"))
    late = subprocess.Popen(["sh", "-c", f"sleep 1.5; exec {kachecks} notify INSTANCE VI_1 BACKUP 100"])
    time.sleep(0.2)
    assert notifier.notify("INSTANCE", "VI_1", "MASTER", "100").returncode == 0  # spooled first
    assert late.wait(timeout=30) == 0
    (msg,) = relay.wait_for(1)
    body = msg.get_content()
    assert body.index("New state:      BACKUP") < body.index("New state:      MASTER")
    assert "Previous state: BACKUP\nNew state:      MASTER" in body
    assert msg["Subject"].endswith("VI_1: UNKNOWN -> BACKUP (prio 100) (+1 more)")


def with_host_name(name, argv, network=True):
    """Run ``argv`` in a UTS namespace (and, without ``network``, a network namespace) of its own."""
    if os.geteuid() != 0:
        pytest.fail("setting the host name needs root (a UTS namespace)")
    flags = ["--uts"] if network else ["--uts", "--net"]
    return subprocess.run(["unshare", *flags, "sh", "-c", 'hostname "$1" && shift && exec "$@"', "sh",
                           name, *argv], capture_output=True, text=True, timeout=60)


def test_default_from_is_kachecks_at_the_fully_qualified_host_name(notifier, relay):
    notifier.configure(relay, mail={"from": ""})
    result = with_host_name("lvs1.mysite.mydmn.org",
                            command("kachecks") + ["notify", "INSTANCE", "VI_1", "MASTER", "100"])
    assert result.returncode == 0, result.stderr
    (msg,) = relay.wait_for(1)
    assert msg["From"] == "kachecks@lvs1.mysite.mydmn.org"
    assert relay.envelopes[0][0] == "kachecks@lvs1.mysite.mydmn.org"


def test_default_from_of_a_host_without_domain_asks_for_mail_from_and_keeps_the_mail(notifier):
    """Relays reject kachecks@lvs1: the mail waits and the error says what to set."""
    notifier.configure(mail={"from": ""}, spool={"retry_for": 0})
    queued = with_host_name("lvs1", command("kachecks") + ["notify", "INSTANCE", "VI_1", "MASTER", "100"],
                            network=False)
    assert queued.returncode == 0, queued.stderr
    notifier.wait_idle()
    flushed = with_host_name("lvs1", command("kachecks") + ["spool", "flush"], network=False)
    assert flushed.returncode == 1
    assert "Traceback" not in flushed.stderr
    assert ("mail: mail.from is not set and this host's name (lvs1) has no domain (see `hostname -f`); "
            'set it in the configuration, e.g. from = "kachecks@lvs1.example.org"') in flushed.stderr
    assert len(notifier.queued()) == 1


SPLIT = "SPLIT BRAIN (192.168.8.100 prio 100, 192.168.8.110 prio 50)"


def vrrp_event(state="SPLIT_BRAIN", title=SPLIT):
    from kachecks.notify import event

    return event.make(event.VRRP, "VI_1", state, source="agent", title=title,
                      raw="split-brain (critical): VI_1 vrid 50 on eth0: split brain: 192.168.8.100"
                          " prio 100 and 192.168.8.110 prio 50 (this director) both master for"
                          " 3.0 s (this director holds 192.168.8.142)")


def test_the_agents_vrrp_problem_is_spooled_and_mailed_saying_split_brain_plainly(notifier, relay):
    from kachecks.agent.pair import Poster

    # the configured subject is keepalived's events'; a problem of the pair says itself
    notifier.configure(relay, mail={"subject": "kcnt {state} on {host}: {name}"})
    poster = Poster(str(notifier.config))
    poster(vrrp_event())
    poster(vrrp_event("SPLIT_BRAIN_OVER", "split brain over after 42 s"))
    first, second = relay.wait_for(2)
    host = os.uname().nodename
    assert " ".join(first["Subject"].split()) == f"[{host}] VI_1: {SPLIT}"
    assert second["Subject"] == f"[{host}] VI_1: split brain over after 42 s"
    body = first.get_content()
    assert f"What:     {SPLIT}" in body and "Instance: VI_1" in body
    assert "Detail:   split-brain (critical): VI_1 vrid 50 on eth0: split brain: " in body
    assert "/usr/share/doc/kachecks/docs/vrrp.md" in body
    notifier.wait_delivered()
    end = time.monotonic() + 10  # the launchers it started (by exec: the agent has threads)
    while poster.children and time.monotonic() < end:
        poster.reap()
        time.sleep(0.05)
    assert poster.children == []


def test_a_vrrp_event_survives_the_spool_with_its_title(notifier):
    from kachecks.notify import event
    from kachecks.notify import spool as store

    made = vrrp_event()
    with store.Spool(str(notifier.spool)) as spool:
        spool.put(made)
        (name,) = spool.names("incoming")
        back = spool.event("incoming", name)
    assert back == made and back["title"] == SPLIT and back["source"] == "agent"
    assert event.describe(back) == "VRRP VI_1 SPLIT_BRAIN"
