"""The detector alone, fed crafted adverts and address changes at chosen times.

Times are seconds from the start of listening; lvs1 (192.168.8.100, priority 100) and
lvs2 (192.168.8.110, priority 50) share VI_1, vrid 50, VIP 192.168.8.142, advert_int 1
(hold 3 s, a source keeps advertising while its adverts are at most 4 s apart).
"""

import pytest

from kachecks.vrrp import detect, instances, wire
from kachecks.vrrp.wire import STACK, WIRE, Capture

LVS1, LVS2, VIP, OTHER = "192.168.8.100", "192.168.8.110", "192.168.8.142", "192.168.8.143"
STRANGER = "192.168.8.10"
GROUP = "224.0.0.18"

CONF = """\
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 50
    priority %(priority)s
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass toto
    }
%(extra)s    virtual_ipaddress {
        192.168.8.142/32 dev eth0
    }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 52
    virtual_ipaddress {
        192.168.8.143
    }
}
"""


def load(tmp_path, priority=50, extra="", names=("VI_1",)):
    path = tmp_path / "keepalived.conf"
    path.write_text(CONF % {"priority": priority, "extra": extra})
    return instances.load(str(path), "lvs2", names)


def packed(address):
    return wire.address_bytes(address)[1]


class Feed:
    """A detector watching VI_1 from ``me`` (an address of eth0), and every change it made."""

    def __init__(self, tmp_path, me=LVS2, hold=None, ignore=(), extra="", priority=50):
        everything, watched = load(tmp_path, priority, extra)
        self.detector = detect.Detector(everything, 0.0, watched, hold, ignore)
        self.me = me
        self.changes = []
        self.local = {packed(me)}
        self.record(self.detector.addresses(0.0, "eth0", self.local))

    def record(self, changes):
        self.changes += changes
        return changes

    def hold(self, t, held=True):
        self.local = {packed(self.me)} | ({packed(VIP)} if held else set())
        return self.record(self.detector.addresses(t, "eth0", self.local))

    def advert(self, t, source, priority, vantage=WIRE, addresses=(VIP,), vrid=50,
               destination=GROUP, password=b"toto", **kw):
        auth = kw.pop("auth_type", wire.AUTH_PASS)
        packet = wire.encode(4, source, destination, vrid, priority, list(addresses),
                             auth_type=auth, password=password, **kw)
        capture = Capture(t, 1e9 + t, vantage, "eth0", wire.decode_ip(packet),
                          outgoing=vantage == WIRE and source == self.me)
        return self.record(self.detector.packet(capture))

    def adverts(self, source, priority, start, end, every=1.0, stack=True, **kw):
        """Adverts from ``source`` at start, start+every, … before end; the stack's copy too."""
        t = start
        while t < end - 1e-9:
            self.advert(t, source, priority, **kw)
            if stack and source != self.me:
                self.advert(t + 0.0002, source, priority, vantage=STACK, **kw)
            self.tick(t + 0.1)
            t += every

    def tick(self, t):
        return self.record(self.detector.tick(t))

    def until(self, end, step=0.2, start=None):
        t = start if start is not None else self.detector.now
        while t < end:
            t = min(end, t + step)
            self.tick(t)

    def started(self, code=None):
        return [c for c in self.changes if c.started and code in (None, c.problem.code)]

    def ended(self, code=None):
        return [c for c in self.changes if not c.started and code in (None, c.problem.code)]


def test_a_backup_hearing_its_master_sees_nothing_wrong(tmp_path):
    feed = Feed(tmp_path)
    feed.adverts(LVS1, 100, 0.5, 30)
    assert feed.changes == []
    status = feed.detector.status(30)[0]
    assert not status.held and status.adverts == 30
    assert [(s.text, s.adverts, s.stack_adverts, s.own) for s in status.sources] == [
        (LVS1, 30, 30, False)]


def test_the_master_hearing_only_itself_sees_nothing_wrong(tmp_path):
    feed = Feed(tmp_path, me=LVS1, priority=100)
    feed.hold(0.0)
    feed.adverts(LVS1, 100, 0.5, 30)
    assert feed.changes == []
    assert feed.detector.status(30)[0].sources[0].own


def test_holding_the_vip_while_the_master_advertises_is_split_brain_after_hold(tmp_path):
    feed = Feed(tmp_path)
    feed.adverts(LVS1, 100, 0.5, 5.0)
    feed.hold(5.0)  # lvs2 took the VIP: it stopped hearing lvs1
    feed.adverts(LVS2, 50, 5.0, 12.0)
    feed.adverts(LVS1, 100, 5.5, 12.0)
    [change] = feed.started()
    assert change.problem.code == "split-brain" and change.problem.severity == "critical"
    assert 8.0 < change.time <= 8.7  # more than hold (3 s) after lvs2 took the VIP
    text = change.message  # what it said when it started
    assert text.startswith("split-brain (critical): VI_1 vrid 50 on eth0: split brain: 192.168.8.100 prio 100 and"
                           " 192.168.8.110 prio 50 (this director) both master for 3.")
    assert "holds 192.168.8.142" in text
    assert feed.ended() == []


def test_one_advert_interval_vouches_for_the_source_so_a_short_listen_can_tell(tmp_path):
    """A check listens 3 × advert_int + 1 s: held all along, the master's adverts at
    0.9 … 3.9 s — judged at 4.0 s, that is 4 s of split brain, not 3.0."""
    feed = Feed(tmp_path)
    feed.hold(0.0)
    feed.adverts(LVS1, 100, 0.9, 4.0)
    feed.tick(4.0)
    assert [c.problem.code for c in feed.started()] == ["split-brain"]


def test_a_hand_over_with_a_priority_0_advert_is_not_split_brain(tmp_path):
    feed = Feed(tmp_path)
    feed.adverts(LVS1, 100, 0.5, 10.0)
    feed.advert(10.0, LVS1, 0)  # keepalived stopped on lvs1: it resigns
    feed.advert(10.0002, LVS1, 0, vantage=STACK)
    feed.hold(10.8)
    feed.adverts(LVS2, 50, 10.8, 30)
    assert feed.started() == []


def test_a_preemption_overlapping_by_an_advert_is_not_split_brain(tmp_path):
    """lvs2 is master; lvs1 (100) recovers and preempts; lvs2 leaves MASTER at the first
    advert it hears (no priority 0 then) and drops the VIP a little later."""
    feed = Feed(tmp_path)
    feed.hold(0.0)
    feed.adverts(LVS2, 50, 0.0, 10.0)
    feed.adverts(LVS1, 100, 9.9, 11.0)
    feed.hold(11.0, held=False)  # a whole second of overlap
    feed.adverts(LVS1, 100, 11.9, 30.0)
    assert feed.started() == []


def test_the_master_s_view_of_a_preemption_is_not_split_brain(tmp_path):
    feed = Feed(tmp_path, me=LVS1, priority=100)
    feed.adverts(LVS2, 50, 0.0, 10.5)  # lvs2 advertised until it heard lvs1
    feed.hold(9.9)
    feed.adverts(LVS1, 100, 9.9, 30.0)
    assert feed.started() == []


def test_a_witness_sees_split_brain_when_two_sources_keep_advertising(tmp_path):
    feed = Feed(tmp_path, me="192.168.8.10")
    feed.adverts(LVS1, 100, 0.5, 20.0)
    feed.adverts(LVS2, 50, 3.8, 20.0)
    [change] = feed.started()
    assert change.problem.code == "split-brain" and 6.8 < change.time < 7.5
    assert "192.168.8.100 prio 100 and 192.168.8.110 prio 50 both advertising" in change.problem.text()


def test_a_witness_sees_no_split_brain_in_a_preemption(tmp_path):
    feed = Feed(tmp_path, me="192.168.8.10")
    feed.adverts(LVS2, 50, 0.0, 10.2)
    feed.adverts(LVS1, 100, 10.0, 30.0)
    assert feed.started() == []


def test_dual_masters_taking_turns_on_the_wire_make_one_split_brain_not_a_flapping_one(tmp_path):
    """Each master restarts its advert timer on the other's advert: on the wire they take
    turns (the pattern keepalived 2.2.7 showed with a different address list on lvs2,
    but here the lists agree so that only split brain counts)."""
    feed = Feed(tmp_path, me=LVS1, priority=100)
    feed.hold(0.0)
    theirs = [3.8, 5.8, 6.8, 8.8, 13.8, 14.8, 15.8, 18.8, 19.8, 20.8, 23.8, 26.8, 27.8, 29.8]
    for t in sorted(theirs + [t + 0.5 for t in range(30) if t + 0.5 not in theirs]):
        if t in theirs:
            feed.advert(t, LVS2, 50)
            feed.advert(t + 0.0002, LVS2, 50, vantage=STACK)
        else:
            feed.advert(t, LVS1, 100)
        feed.tick(t + 0.1)
    feed.until(31)
    assert [c.problem.code for c in feed.started()] == ["split-brain"]
    assert feed.ended() == []
    feed.until(40)  # lvs2 gave up at 29.8: gone 4 s later, over 3 s after that
    [over] = feed.ended("split-brain")
    assert 36.7 <= over.time <= 37.3
    # from lvs2's first advert to one interval after its last
    assert over.text() == "split-brain over: VI_1 vrid 50 on eth0, after 27.0 s"


def test_no_advert_for_3_intervals_plus_1_s_and_not_holding_is_no_master(tmp_path):
    feed = Feed(tmp_path)
    feed.until(3.9)
    assert feed.started() == []
    feed.until(4.0)
    [change] = feed.started()
    assert change.problem.code == "no-master" and change.time == pytest.approx(4.0)
    assert change.problem.text() == ("VI_1 vrid 50 on eth0: no master: no advert for 192.168.8.142"
                                     " for 4.0 s and this director does not hold it")
    feed.advert(5.0, LVS1, 100)
    assert [c.problem.code for c in feed.ended()] == ["no-master"]


def test_a_master_that_resigns_with_nobody_taking_over_leaves_no_master(tmp_path):
    feed = Feed(tmp_path)
    feed.adverts(LVS1, 100, 0.5, 10.0)
    feed.advert(10.0, LVS1, 0)  # resigned: its last advert as master was at 9.5
    feed.until(13.4)
    assert feed.started() == []
    feed.until(13.6)
    assert [c.problem.code for c in feed.started()] == ["no-master"]


def test_holding_the_addresses_is_a_master(tmp_path):
    feed = Feed(tmp_path)
    feed.hold(0.0)
    feed.until(20)
    assert feed.started() == []


def test_adverts_that_reach_the_wire_but_not_the_stack_are_filtered_after_hold(tmp_path):
    feed = Feed(tmp_path)
    feed.adverts(LVS1, 100, 0.5, 4.0)
    feed.adverts(LVS1, 100, 4.5, 12.0, stack=False)  # a firewall rule from 4.2 s on
    [change] = feed.started()
    assert change.problem.code == "filtered" and 7.5 < change.time <= 8.2
    assert change.message.startswith(
        "filtered (critical): VI_1 vrid 50 on eth0: filtered: 4 adverts from 192.168.8.100 prio 100 reached the"
        " interface but not the VRRP stack for 3.")
    assert "IP protocol 112" in change.message
    feed.adverts(LVS1, 100, 12.5, 20.0)  # the rule is gone
    [over] = feed.ended("filtered")
    assert 15.4 < over.time < 16.0  # the first copy at 12.5, then hold


def test_a_stack_copy_read_before_its_wire_copy_is_no_drop(tmp_path):
    feed = Feed(tmp_path)
    for n in range(20):
        t = 0.5 + n
        feed.advert(t, LVS1, 100, vantage=STACK)
        feed.advert(t + 0.001, LVS1, 100)
        feed.tick(t + 0.5)
    assert feed.started() == []


def test_unicast_adverts_for_another_host_are_not_expected_on_the_stack(tmp_path):
    feed = Feed(tmp_path, me="192.168.8.10")
    feed.adverts(LVS1, 100, 0.5, 12.0, stack=False, destination=LVS2)
    assert "filtered" not in [c.problem.code for c in feed.started()]


@pytest.mark.parametrize("kwargs, field, words", [
    ({"addresses": (VIP, OTHER)}, "addresses",
     "addresses 192.168.8.142 192.168.8.143, here 192.168.8.142"),
    ({"interval": 2}, "advert_int", "advert_int 2 s, here 1 s"),
    ({"version": 3}, "version", "version 3, here 2"),
    ({"auth_type": wire.AUTH_NONE}, "auth_type", "auth_type none, here pass"),
    ({"password": b"s3cret!"}, "auth_pass", "auth_pass differs"),
])
def test_a_mismatched_advert_names_the_field_and_both_values(tmp_path, kwargs, field, words):
    feed = Feed(tmp_path)
    feed.adverts(LVS1, 100, 0.5, 3.0, **kwargs)
    [change] = feed.started()
    problem = change.problem
    assert problem.code == "mismatch" and change.time == pytest.approx(0.5)
    assert [f[:2] for f in problem.fields] == [(LVS1, field)]
    assert words in problem.text() and "192.168.8.100 prio 100" in problem.text()
    assert "toto" not in problem.text() and "s3cret" not in problem.text()


def test_a_mismatch_from_a_source_that_never_sent_our_list_is_flagged_as_not_a_known_peer(tmp_path):
    feed = Feed(tmp_path)
    feed.adverts(LVS1, 100, 0.5, 3.0)
    feed.adverts(LVS1, 100, 3.5, 6.0, interval=2)  # our peer, configured differently
    feed.adverts(STRANGER, 200, 3.7, 6.0, addresses=("192.168.8.102",))
    text = feed.started("mismatch")[0].problem.text()
    feed.tick(6.0)
    [problem] = [p for p in feed.detector.problems() if p.code == "mismatch"]
    assert "192.168.8.100 prio 100: advert_int 2 s, here 1 s" in problem.text()
    assert "192.168.8.100 is not a known peer" not in problem.text()
    assert ("192.168.8.10 is not a known peer: it never advertised this instance's address list;"
            " another cluster on vrid 50?") in problem.text()
    assert text  # the first mismatch started the problem


def test_with_unicast_peers_a_known_peer_is_a_unicast_peer(tmp_path):
    feed = Feed(tmp_path, extra="    unicast_peer {\n        192.168.8.100\n    }\n")
    feed.adverts(LVS1, 100, 0.5, 2.0, addresses=(VIP, OTHER), destination=LVS2)
    feed.adverts(STRANGER, 100, 0.7, 2.0, addresses=(VIP, OTHER), destination=LVS2)
    text = feed.started("mismatch")[0].problem.text()
    assert "192.168.8.10 is not a known peer: not a unicast_peer" in text
    assert "192.168.8.100 is not a known peer" not in text


def test_a_mismatch_ends_hold_seconds_after_the_source_is_silent(tmp_path):
    feed = Feed(tmp_path)
    feed.adverts(LVS1, 100, 0.5, 5.0, interval=2)
    feed.adverts(LVS1, 100, 5.5, 8.0)
    feed.until(20)
    [over] = feed.ended("mismatch")
    assert 4.5 + 4 + 3 <= over.time <= 4.5 + 4 + 3 + 0.3


def test_adverts_for_a_vrid_nobody_configured_are_foreign_a_warning(tmp_path):
    feed = Feed(tmp_path)
    feed.adverts(LVS1, 100, 0.5, 3.0)
    feed.adverts(STRANGER, 100, 0.6, 3.0, vrid=51, addresses=("192.168.8.101",))
    [change] = feed.started()
    assert (change.problem.code, change.problem.severity) == ("foreign", "warning")
    assert change.problem.text() == ("eth0 vrid 51: foreign: adverts from 192.168.8.10 prio 100"
                                     " (v2, 192.168.8.101): a VRID keepalived.conf does not use")
    feed.adverts(LVS1, 100, 3.0, 15.0)
    assert [c.problem.code for c in feed.ended()] == ["foreign"]


def test_ignored_and_configured_vrids_are_not_foreign(tmp_path):
    feed = Feed(tmp_path, ignore=(51,))
    feed.adverts(STRANGER, 100, 0.6, 3.0, vrid=51)
    feed.adverts(STRANGER, 100, 0.7, 3.0, vrid=52, addresses=(OTHER,))  # VI_2: not watched
    feed.adverts(LVS1, 100, 0.5, 3.0)
    assert feed.started() == []


def test_a_bad_checksum_is_not_an_advert(tmp_path):
    feed = Feed(tmp_path)
    feed.hold(0.0)
    feed.adverts(LVS1, 100, 0.5, 10.0, bad_checksum=True)
    assert feed.started() == []
    assert feed.detector.status(10)[0].sources == []


def test_a_spray_of_source_addresses_cannot_grow_memory(tmp_path):
    feed = Feed(tmp_path)
    for n in range(500):
        feed.advert(n * 0.01, f"10.{n // 250}.{n % 250}.1", 10, vrid=51)
    [(_interface, _family, _vrid, sources)] = feed.detector.foreign_routers()
    assert len(sources) == detect.MAX_SOURCES


def test_hold_can_be_set(tmp_path):
    feed = Feed(tmp_path, hold=6.0)
    feed.hold(0.0)
    feed.adverts(LVS1, 100, 0.5, 6.0)
    assert feed.started() == []
    feed.adverts(LVS1, 100, 6.0, 8.0)
    assert [c.problem.code for c in feed.started()] == ["split-brain"]


@pytest.mark.parametrize("carried", [(VIP, VIP), (VIP,)], ids=["2.2-twice", "2.3-once"])
def test_a_vip_listed_twice_in_an_instance_is_matched_by_either_releases_adverts(tmp_path,
                                                                                 carried):
    """keepalived 2.2 advertises an address listed twice in one instance twice; 2.3
    ignores the second ("VIP duplicates a VIP"): neither is a mismatch or no master."""
    twice = "    virtual_ipaddress {\n        192.168.8.142\n    }\n"
    [instance] = load(tmp_path, extra=twice)[1]
    assert instance.address_texts() == [VIP, VIP]  # as the configuration lists them
    feed = Feed(tmp_path, extra=twice)
    feed.adverts(LVS1, 100, 0.5, 30, addresses=carried)
    assert feed.changes == []
    assert feed.detector.status(30)[0].adverts == 30


def test_a_vip_listed_twice_is_not_matched_by_an_advert_of_another_list(tmp_path):
    feed = Feed(tmp_path, extra="    virtual_ipaddress {\n        192.168.8.142\n    }\n")
    feed.adverts(LVS1, 100, 0.5, 10, addresses=(VIP, OTHER))
    assert "mismatch" in [c.problem.code for c in feed.started()]
