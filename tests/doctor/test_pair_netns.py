"""Each pair code's danger, first shown on the real keepalived, then flagged by the doctor.

lvs1 and lvs2 run Debian's keepalived in network namespaces (harness/peers/pair.py)
from two files that differ in one thing. Where keepalived discards the other side's
adverts, the backup never hears the master and takes the VIP too: both directors hold
it at once, a dual master, watched here. Then the doctor, given the same two files,
must flag exactly that pair of lines, one finding per side, each naming the other's
file:line, without printing a password.

keepalived 2.2.7 (Debian 12) discards an advert whose address list differs; 2.3.3
(Debian 13) accepts it (one MASTER, a mismatch logged): the installed version decides
what the address case expects. VRRPv3 does not check advert_int on either: no dual
master there, which is why the doctor only warns.
"""

import json
import re
import subprocess

import pytest

from harness.peers import cli
from harness.peers.netns import cleanup_stale, run_prefix
from harness.peers.pair import DIRECTORS, VIP, Pair, config
from harness.peers.vrrp import keepalived_version

pytestmark = [pytest.mark.netns, pytest.mark.slow]

VIP2 = "192.168.8.143"
LVS1, LVS2 = DIRECTORS["lvs1"], DIRECTORS["lvs2"]


ACCEPTS_OTHER_ADDRESSES = keepalived_version() >= (2, 3, 3)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    cleanup_stale("kcpr")
    with Pair(run_prefix("kcpr"), tmp_path_factory.mktemp("pair")) as pair:
        yield pair


def line_of(path, text, after=None):
    """The 1-based number of the first line of ``path`` containing ``text`` (after ``after``)."""
    lines = path.read_text().splitlines()
    start = lines.index(next(l for l in lines if after in l)) if after else 0
    return start + 1 + next(i for i, l in enumerate(lines[start:]) if text in l)


def pair_findings(pair):
    done = subprocess.run([*cli.command("kachecks"), "doctor", "-f", pair.path("lvs1"), "--peer",
                           pair.path("lvs2"), "--no-run", "--no-keepalived", "--json", "-q"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode in (0, 1), done.stderr
    return [f for f in json.loads(done.stdout) if f["code"].startswith("pair-")]


def assert_flagged(pair, code, mine, theirs, severity="error"):
    """Exactly one ``code`` finding at each side's line, each naming the other's file:line."""
    lvs1, lvs2 = str(pair.path("lvs1")), str(pair.path("lvs2"))
    found = pair_findings(pair)
    assert {(f["file"], f["line"], f["severity"], f["code"]) for f in found} == {
        (lvs1, mine, severity, code), (lvs2, theirs, severity, code)}, found
    for f in found:
        other = f"{lvs2}:{theirs}" if f["file"] == lvs1 else f"{lvs1}:{mine}"
        assert other in f["message"], f
    return found


def dual_master(pair, configs, vip=VIP, seconds=2.0):
    """Start the pair; both directors end up holding ``vip``, and keep it."""
    pair.start(configs)
    pair.wait_holders({vip: {"lvs1", "lvs2"}}, timeout=15)
    pair.hold_holders({vip: {"lvs1", "lvs2"}}, seconds)


def dual_master_by_count(pair, configs):
    """2.2.7: lvs1 advertises two addresses, lvs2 expects one and discards them all."""
    dual_master(pair, configs)
    assert "received an unexpected ip number count 2, expected 1" in pair.ka["lvs2"].output()


def address_finding(pair):
    """lvs1's pair-addresses message, flagged at both virtual_ipaddress lines."""
    found = assert_flagged(pair, "pair-addresses",
                           line_of(pair.path("lvs1"), "virtual_ipaddress {"),
                           line_of(pair.path("lvs2"), "virtual_ipaddress {"))
    return next(f for f in found if f["file"] == str(pair.path("lvs1")))["message"]


def test_a_different_address_list_is_a_dual_master_on_2_2_7_and_flagged_at_both_lines(pair):
    configs = {"lvs1": config("lvs1", 100, vips=(VIP, VIP2)), "lvs2": config("lvs2", 50)}
    if ACCEPTS_OTHER_ADDRESSES:
        # 2.3.3: the advert is accepted, one MASTER; the backup logs the mismatch.
        pair.start(configs)
        pair.ka["lvs2"].wait_log(r"\(VI_1\) expected 1 VIPs but received 2", timeout=15)
        pair.hold_holders({VIP: {"lvs1"}, VIP2: {"lvs1"}}, 4.5)
    else:
        dual_master_by_count(pair, configs)
    message = address_finding(pair)
    assert f"{VIP2} only here (2 here, 1 on lvs2)" in message
    assert "2.3.3 accepts them" in message and "2.2.7" in message


def test_an_address_listed_twice_on_one_side_is_a_dual_master_on_2_2_7_and_flagged(pair):
    configs = {"lvs1": config("lvs1", 100, vips=(VIP, VIP)), "lvs2": config("lvs2", 50)}
    if ACCEPTS_OTHER_ADDRESSES:
        # 2.3.3 ignores the second line: both advertise one address, one MASTER
        pair.start(configs)
        pair.ka["lvs1"].wait_log(r"\(VI_1\): VIP duplicates a VIP", timeout=15)
        pair.wait_holders({VIP: {"lvs1"}})
        pair.hold_holders({VIP: {"lvs1"}}, 4.5)
    else:
        dual_master_by_count(pair, configs)
    assert f"{VIP} twice here, once on lvs2" in address_finding(pair)


def test_a_different_v2_advert_int_is_a_dual_master_and_flagged_at_both_lines(pair):
    dual_master(pair, {"lvs1": config("lvs1", 100), "lvs2": config("lvs2", 50, advert_int=2)})
    assert re.search(r"advertisement interval mismatch", pair.ka["lvs2"].output())
    assert_flagged(pair, "pair-advert", line_of(pair.path("lvs1"), "advert_int"),
                   line_of(pair.path("lvs2"), "advert_int"))


def test_a_different_v3_advert_int_is_no_dual_master_and_only_a_warning(pair):
    """VRRPv3: the backup adopts the master's interval (2.2.7 and 2.3.3 alike)."""
    v3 = "    version 3\n"
    pair.start({"lvs1": config("lvs1", 100, password=None, instance_extra=v3),
                "lvs2": config("lvs2", 50, password=None, advert_int=2, instance_extra=v3)})
    pair.wait_holders({VIP: {"lvs1"}})
    pair.hold_holders({VIP: {"lvs1"}}, 3 * 2 + 2)  # past lvs2's own master-down timer
    found = assert_flagged(pair, "pair-advert", line_of(pair.path("lvs1"), "advert_int"),
                           line_of(pair.path("lvs2"), "advert_int"), severity="warning")
    assert all("VRRPv3 does not check it" in f["message"] for f in found)


def test_a_different_v2_password_is_a_dual_master_and_flagged_without_the_password(pair):
    dual_master(pair, {"lvs1": config("lvs1", 100, password="secret-1"),
                       "lvs2": config("lvs2", 50, password="secret-2")})
    assert "received an invalid passwd" in pair.ka["lvs2"].output()
    found = assert_flagged(pair, "pair-advert", line_of(pair.path("lvs1"), "auth_pass"),
                           line_of(pair.path("lvs2"), "auth_pass"))
    assert not [f for f in found if "secret" in f["message"]]


def test_passwords_equal_in_their_first_8_characters_are_the_same_password(pair):
    """keepalived sends 8 bytes of auth_pass: no dual master, and no finding."""
    pair.start({"lvs1": config("lvs1", 100, password="kachecks-lvs1"),
                "lvs2": config("lvs2", 50, password="kachecks-lvs2")})
    pair.wait_holders({VIP: {"lvs1"}})
    pair.hold_holders({VIP: {"lvs1"}}, 4.5)
    assert pair_findings(pair) == []


def test_a_different_auth_type_is_a_dual_master_and_flagged_at_both_lines(pair):
    dual_master(pair, {"lvs1": config("lvs1", 100), "lvs2": config("lvs2", 50, password=None)})
    lvs1_auth = line_of(pair.path("lvs1"), "auth_type")
    assert_flagged(pair, "pair-advert", lvs1_auth, line_of(pair.path("lvs2"), "vrrp_instance"))


def test_a_different_vrrp_version_is_a_dual_master_and_flagged_at_both_lines(pair):
    dual_master(pair, {"lvs1": config("lvs1", 100, password=None),
                       "lvs2": config("lvs2", 50, password=None, instance_extra="    version 3\n")})
    assert_flagged(pair, "pair-advert", line_of(pair.path("lvs1"), "vrrp_instance"),
                   line_of(pair.path("lvs2"), "version 3"))


def test_unicast_peers_that_are_not_mirror_images_are_a_dual_master(pair):
    """lvs1 lists 192.168.8.111 (a typo for lvs2's .110): its adverts never reach lvs2."""
    def unicast(source, peer):
        return f"    unicast_src_ip {source}\n    unicast_peer {{\n        {peer}\n    }}\n"

    dual_master(pair, {"lvs1": config("lvs1", 100, instance_extra=unicast(LVS1, "192.168.8.111")),
                       "lvs2": config("lvs2", 50, instance_extra=unicast(LVS2, LVS1))})
    found = assert_flagged(pair, "pair-unicast", line_of(pair.path("lvs1"), "unicast_peer"),
                           line_of(pair.path("lvs2"), "unicast_src_ip"))
    assert all(LVS2 in f["message"] for f in found)
