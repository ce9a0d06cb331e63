"""Reconciliation on the real keepalived pair: what keepalived's notify never said is mailed
by the agent, once; what it said is never mailed twice.

lvs1 (priority 100) and lvs2 (priority 50) run the installed keepalived with VI_1 (vrid 50,
VIP 192.168.8.142, nopreempt); each runs `kachecks agent` with a [vrrp] table and
[notify] reconcile_after = 3 s, mailing the SMTP sink on the witness. keepalived's notify
is either absent (the notifications that never came) or `kachecks notify --config` the
agent's own kachecks.toml (so it records into the spool the agent reads).
"""

import time

import pytest

from harness.peers import cli
from harness.peers.keepalived import secure_executables
from harness.peers.netns import cleanup_stale, run_prefix
from harness.peers.pair import WITNESS, Pair, config
from harness.peers.smtp import subject as subject_of

pytestmark = [pytest.mark.netns, pytest.mark.slow]

BASE = "kcrc"
VIP = "192.168.8.142"
AFTER = 3  # [notify] reconcile_after
# from the change of holder to the reconciled event: reconcile_after, the agent's look at
# the records (every second), the netlink event and the spool
WITHIN = AFTER + 3
SEEN = "seen by kachecks"


def sent_at(message):
    """When the event of ``message`` was spooled (epoch seconds, from its event id)."""
    return int(message["X-Kachecks-Events"].split("-", 1)[0]) / 1e9


def reconciled(host, state):
    prefix = f"[{host}] VI_1: {state} ({SEEN}: "
    return lambda message: subject_of(message).startswith(prefix)


def count(mail, host, state):
    return sum(reconciled(host, state)(m) for m in mail.messages())


def settle(pair, holder):
    """Wait until only ``holder`` holds the VIP; the time it was first seen so."""
    pair.wait_holders({VIP: {holder}}, timeout=20)
    return time.time()


def start(pair, tmp_path, notify):
    """Both agents, then keepalived on both (lvs1 MASTER, lvs2 BACKUP); ``notify``: each
    instance notifies through `kachecks notify --config` its director's agent's file."""
    bindir, _ = secure_executables(cli.bin_dir(), ["kachecks"], tmp_path / "bin")
    configs = {}
    for host, priority in (("lvs1", 100), ("lvs2", 50)):
        line = (f'    notify "{bindir}/kachecks notify --config {pair.agent_config(host)}"\n'
                if notify else "")
        configs[host] = config(host, priority, prefix=32, password="toto", instance_extra=line)
    pair.reset(configs)
    agents = {host: pair.agent(host, notify={"reconcile_after": f"{AFTER}s"})
              for host in ("lvs1", "lvs2")}
    pair.start()
    pair.ka["lvs1"].wait_state("MASTER", timeout=15)
    pair.ka["lvs2"].wait_state("BACKUP", timeout=15)
    return agents


@pytest.fixture
def pair(tmp_path):
    cleanup_stale(BASE)
    with Pair(run_prefix(BASE), tmp_path, extra=WITNESS, hostnames=True) as made:
        yield made


def test_without_keepalived_notify_each_failover_is_mailed_once_as_seen_by_kachecks(
        pair, tmp_path):
    agents = start(pair, tmp_path, notify=False)
    mail = pair.mail()
    # nobody was ever told lvs1 is MASTER: its agent says so, marked, with since when
    first = mail.wait(reconciled("lvs1", "MASTER"), WITHIN + 15, "lvs1's reconciled MASTER")
    assert f"{VIP} on eth0 since " in subject_of(first)
    assert subject_of(first).endswith("keepalived's notification never came)")
    body = first.get_content()
    assert "Instance: VI_1" in body and "never reached kachecks on lvs1" in body
    assert f"this director holds {VIP} since " in body
    assert "the last state notified: nothing" in body

    pair.stop_keepalived("lvs1")  # lvs1 drops the VIP, lvs2 takes it: neither notifies
    moved = settle(pair, "lvs2")
    took = mail.wait(reconciled("lvs2", "MASTER"), WITHIN + 10, "lvs2's reconciled MASTER")
    assert 0 <= sent_at(took) - moved <= WITHIN, sent_at(took) - moved
    left = mail.wait(reconciled("lvs1", "NOT MASTER"), WITHIN + 10, "lvs1's NOT MASTER")
    assert f"{VIP} not on eth0 since " in subject_of(left)
    assert "the last state notified: MASTER at " in left.get_content()  # its own, before
    assert agents["lvs1"].syslog.wait("vrrp: VI_1: keepalived's notification never came:"
                                      " spooled NOT_MASTER as seen by kachecks", 5)

    # restarts: the states notified (the reconciled ones) survive; nothing is sent again
    for agent in agents.values():
        assert agent.stop() == 0
        agent.start()
    for agent in agents.values():
        agent.wait_status(lambda d, pid=agent.pid: d.get("pid") == pid and (
            d.get("vrrp") or {}).get("watching"), 15, "the restarted agent watching VI_1")
    time.sleep(2 * WITHIN)  # what a duplicate would need, twice over
    assert [count(mail, "lvs1", "MASTER"), count(mail, "lvs2", "MASTER"),
            count(mail, "lvs1", "NOT MASTER"), count(mail, "lvs2", "NOT MASTER")] == [1, 1, 1, 0], \
        mail.subjects()


def test_with_keepalived_notify_working_no_failover_is_reconciled(pair, tmp_path):
    agents = start(pair, tmp_path, notify=True)
    mail = pair.mail()
    mail.wait(lambda m: subject_of(m) == "[lvs1] VI_1: BACKUP -> MASTER (prio 100)", 20,
              "keepalived's MASTER from lvs1")
    failovers = (("lvs1", "lvs2"), ("lvs2", "lvs1"), ("lvs1", "lvs2"))
    for number, (old, new) in enumerate(failovers, start=1):
        pair.stop_keepalived(old)
        settle(pair, new)
        mail.wait(lambda m, new=new: subject_of(m).startswith(f"[{new}] VI_1: BACKUP -> MASTER"),
                  20,
                  f"keepalived's MASTER from {new} (failover {number})")
        pair.start(names=[old])  # back as BACKUP (nopreempt): the VIP stays on new
        pair.ka[old].wait_state("BACKUP", timeout=15)
        time.sleep(WITHIN)  # a reconciliation, if any, would come within this
        assert not [s for s in mail.subjects() if SEEN in s], mail.subjects()
    for agent in agents.values():
        agent.assert_running()
    assert sum(s.startswith("[lvs2] VI_1: BACKUP -> MASTER") for s in mail.subjects()) == 2
    assert sum(s.startswith("[lvs1] VI_1: BACKUP -> MASTER") for s in mail.subjects()) == 2
