"""The agent's [vrrp] on the real keepalived pair: both directors' agents watch it.

lvs1 (192.168.8.100, priority 100) and lvs2 (192.168.8.110, priority 50) run the installed
keepalived with VI_1, vrid 50, VIP 192.168.8.142, advert_int 1 (so hold is 3 s); each runs
`kachecks agent` with a [vrrp] table in its namespace, its notifications going through
its own spool to the SMTP sink on the witness (192.168.8.10), its metrics on its own
loopback. A firewall dropping IP protocol 112 at lvs2's ingress is a tc-BPF filter
(harness.peers.vrrp.drop_vrrp).
"""

import os
import re
import shutil
import signal
import time

import pytest

from harness.peers import cli
from harness.peers.netns import cleanup_stale, run_prefix
from harness.peers.pair import WITNESS, Pair, config
from harness.peers.smtp import subject as subject_of
from harness.peers.vrrp import HOSTS, VIP, allow_vrrp, drop_vrrp
from harness.wait import wait_for

pytestmark = [pytest.mark.netns, pytest.mark.slow]

BASE = "kcva"
LVS1, LVS2 = HOSTS["lvs1"], HOSTS["lvs2"]
ADVERT_INT = 1
HOLD = 3 * ADVERT_INT
WITHIN = HOLD + 3 * ADVERT_INT + 3  # from the cause to the notification, spool included
METRICS = "127.0.0.1:9662"  # each director's own loopback
SPLIT = f"SPLIT BRAIN ({LVS1} prio 100, {LVS2} prio 50)"


def reference():
    return {host: config(host, priority, prefix=32, password="toto")
            for host, priority in (("lvs1", 100), ("lvs2", 50))}


@pytest.fixture
def pair(tmp_path):
    """The reference pair settled (lvs1 MASTER, lvs2 BACKUP), the witness with the sink;
    each host its own host name, which the mails' subjects show."""
    cleanup_stale(BASE)
    with Pair(run_prefix(BASE), tmp_path, extra=WITNESS, hostnames=True) as made:
        made.start(reference())
        made.ka["lvs1"].wait_state("MASTER", timeout=15)
        made.ka["lvs2"].wait_state("BACKUP", timeout=15)
        yield made


def holds(pair, director):
    return director in pair.holders()


def watching(agent, holder):
    """Wait until ``agent`` watches VI_1 and knows whether it holds it."""
    return agent.wait_status(
        lambda d: (d.get("vrrp") or {}).get("watching") and any(
            i["name"] == "VI_1" and i["holder"] is holder and i["advertising"] >= 1
            for i in d["vrrp"]["instances"]), 15, "the agent watching VI_1")


def sent_at(message):
    """When the event of ``message`` was made (epoch seconds, from its event id)."""
    return int(message["X-Kachecks-Events"].split("-", 1)[0]) / 1e9


def subject(host, text):
    return lambda m: subject_of(m) == f"[{host}] VI_1: {text}"


def subject_starts(host, text):
    return lambda m: subject_of(m).startswith(f"[{host}] VI_1: {text}")


def metric(text, name, **labels):
    """The value of the sample ``name{labels}`` in a Prometheus text page, or None."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{") or line.startswith(f"{name} "):
            sample, value = line.rsplit(" ", 1)
            found = re.search(r"\{(.*)\}", sample)
            if ",".join(sorted((found.group(1) if found else "").split(","))) == wanted:
                return float(value)
    return None


def scrape(pair, host, until=None, timeout=5):
    """``host``'s /metrics page; with ``until``, the first for which ``until(page)`` holds
    (the page follows the agent's snapshot, taken within a second of a change)."""
    def page():
        text = pair.fetch(host, f"http://{METRICS}/metrics")
        return text if until is None or until(text) else None

    return page() if until is None else wait_for(page, timeout, 0.2, f"{host}'s metrics")


def split_brain_pages(pair, hosts, value):
    """Each host's /metrics page once its kachecks_vrrp_problem{VI_1,split-brain} is
    ``value`` (AssertionError, TimeoutError if it does not come)."""
    return {host: scrape(pair, host, lambda page: metric(
        page, "kachecks_vrrp_problem", instance="VI_1", code="split-brain") == value)
        for host in hosts}


def test_vrrp_dropped_at_lvs2_is_mailed_as_split_brain_by_both_agents_then_over(pair):
    agents = {host: pair.agent(host, metrics=METRICS) for host in ("lvs1", "lvs2")}
    watching(agents["lvs1"], True)
    watching(agents["lvs2"], False)
    healthy = {host: scrape(pair, host) for host in agents}
    assert metric(healthy["lvs1"], "kachecks_vrrp_holder", instance="VI_1") == 1
    assert metric(healthy["lvs2"], "kachecks_vrrp_holder", instance="VI_1") == 0
    assert metric(healthy["lvs2"], "kachecks_vrrp_sources", instance="VI_1") == 1
    assert metric(healthy["lvs2"], "kachecks_vrrp_adverts_total", instance="VI_1",
                  source=LVS1) >= 1
    for code in ("split-brain", "no-master", "filtered", "mismatch", "foreign"):
        assert metric(healthy["lvs1"], "kachecks_vrrp_problem", instance="VI_1", code=code) == 0

    cause = time.time()
    drop_vrrp(pair["lvs2"], families=(4,))
    mail = pair.mail()
    for host in ("lvs1", "lvs2"):
        message = mail.wait(subject(host, SPLIT), WITHIN + 5, f"{host}'s SPLIT BRAIN mail")
        assert sent_at(message) - cause <= WITHIN, (host, sent_at(message) - cause)
        body = message.get_content()
        assert f"Host:     {host}" in body and "Instance: VI_1" in body
        assert "split brain: " in body and "docs/vrrp.md" in body
    mail.wait(subject("lvs2", f"FILTERED ({LVS1} prio 100)"), 5, "lvs2's FILTERED mail")
    assert holds(pair, "lvs1") and holds(pair, "lvs2")
    during = split_brain_pages(pair, agents, 1)  # each agent says split-brain 1
    for host in agents:
        assert metric(during[host], "kachecks_vrrp_holder", instance="VI_1") == 1
        assert metric(during[host], "kachecks_vrrp_sources", instance="VI_1") == 2
    assert metric(during["lvs2"], "kachecks_vrrp_problem", instance="VI_1", code="filtered") == 1
    assert metric(during["lvs1"], "kachecks_vrrp_problem", instance="VI_1", code="filtered") == 0
    line = agents["lvs1"].syslog.wait("vrrp: split-brain (critical): VI_1 vrid 50 on eth0:", 5)
    assert line.startswith("<27>")  # daemon.err
    agents["lvs2"].wait_status(  # rewritten within a second of a change
        lambda d: {p["code"] for p in d["vrrp"]["instances"][0]["problems"]}
        == {"split-brain", "filtered"}, 5, "both problems in lvs2's status")
    shown = cli.run("kachecks", "agent", "status", "--config", agents["lvs2"].config)
    assert shown.returncode == 0, shown
    assert "VI_1 vrid 50 on eth0: HELD HERE since" in shown.stdout
    assert f"advertising: {LVS1} prio 100, {LVS2} prio 50 (this director)" in shown.stdout
    assert "    split-brain (critical) since " in shown.stdout
    assert "    filtered (critical) since " in shown.stdout

    allow_vrrp(pair["lvs2"])
    wait_for(lambda: not holds(pair, "lvs2"), 10, what="lvs2 to drop the VIP")
    for host in agents:
        mail.wait(subject_starts(host, "split brain over after "), 15, f"{host}'s 'over' mail")
        agents[host].syslog.wait("vrrp: split-brain over: VI_1 vrid 50 on eth0, after ", 5)
    mail.wait(subject_starts("lvs2", "filtered over after "), 10, "lvs2's filtered over mail")
    after = split_brain_pages(pair, agents, 0)  # each agent says split-brain 0 again
    assert metric(after["lvs2"], "kachecks_vrrp_holder", instance="VI_1") == 0
    subjects = pair.mail().subjects()
    assert sum(s.startswith("[lvs1] VI_1: SPLIT BRAIN") for s in subjects) == 1, subjects
    assert sum(s.startswith("[lvs2] VI_1: SPLIT BRAIN") for s in subjects) == 1, subjects
    for agent in agents.values():
        # no track file for VRRP: only the agent's own (status, running), dot names
        assert [name for name in os.listdir(agent.track) if not name.startswith(".")] == []
        assert agent.stop() == 0


def test_a_reload_during_a_split_brain_neither_mails_it_twice_nor_forgets_its_end(pair):
    agent = pair.agent("lvs2")
    watching(agent, False)
    drop_vrrp(pair["lvs2"], families=(4,))
    mail = pair.mail()
    mail.wait(subject("lvs2", SPLIT), WITHIN + 5, "the SPLIT BRAIN mail")
    agent.send(signal.SIGHUP)
    agent.syslog.wait("vrrp: still split-brain (critical)", WITHIN + 5)
    allow_vrrp(pair["lvs2"])
    over = mail.wait(subject_starts("lvs2", "split brain over after "), 20, "the 'over' mail")
    lasted = int(re.search(r"after (\d+) s", subject_of(over)).group(1))
    assert lasted >= WITHIN - HOLD, subject_of(over)  # counted from before the reload
    time.sleep(1)  # an 'over' of the first watcher would come with the second
    subjects = mail.subjects()
    assert sum(s.startswith("[lvs2] VI_1: SPLIT BRAIN") for s in subjects) == 1, subjects
    assert sum(s.startswith("[lvs2] VI_1: split brain over") for s in subjects) == 1, subjects


def test_a_reload_reads_a_changed_keepalived_conf_and_keeps_no_stale_problem(pair, tmp_path):
    # The agent reads its own copy of lvs2's keepalived.conf: keepalived itself keeps running
    watched = tmp_path / "watched.conf"
    shutil.copy(pair.conf("lvs2"), watched)
    agent = pair.agent("lvs2", vrrp={"keepalived_conf": str(watched)})
    watching(agent, False)
    text = watched.read_text()
    watched.write_text(text.replace(f"{VIP}/32 dev eth0\n",
                                    f"{VIP}/32 dev eth0\n        192.168.8.143/32\n"))
    agent.send(signal.SIGHUP)
    mail = pair.mail()
    mismatch = mail.wait(subject("lvs2", f"MISMATCH ({LVS1} prio 100: addresses)"), 10,
                         "the MISMATCH mail")
    assert (f"{LVS1} prio 100: addresses 192.168.8.142, here 192.168.8.142 192.168.8.143"
            in mismatch.get_content())
    # (and no-master: nobody advertises the address list lvs2 now has)
    agent.wait_status(lambda d: "mismatch" in [p["code"] for p in d["vrrp"]["instances"][0]
                                               ["problems"]], 5, "the mismatch in the status")
    watched.write_text(text)
    agent.send(signal.SIGHUP)
    over = mail.wait(subject_starts("lvs2", "mismatch over after "), 15, "the mismatch's end")
    assert "(not seen again after the agent's reload)" in subject_of(over)
    document = agent.wait_status(lambda d: d["vrrp"]["instances"][0]["problems"] == [], 5,
                                 "no problem left")
    assert document["vrrp"]["instances"][0]["addresses"] == [VIP]
    assert len([line for line in agent.syslog.lines() if "vrrp: watching VI_1" in line]) == 3

    # a problem active when the watch stops is not "over": it is no longer watched
    watched.write_text(text.replace(f"{VIP}/32 dev eth0\n",
                                    f"{VIP}/32 dev eth0\n        192.168.8.143/32\n"))
    agent.send(signal.SIGHUP)
    wait_for(lambda: len([m for m in mail.subjects() if "MISMATCH" in m]) == 2, 10,
             what="the second MISMATCH mail")
    watched.write_text("global_defs {\n    router_id lvs2\n}\n")
    agent.send(signal.SIGHUP)
    gone = mail.wait(subject_starts("lvs2", "mismatch no longer watched after "), 10,
                     "the mismatch no longer watched")
    assert subject_of(gone).endswith("s (" + str(watched) + ": no vrrp_instance to watch)")
    agent.wait_status(lambda d: d["vrrp"]["watching"] is False, 5, "the watch stopped")
    assert not any("mismatch over" in m for m in mail.subjects()[-2:])


def test_another_clusters_vrid_is_mailed_as_foreign_unless_ignored(pair):
    from harness.peers.vrrp import Advertiser
    from kachecks.vrrp import wire

    lvs1 = pair.agent("lvs1", metrics=METRICS)
    lvs2 = pair.agent("lvs2", vrrp={"ignore_vrids": [51]})
    watching(lvs1, True)
    watching(lvs2, False)

    def foreign():
        return [wire.encode(4, HOSTS["client"], "224.0.0.18", 51, 100, ["192.168.8.101"])]

    with Advertiser(pair["client"], foreign):
        message = pair.mail().wait(
            lambda m: subject_of(m) == f"[lvs1] eth0 vrid 51: FOREIGN ROUTER ({HOSTS['client']}"
                                      " prio 100)", 10, "lvs1's FOREIGN ROUTER mail")
        assert "a VRID keepalived.conf does not use" in message.get_content()
        page = scrape(pair, "lvs1", lambda page: metric(
            page, "kachecks_vrrp_problem", instance="VI_1", code="foreign") == 1)
        assert metric(page, "kachecks_vrrp_foreign", interface="eth0", vrid="51") == 1
        assert metric(page, "kachecks_vrrp_problem", instance="VI_1", code="foreign") == 1
        lvs1.syslog.wait("vrrp: foreign (warning): eth0 vrid 51: foreign: adverts from", 5)
    assert lvs1.syslog.wait("vrrp: foreign over: eth0 vrid 51, after", 15).startswith("<29>")
    assert not any("vrid 51" in s and "[lvs2]" in s for s in pair.mail().subjects())
    assert not any("foreign" in line for line in lvs2.syslog.lines())


def test_keepalived_stopped_on_both_directors_is_mailed_as_no_master(pair):
    agents = {host: pair.agent(host) for host in ("lvs1", "lvs2")}
    watching(agents["lvs1"], True)
    watching(agents["lvs2"], False)
    pair.stop_keepalived("lvs1")
    pair.ka["lvs2"].wait_state("MASTER", timeout=10)
    pair.stop_keepalived("lvs2")
    for host in agents:
        pair.mail().wait(subject(host, "NO MASTER"), 15, f"{host}'s NO MASTER mail")
        line = agents[host].syslog.wait("vrrp: no-master (critical): VI_1 vrid 50 on eth0: no"
                                        " master: no advert for 192.168.8.142 for ", 5)
        assert "and this director does not hold it" in line
    subjects = pair.mail().subjects()
    assert not any("SPLIT BRAIN" in s for s in subjects), subjects  # a failover is no split brain
