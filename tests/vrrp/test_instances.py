"""keepalived.conf's vrrp_instance blocks as the watcher reads them, keepalived's defaults included."""

import pytest

from harness.settled import CASES, VIP, instance
from kachecks.errors import UsageError
from kachecks.vrrp import instances, wire

PASS = "authentication {\n        auth_type PASS\n        auth_pass secret\n    }"

REFERENCE = """\
global_defs {
    router_id lvs1
}
vrrp_instance VI_1 {
    state BACKUP
    nopreempt
    interface eth0
    virtual_router_id 50
    priority 100
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass toto
    }
    virtual_ipaddress {
        192.168.8.142/32 dev eth0 label eth0:1
    }
    virtual_ipaddress_excluded {
        192.168.8.143
    }
}
"""


def write(tmp_path, text, name="keepalived.conf"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_the_reference_instance(tmp_path):
    everything, watched = instances.load(write(tmp_path, REFERENCE))
    assert everything == watched
    [vi] = watched
    assert (vi.name, vi.interface, vi.vrid, vi.family, vi.version) == ("VI_1", "eth0", 50, 4, 2)
    assert (vi.advert_int, vi.priority, vi.auth_type) == (1.0, 100, "pass")
    assert vi.address_texts() == ["192.168.8.142"]  # the excluded one is not advertised
    assert vi.auth_digest == wire.pass_digest(b"toto") and "toto" not in repr(vi)
    assert vi.group == wire.address_bytes("224.0.0.18")[1] and vi.unicast_peers == ()
    assert vi.label() == "VI_1 vrid 50 on eth0"
    assert vi.where.endswith("keepalived.conf:4")


def test_keepalived_s_defaults_version_priority_and_ipv6(tmp_path):
    text = ("global_defs {\n    vrrp_version 3\n}\n"
            "vrrp_instance A {\n    state MASTER\n    interface eth1\n    virtual_router_id 7\n"
            "    authentication {\n        auth_type PASS\n        auth_pass x\n    }\n"
            "    virtual_ipaddress {\n        192.168.8.142\n    }\n}\n"
            "vrrp_instance B {\n    interface eth0\n    virtual_router_id 50\n"
            "    advert_int 0.5\n    virtual_ipaddress {\n        fe80::142/64 dev eth2\n"
            "        2001:db8::142\n    }\n    version 2\n}\n")
    a, b = instances.load(write(tmp_path, text))[0]
    assert (a.version, a.priority, a.auth_type, a.advert_int) == (3, 255, None, 1.0)
    # IPv6 is v3: a `version 2` below the first IPv6 address is ignored
    assert (b.family, b.version, b.advert_int) == (6, 3, 0.5)
    assert b.group == wire.address_bytes("ff02::12")[1]
    assert [(wire.address_text(6, p), dev) for p, dev in b.vips] == [("fe80::142", "eth2"),
                                                                    ("2001:db8::142", "eth0")]
    assert b.label() == "B IPv6 vrid 50 on eth0"


def test_unicast_peers_and_source(tmp_path):
    text = REFERENCE.replace("    advert_int 1\n", "    advert_int 1\n    unicast_src_ip 192.168.8.100\n"
                             "    unicast_peer {\n        192.168.8.110 min_ttl 255\n    }\n")
    [vi], _ = instances.load(write(tmp_path, text))
    assert vi.unicast_peers == (wire.address_bytes("192.168.8.110")[1],)
    assert vi.unicast_src == wire.address_bytes("192.168.8.100")[1]


def test_a_multicast_group_of_its_own_or_of_global_defs(tmp_path):
    own = REFERENCE.replace("    advert_int 1\n", "    advert_int 1\n    mcast_dst_ip 224.0.0.19\n")
    [vi], _ = instances.load(write(tmp_path, own))
    assert vi.group == wire.address_bytes("224.0.0.19")[1]
    defaults = REFERENCE.replace("    router_id lvs1\n", "    router_id lvs1\n"
                                 "    vrrp_mcast_group4 224.0.0.20\n")
    [vi], _ = instances.load(write(tmp_path, defaults))
    assert vi.group == wire.address_bytes("224.0.0.20")[1]


def test_at_id_lines_are_read_as_the_director_named(tmp_path):
    text = REFERENCE.replace("    priority 100\n", "@lvs1 priority 100\n@lvs2 priority 50\n")
    path = write(tmp_path, text)
    assert instances.load(path, "lvs1")[0][0].priority == 100
    assert instances.load(path, "lvs2")[0][0].priority == 50


def test_instance_names_choose_what_is_watched(tmp_path):
    text = REFERENCE + REFERENCE.replace("VI_1", "VI_2").replace("router_id 50", "router_id 51")
    everything, watched = instances.load(write(tmp_path, text), names=["VI_2", "VI_2"])
    assert [i.name for i in everything] == ["VI_1", "VI_2"]
    assert [(i.name, i.vrid) for i in watched] == [("VI_2", 51)]


@pytest.mark.parametrize("text, message", [
    ("global_defs {\n}\n", "no vrrp_instance to watch"),
    ("vrrp_instance X {\n    virtual_router_id 5\n}\n", "vrrp_instance X: no interface"),
    ("vrrp_instance X {\n    interface eth0\n}\n", "vrrp_instance X: no virtual_router_id"),
    ("vrrp_instance X {\n    interface eth0\n    virtual_router_id 300\n}\n",
     "virtual_router_id 300 out of range 1-255"),
    ("vrrp_instance X {\n    interface eth0\n    virtual_router_id 5\n    virtual_ipaddress {\n"
     "        not-an-address\n    }\n}\n", "virtual_ipaddress 'not-an-address' is not an address"),
])
def test_what_cannot_be_watched_is_one_line(tmp_path, text, message):
    with pytest.raises(UsageError) as caught:
        instances.load(write(tmp_path, text))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_an_instance_that_is_not_there(tmp_path):
    with pytest.raises(UsageError, match=r"no vrrp_instance VI_9 \(there are: VI_1\)"):
        instances.load(write(tmp_path, REFERENCE), names=["VI_9"])


def test_a_missing_file_is_the_reader_s_one_line(tmp_path):
    with pytest.raises(UsageError, match="cannot read the configuration: No such file"):
        instances.load(str(tmp_path / "nope.conf"))


@pytest.mark.parametrize("case_id, lines, settled", CASES, ids=[c[0] for c in CASES])
def test_an_instance_is_what_keepalived_settles(tmp_path, case_id, lines, settled):
    """Where the doctor's and the watcher's readings used to differ, keepalived's code decides
    (the same cases against keepalived's own dump: test_settled_netns.py)."""
    [vi], _ = instances.load(write(tmp_path, instance(case_id, 50, lines)))
    assert {field: getattr(vi, field) for field in settled} == settled


def test_default_interface_gives_no_instance_an_interface(tmp_path):
    """keepalived: "(VI_1) Unknown interface!" and it exits: default_interface is for static
    addresses only."""
    text = "global_defs {\n    default_interface eth0\n}\n" + instance("VI_1", 50, [VIP]).replace(
        "    interface eth0\n", "")
    with pytest.raises(UsageError, match="vrrp_instance VI_1: no interface"):
        instances.load(write(tmp_path, text))


def test_a_second_instance_of_the_same_name_is_skipped(tmp_path):
    """keepalived: "vrrp instance VI_1 already defined"; the first block stands."""
    everything, _ = instances.load(write(tmp_path, instance("VI_1", 50, [VIP])
                                         + instance("VI_1", 51, [VIP])))
    assert [(i.name, i.vrid) for i in everything] == [("VI_1", 50)]


def test_global_defs_count_wherever_they_stand(tmp_path):
    """keepalived completes the instances once the whole file is read."""
    text = instance("VI_1", 50, [PASS, VIP]) + "global_defs {\n    vrrp_strict\n}\n" + \
        "global_defs {\n    router_id lvs1\n}\n"
    [vi], _ = instances.load(write(tmp_path, text))
    assert (vi.auth_type, vi.auth_ignored) == ("none", "under strict mode")
