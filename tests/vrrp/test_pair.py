"""The real keepalived pair on a bridge, watched from both directors and a witness.

lvs1 (192.168.8.100, priority 100) and lvs2 (192.168.8.110, priority 50) run the installed
keepalived with VI_1, vrid 50, VIP 192.168.8.142, advert_int 1 (so hold is 3 s); the
client namespace (192.168.8.10) is the witness and, with crafted adverts, a foreign or
mismatched router. What keepalived does differs between 2.2.7 and 2.3.3 where noted; the
installed version is read at run time.
"""

import time

import pytest

from harness.peers.netns import cleanup_stale, run_prefix, wait_for
from harness.peers.pair import DIRECTORS, WITNESS, Pair, config
from harness.peers.vrrp import VIP, VIP6, Advertiser, allow_vrrp, drop_vrrp, keepalived_version
from kachecks.vrrp import wire

pytestmark = [pytest.mark.netns, pytest.mark.slow]

BASE = "kcvr"
LVS1, LVS2, CLIENT = DIRECTORS["lvs1"], DIRECTORS["lvs2"], WITNESS["client"]
ADVERT_INT = 1
HOLD = 3 * ADVERT_INT
WITHIN = HOLD + 3 * ADVERT_INT + 2  # what split brain may take to be reported, from its cause


def reference(vips=(VIP,), prefix=32, nopreempt=True, unicast=False):
    def peers(host):
        other = LVS2 if host == "lvs1" else LVS1
        return f"    unicast_peer {{\n        {other}\n    }}\n" if unicast else ""

    return {host: config(host, priority, vips=vips, prefix=prefix, nopreempt=nopreempt,
                         password="toto", instance_extra=peers(host))
            for host, priority in (("lvs1", 100), ("lvs2", 50))}


@pytest.fixture
def pair(tmp_path):
    """The reference pair and the witness, keepalived started by each test."""
    cleanup_stale(BASE)
    with Pair(run_prefix(BASE), tmp_path, extra=WITNESS) as pair:
        yield pair


def settled(pair, timeout=15):
    pair.ka["lvs1"].wait_state("MASTER", timeout=timeout)
    pair.ka["lvs2"].wait_state("BACKUP", timeout=timeout)


def holds(pair, director, address=VIP):
    return director in pair.holders(address)


def listening(*watches):
    for watch in watches:
        watch.wait(lambda e: e["event"] == "advert", 10, "a first advert")


def started_within(watch, code, since, limit):
    """The start of ``code`` in ``watch``, asserted to come at most ``limit`` s after
    ``since`` (epoch seconds)."""
    event = watch.wait_problem(code, limit + 3)
    assert event["epoch"] - since <= limit, (code, event["epoch"] - since, event["message"])
    return event


def codes(watch, state="start"):
    return [e["code"] for e in watch.problems(state)]


def test_a_healthy_pair_is_ok_on_both_directors_and_on_a_witness(pair):
    pair.start(reference())
    settled(pair)
    done = pair.checks({"lvs1": ["--verbose"], "lvs2": ["--verbose"], "client": ["--nagios"]})
    lvs1, lvs2, client = done["lvs1"], done["lvs2"], done["client"]
    assert lvs1.returncode == 0, lvs1
    assert lvs1.stdout.startswith("VRRP OK - VI_1 vrid 50 on eth0: held here (192.168.8.142),")
    assert "VI_1: 192.168.8.100 (this director) v2 prio 100" in lvs1.stdout
    assert lvs2.returncode == 0, lvs2
    assert lvs2.stdout.startswith("VRRP OK - VI_1 vrid 50 on eth0: master 192.168.8.100 prio 100,")
    assert "reached the VRRP stack" in lvs2.stdout
    assert client.returncode == 0 and client.stdout.startswith("VRRP OK: "), client
    assert "| sources=1 adverts=" in client.stdout
    assert lvs1.stderr == lvs2.stderr == client.stderr == ""


def test_vrrp_dropped_at_one_director_is_filtered_there_and_split_brain_on_both_then_ok(pair):
    pair.start(reference())
    settled(pair)
    watches = {host: pair.watch(host) for host in ("lvs1", "lvs2")}
    listening(*watches.values())
    cause = time.time()
    drop_vrrp(pair["lvs2"], families=(4,))
    started_within(watches["lvs2"], "filtered", cause, WITHIN)
    event = started_within(watches["lvs2"], "split-brain", cause, WITHIN)
    assert "192.168.8.100 prio 100 and 192.168.8.110 prio 50 (this director)" in event["message"]
    started_within(watches["lvs1"], "split-brain", cause, WITHIN)
    assert holds(pair, "lvs1") and holds(pair, "lvs2")  # both MASTER: split brain indeed

    done = pair.checks({"lvs1": [], "lvs2": []})
    assert done["lvs2"].returncode == 1, done["lvs2"]
    assert done["lvs2"].stdout.startswith("VRRP FAIL - VI_1 vrid 50 on eth0: ")
    assert "split brain: 192.168.8.100 prio 100 and 192.168.8.110 prio 50" in done["lvs2"].stdout
    assert "filtered: " in done["lvs2"].stdout and "from 192.168.8.100 prio 100" in done["lvs2"].stdout
    assert done["lvs1"].returncode == 1, done["lvs1"]
    assert "split brain: 192.168.8.110 prio 50 and 192.168.8.100 prio 100 (this director)" in \
        done["lvs1"].stdout
    assert "filtered" not in done["lvs1"].stdout

    allow_vrrp(pair["lvs2"])
    pair.ka["lvs2"].wait_state("BACKUP", timeout=10)
    wait_for(lambda: not holds(pair, "lvs2"), 10, what="lvs2 to drop the VIP")
    done = pair.checks({"lvs1": [], "lvs2": []})
    assert done["lvs1"].returncode == 0 and done["lvs2"].returncode == 0, done
    watches["lvs2"].wait_problem("split-brain", 15, state="end")
    watches["lvs2"].wait_problem("filtered", 15, state="end")


def test_a_different_address_list_on_one_side_is_a_mismatch_naming_the_addresses(pair):
    configs = {**reference(), "lvs2": reference(vips=(VIP, "192.168.8.143"))["lvs2"]}
    pair.start(configs)
    pair.ka["lvs1"].wait_state("MASTER", timeout=15)
    watch = pair.watch("lvs2")
    event = watch.wait_problem("mismatch", 10)
    assert ("192.168.8.100 prio 100: addresses 192.168.8.142, here 192.168.8.142 192.168.8.143"
            in event["message"])
    assert {"source": LVS1, "field": "addresses", "theirs": "192.168.8.142",
            "ours": "192.168.8.142 192.168.8.143"} in event["fields"]
    # On 2.2.7 the two masters take turns on the wire, lvs1 sometimes silent for seconds:
    # a longer listen hears it
    done = pair.check("lvs2", "--listen", 15)
    assert done.returncode == 1 and "mismatch: 192.168.8.100 prio 100: addresses" in done.stdout
    if keepalived_version() < (2, 3, 3):
        # 2.2.7 discards the advert: lvs2 becomes MASTER too, and says so on the wire
        pair.ka["lvs2"].wait_state("MASTER", timeout=10)
        assert holds(pair, "lvs1") and holds(pair, "lvs2")
    else:
        # 2.3.3 accepts a different address list (and says so): no dual master, the
        # mismatch remains
        pair.ka["lvs2"].wait_log(r"VIPs but received|not present in advert", 10)
        time.sleep(WITHIN)  # nothing to wait for: a dual master would have come by now
        assert pair.ka["lvs2"].state() == "BACKUP" and not holds(pair, "lvs2")


def test_another_vrid_is_foreign_a_warning_and_a_stranger_on_ours_a_mismatch(pair):
    pair.start(reference())
    settled(pair)

    def foreign():
        return [wire.encode(4, CLIENT, "224.0.0.18", 51, 100, ["192.168.8.101"])]

    with Advertiser(pair["client"], foreign):
        done = pair.checks({"lvs1": [], "lvs2": ["--nagios"], "client": ["--ignore-vrid", "51"]})
    assert done["lvs1"].returncode == 0, done["lvs1"]
    assert "; eth0 vrid 51: foreign: adverts from 192.168.8.10 prio 100" in done["lvs1"].stdout
    assert done["lvs2"].returncode == 1 and done["lvs2"].stdout.startswith("VRRP WARNING: ")
    assert done["client"].returncode == 0 and "foreign" not in done["client"].stdout

    def stranger():  # priority 1: nobody yields to it, on 2.2.7 or 2.3.3
        return [wire.encode(4, CLIENT, "224.0.0.18", 50, 1, ["192.168.8.102"],
                            auth_type=wire.AUTH_PASS, password=b"Xq7z9k")]

    with Advertiser(pair["client"], stranger):
        done = pair.check("lvs2")
    assert done.returncode == 1, done
    assert ("mismatch: 192.168.8.10 prio 1: addresses 192.168.8.102, here 192.168.8.142;"
            " auth_pass differs (192.168.8.10 is not a known peer") in done.stdout
    assert "toto" not in done.stdout + done.stderr and "Xq7z9k" not in done.stdout + done.stderr


def test_keepalived_stopped_on_both_directors_is_no_master(pair):
    pair.start(reference())
    settled(pair)
    pair.stop_keepalived("lvs1")
    pair.ka["lvs2"].wait_state("MASTER", timeout=10)
    pair.stop_keepalived("lvs2")
    done = pair.checks({"lvs1": [], "client": ["--nagios"]})
    assert done["lvs1"].returncode == 1
    assert done["lvs1"].stdout.startswith(
        "VRRP FAIL - VI_1 vrid 50 on eth0: no master: no advert for 192.168.8.142 for 4.0 s and"
        " this director does not hold it"), done["lvs1"]
    assert done["client"].returncode == 2 and done["client"].stdout.startswith("VRRP CRITICAL: ")


def test_a_failover_and_a_preemption_are_not_split_brain(pair):
    pair.start(reference(nopreempt=False))  # lvs1 takes the VIP back when it returns
    settled(pair)
    watches = [pair.watch(host) for host in ("lvs1", "lvs2", "client")]
    listening(*watches)
    pair.stop_keepalived("lvs1")  # a failover: lvs2 takes over
    pair.ka["lvs2"].wait_state("MASTER", timeout=10)
    wait_for(lambda: holds(pair, "lvs2"), 5, what="lvs2 to hold the VIP")
    pair.start(names=["lvs1"])  # lvs1 back: it preempts
    pair.ka["lvs1"].wait_state("MASTER", timeout=15)
    pair.ka["lvs2"].wait_state("BACKUP", timeout=10)
    back = time.time()
    # as long after the hand-over as a split brain would take to be reported, and more
    watches[2].wait(lambda e: e["event"] == "advert" and e["source"] == LVS1
                    and e["epoch"] > back + HOLD + 2 * ADVERT_INT, 15, "lvs1's adverts")
    for watch in watches:
        assert codes(watch) == [], watch.problems()
    assert [e["priority"] for e in watches[2].events()
            if e["event"] == "advert" and e["source"] == LVS1].count(0) == 1  # the stop


def test_an_ipv6_pair_is_watched_too(pair):
    # Without nopreempt: whichever director has its link-local address first may become
    # MASTER first (2.3.3 waits in FAULT for it); lvs1 then takes over, as configured
    pair.start(reference(vips=(VIP6,), prefix=128, nopreempt=False))
    settled(pair, timeout=20)
    wait_for(lambda: holds(pair, "lvs1", VIP6) and not holds(pair, "lvs2", VIP6), 10,
             what="lvs1 alone to hold the VIP")
    done = pair.checks({"lvs1": [], "lvs2": []})
    assert done["lvs1"].returncode == 0, done["lvs1"]
    assert done["lvs1"].stdout.startswith("VRRP OK - VI_1 IPv6 vrid 50 on eth0: held here"
                                          " (2001:db8::142)")
    assert done["lvs2"].returncode == 0 and "master fe80::" in done["lvs2"].stdout, done["lvs2"]
    watches = {host: pair.watch(host) for host in ("lvs1", "lvs2")}
    listening(*watches.values())
    assert watches["lvs1"].events()[0]["destination"] == "ff02::12"
    cause = time.time()
    drop_vrrp(pair["lvs2"], families=(6,))
    started_within(watches["lvs2"], "filtered", cause, WITHIN)
    started_within(watches["lvs2"], "split-brain", cause, WITHIN)
    started_within(watches["lvs1"], "split-brain", cause, WITHIN)


def test_a_unicast_pair_is_watched_too(pair):
    pair.start(reference(unicast=True))
    settled(pair)
    done = pair.checks({"lvs1": [], "lvs2": ["--verbose"]})
    assert done["lvs1"].returncode == 0, done["lvs1"]
    assert done["lvs2"].returncode == 0, done["lvs2"]
    assert "master 192.168.8.100 prio 100" in done["lvs2"].stdout
    assert "reached the VRRP stack" in done["lvs2"].stdout
    watches = {host: pair.watch(host) for host in ("lvs1", "lvs2")}
    listening(*watches.values())
    assert watches["lvs2"].events()[0]["destination"] == LVS2
    cause = time.time()
    drop_vrrp(pair["lvs2"], families=(4,))
    started_within(watches["lvs2"], "filtered", cause, WITHIN)
    started_within(watches["lvs2"], "split-brain", cause, WITHIN)
    started_within(watches["lvs1"], "split-brain", cause, WITHIN)
