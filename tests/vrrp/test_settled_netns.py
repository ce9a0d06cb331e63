"""The model of a vrrp_instance (kachecks.vrrp.instances) against keepalived's own dump of it.

keepalived -d writes, once it has loaded its configuration, every instance as it settled
it: version, initial state, priority, advert interval, preemption, authentication,
addresses, peers, multicast group. The installed keepalived (2.2.7 on Debian 12, 2.3.3 on
13) loads the cases of harness/settled.py in a namespace; the model, which the pair
watcher and the doctor's --peer and --what-if share, must say the same of each.
"""

import pytest

from harness import settled
from harness.peers.keepalived import DUMP_END, Keepalived, dumped, dumped_lines
from harness.peers.netns import Network, cleanup_stale, run_prefix
from harness.peers.vrrp import keepalived_version
from kachecks.keepalivedconf import read
from kachecks.vrrp import instances, wire

pytestmark = [pytest.mark.netns, pytest.mark.slow]

BASE = "kcst"


def run_keepalived(tmp_path, text, until=DUMP_END):
    """keepalived -d on ``text`` in a namespace of its own; (its log, the model's instances)."""
    cleanup_stale(BASE)
    with Network(run_prefix(BASE), {"lvs1": "192.168.8.100"}) as net:
        ka = Keepalived(net["lvs1"], tmp_path / "ka", text, args=["-d"]).start()
        try:
            ka.wait_log(until, timeout=20)
        finally:
            ka.stop()
        output = ka.output()
    return output, instances.settled(read(str(ka.conf)))


def as_dumped(instance):
    """An Instance in the terms of keepalived's dump (a digest where it prints a password)."""
    return {"version": instance.version, "state": instance.state,
            "interface": instance.interface,
            "group": None if instance.peers else wire.address_text(instance.family, instance.group),
            "priority": instance.priority, "advert_int": instance.advert_int,
            "nopreempt": instance.nopreempt, "preempt_delay": instance.preempt_delay,
            "auth": instance.auth_type, "password": instance.auth_digest,
            "vips": instance.address_texts(), "peers": [str(p) for p in instance.peers]}


def digested(dump):
    password = dump["password"]
    return {**dump, "password": wire.pass_digest(password) if password is not None else None}


def test_every_case_is_what_keepalived_itself_settles(tmp_path):
    text = "global_defs {\n    router_id lvs1\n}\n" + settled.config()
    output, model = run_keepalived(tmp_path, text)
    dump = dumped(output)
    assert sorted(dump) == sorted(case_id for case_id, _, _ in settled.CASES), output[-3000:]
    for instance in model:
        assert as_dumped(instance) == digested(dump[instance.name]), \
            dumped_lines(output, instance.name)


def test_global_defs_count_wherever_they_stand_and_a_second_block_of_a_name_is_skipped(tmp_path):
    text = (settled.instance("VI_1", 50, ["authentication {\n        auth_type PASS\n"
                                          "        auth_pass secret\n    }", settled.VIP])
            + settled.instance("VI_1", 51, [settled.VIP])
            + "global_defs {\n    router_id lvs1\n    vrrp_strict\n    vrrp_version 3\n}\n")
    output, model = run_keepalived(tmp_path, text)
    dump = dumped(output)
    assert "vrrp instance VI_1 already defined" in output
    [instance] = model
    assert (instance.vrid, instance.version, instance.auth_type) == (50, 3, None)
    assert as_dumped(instance) == digested(dump["VI_1"])


def test_default_interface_gives_no_instance_an_interface(tmp_path):
    text = ("global_defs {\n    router_id lvs1\n    default_interface eth0\n}\n"
            + settled.instance("VI_1", 50, [settled.VIP]).replace("    interface eth0\n", ""))
    output, [instance] = run_keepalived(tmp_path, text, until=r"\(VI_1\) Unknown interface!")
    assert instance.interface is None and instance.problems == ["no interface"]


def test_a_vip_listed_twice_in_an_instance_is_kept_twice_by_2_2_and_once_by_2_3(tmp_path):
    """What the pair watcher takes as an instance's address list either way: the model
    keeps the list as written; keepalived 2.3 ignores the second ("VIP duplicates a VIP")."""
    text = ("global_defs {\n    router_id lvs1\n}\n"
            + settled.instance("VI_1", 50, ["virtual_ipaddress {\n        192.168.8.142\n"
                                            "        192.168.8.142\n    }"]))
    output, [instance] = run_keepalived(tmp_path, text)
    assert instance.address_texts() == ["192.168.8.142"] * 2
    kept = dumped(output)["VI_1"]["vips"]
    assert kept == ["192.168.8.142"] * (2 if keepalived_version() < (2, 3, 0) else 1), output
