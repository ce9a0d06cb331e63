"""The what-if against the real keepalived pair: each prediction forced on keepalived and watched.

For every case, lvs1 and lvs2 run Debian's keepalived in network namespaces
(harness/peers/pair.py) from the very files the doctor then reads with
``--what-if --json --peer``. The test waits for the steady state the doctor
predicts (holding it past every start-up timer), forces the case's failure on
keepalived (a script's flag file, a real check's page, a track file's value,
an interface, keepalived itself), waits until keepalived shows the effective
priority or FAULT the doctor predicts for the failing director, then watches
the VIPs: they must end where the doctor says, and stay there past a
master-down interval. A wrong prediction fails the test.
"""

import json
import re
import time

import pytest

from harness.checks import MD5_SERVER1, SERVER1
from harness.peers import cli
from harness.peers.keepalived import secure_dir, secure_executables
from harness.peers.netns import cleanup_stale, run_prefix, wait_for
from harness.peers.pair import DIRECTORS, VIP, Pair, config, instance, script_block

pytestmark = [pytest.mark.netns, pytest.mark.slow]

WEB1 = "192.168.8.101"
VIP2 = "192.168.8.143"
DOWN_TIMER = 3 * 1 + 1  # advert_int 1: a backup takes over within 3 s + skew (< 1 s)
TRACK = "    track_script {{\n        {0}\n    }}\n"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    cleanup_stale("kcwi")
    workdir = tmp_path_factory.mktemp("whatif")
    with Pair(run_prefix("kcwi"), workdir, extra={"web1": WEB1}) as pair:
        site = secure_dir(workdir / "www")
        (site / "service.txt").write_bytes(SERVER1)
        pair["web1"].start(["python3", "-m", "http.server", "80", "--bind", WEB1, "--directory", site],
                           log=workdir / "web1.log")
        # a second interface to track (no dummy driver here): a veth pair inside lvs1
        pair["lvs1"].ip("link", "add", "eth1", "type", "veth", "peer", "name", "eth1p")
        pair["lvs1"].ip("link", "set", "eth1p", "up")
        pair.site = site
        wait_for(lambda: pair["lvs1"].run(["python3", "-c", "import socket; socket.create_connection"
                                           f"(('{WEB1}', 80), 1)"]).returncode == 0, 10,
                 interval=0.1, what="web1")
        yield pair


def predict(pair):
    done = cli.run("kachecks", "doctor", "-f", pair.path("lvs1"), "--peer", pair.path("lvs2"),
                   "--what-if", "--json", "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def holders(instances, vips):
    """{vip: {holder}} of a scenario's instances."""
    return {vips[name]: {i["holder"]} if i["holder"] else set() for name, i in instances.items()}


def run_case(pair, configs, director, failure, *, vips=None, files=None, actions=None,
             together=False, expect=None):
    """Start the pair, check the steady state, force ``failure`` on ``director``, check after.

    ``expect``: (steady holder, holder after) the case is about, so that a
    prediction changed by mistake fails here too, not only against keepalived.
    """
    vips = vips or {"VI_1": VIP}
    pair.reset(configs)
    for path, value in (files or {}).values():
        pair.write_track_file(path, value)
    pair["lvs1"].ip("link", "set", "eth1", "up")
    predicted = predict(pair)
    if together:
        pair.partition("lvs2")
    pair.start()
    started = time.monotonic()
    steady = predicted[0]["instances"]
    [after] = [s["instances"] for s in predicted
               if s["director"] == director and s["failure"] == failure]
    if expect is not None:
        assert (steady["VI_1"]["holder"], after["VI_1"]["holder"]) == expect, predicted
    if together:
        # Both alone become MASTER at once; joined, they settle as if started at one instant.
        pair.wait_holders({vip: {"lvs1", "lvs2"} for vip in vips.values()}, timeout=15)
        pair.partition("lvs2", apart=False)
        started = time.monotonic()
    pair.wait_holders(holders(steady, vips), timeout=15)
    pair.hold_holders(holders(steady, vips), max(1.0, started + DOWN_TIMER + 1.5 - time.monotonic()))

    ka = pair.ka[director]
    mark = len(ka.output())
    pair.force(director, failure, {name: path for name, (path, _) in (files or {}).items()},
               actions)
    for name, now in after.items():
        state, priority = now["state"][director], now["priority"][director]
        if state == "FAULT":
            wanted = rf"\({name}\) Entering FAULT STATE"
        elif state in ("MASTER", "BACKUP") and priority != steady[name]["priority"][director]:
            wanted = rf"\({name}\) Changing effective priority from \d+ to {priority}\b"
        else:
            continue
        wait_for(lambda wanted=wanted: re.search(wanted, ka.output()[mark:]), 15,
                 what=f"keepalived on {director}: {wanted}")
    moved = holders(after, vips) != holders(steady, vips)
    if moved:
        pair.wait_holders(holders(after, vips), timeout=DOWN_TIMER + 6)
        pair.hold_holders(holders(after, vips), 1.5)
    else:
        pair.hold_holders(holders(after, vips), DOWN_TIMER + 1)
    return predicted


def scripted(pair, priorities, weight=None, nopreempt=True, only=None, **settings):
    """Both directors with a /usr/bin/test vrrp_script ``chk`` (``only``: tracked there only)."""
    out = {}
    for name, priority in priorities.items():
        tracked = only is None or name == only
        out[name] = config(name, priority, nopreempt=nopreempt,
                           blocks=script_block("chk", pair.flags_of(name), weight=weight),
                           tracks=TRACK.format("chk") if tracked else "", **settings)
    return out


def test_the_reference_deployments_weight_never_moves_the_vip(pair, tmp_path):
    """chk_web1 (kachecks-http, weight -20) fails on lvs1: 100 - 20 = 80 > 50, and nopreempt."""
    bindir, _ = secure_executables(cli.bin_dir(), ["kachecks-http"], tmp_path / "bin")
    page = pair.site / "service.txt"
    page.write_bytes(SERVER1)
    check = (f'vrrp_script chk_web1 {{\n    script "{bindir}/kachecks-http --url'
             f' http://{WEB1}/service.txt --digest {MD5_SERVER1} --timeout 2"\n'
             "    interval 1\n    weight -20\n}\n")
    configs = {name: config(name, priority, blocks=check, tracks=TRACK.format("chk_web1"))
               for name, priority in (("lvs1", 100), ("lvs2", 50))}
    predicted = run_case(pair, configs, "lvs1", "vrrp_script chk_web1 fails",
                         actions={"vrrp_script chk_web1 fails":
                                  lambda: page.write_bytes(b"hello from a bad deploy\n")},
                         expect=("lvs1", "lvs1"))
    [after] = [s for s in predicted if s["failure"] == "vrrp_script chk_web1 fails"
               and s["director"] == "lvs1"]
    assert after["instances"]["VI_1"]["priority"] == {"lvs1": 80, "lvs2": 50}
    page.write_bytes(SERVER1)


def test_a_weight_below_the_peer_moves_the_vip_without_nopreempt(pair):
    configs = scripted(pair, {"lvs1": 100, "lvs2": 50}, weight=-60, nopreempt=False)
    run_case(pair, configs, "lvs1", "vrrp_script chk fails", expect=("lvs1", "lvs2"))


def test_nopreempt_keeps_the_vip_whatever_the_weight(pair):
    configs = scripted(pair, {"lvs1": 100, "lvs2": 50}, weight=-60, nopreempt=True)
    run_case(pair, configs, "lvs1", "vrrp_script chk fails", expect=("lvs1", "lvs1"))


def test_a_weight_0_script_failing_is_fault_and_moves_the_vip_despite_nopreempt(pair):
    configs = scripted(pair, {"lvs1": 100, "lvs2": 50}, weight=None, nopreempt=True)
    run_case(pair, configs, "lvs1", "vrrp_script chk fails", expect=("lvs1", "lvs2"))


def test_a_track_file_at_its_largest_drop_moves_the_vip(pair):
    """weight 10: the doctor's failing value is -25 (-250: priority 1), -26 would be FAULT."""
    track = pair.workdir / "web1.track"
    block = f"track_file tf_web1 {{\n    file {track}\n    weight 10\n}}\n"
    configs = {"lvs1": config("lvs1", 100, nopreempt=False, blocks=block,
                              tracks="    track_file {\n        tf_web1\n    }\n"),
               "lvs2": config("lvs2", 50, nopreempt=False)}
    predicted = run_case(pair, configs, "lvs1", "track_file tf_web1 reads -25",
                         files={"tf_web1": (track, 0)}, expect=("lvs1", "lvs2"))
    [after] = [s for s in predicted if s["failure"] == "track_file tf_web1 reads -25"]
    assert after["instances"]["VI_1"]["priority"]["lvs1"] == 1


def test_a_tracked_interface_down_is_fault(pair):
    configs = {"lvs1": config("lvs1", 100, tracks="    track_interface {\n        eth1\n    }\n"),
               "lvs2": config("lvs2", 50)}
    run_case(pair, configs, "lvs1", "interface eth1 down", expect=("lvs1", "lvs2"))


def test_keepalived_stopped_on_the_master_hands_the_vip_over(pair):
    configs = {"lvs1": config("lvs1", 100), "lvs2": config("lvs2", 50)}
    run_case(pair, configs, "lvs1", "keepalived stopped", expect=("lvs1", "lvs2"))


def test_the_director_down_hands_the_vip_over_without_a_word(pair):
    configs = {"lvs1": config("lvs1", 100), "lvs2": config("lvs2", 50)}
    run_case(pair, configs, "lvs1", "director down", expect=("lvs1", "lvs2"))


def test_equal_priorities_started_together_go_to_the_higher_primary_address(pair):
    """100 and 100; lvs2's 192.168.8.110 is above lvs1's .100 (given as mcast_src_ip)."""
    configs = {name: config(name, 100, instance_extra=f"    mcast_src_ip {address}\n")
               for name, address in DIRECTORS.items()}
    run_case(pair, configs, "lvs2", "keepalived stopped", together=True, expect=("lvs2", "lvs1"))


def test_equal_priorities_keep_the_master_when_a_weight_brings_it_level(pair):
    """lvs1 100 - 20 = 80 against lvs2's 80, no nopreempt: an equal advert does not preempt."""
    configs = scripted(pair, {"lvs1": 100, "lvs2": 80}, weight=-20, nopreempt=False)
    run_case(pair, configs, "lvs1", "vrrp_script chk fails", expect=("lvs1", "lvs1"))


def test_nopreempt_cleared_by_state_master_lets_the_backup_preempt(pair):
    """lvs2 (50) says nopreempt, but with state MASTER keepalived clears it: 100 - 60 = 40 < 50
    moves the VIP; state MASTER below priority 255 does not win the start-up."""
    configs = scripted(pair, {"lvs1": 100}, weight=-60)
    configs["lvs2"] = config("lvs2", 50, state="MASTER", nopreempt=True)
    run_case(pair, configs, "lvs1", "vrrp_script chk fails", expect=("lvs1", "lvs2"))


def test_a_sync_group_member_in_fault_takes_the_whole_group_over(pair):
    """chk (weight 0) is tracked by VI_2 only on lvs1; VI_1 follows it through the sync group."""
    group = "vrrp_sync_group G1 {\n    group {\n        VI_1\n        VI_2\n    }\n}\n"
    configs = {}
    for name, priority in (("lvs1", 100), ("lvs2", 50)):
        second = instance(priority, name="VI_2", vrid=51, vips=(VIP2,),
                          tracks=TRACK.format("chk") if name == "lvs1" else "")
        configs[name] = config(name, priority, blocks=script_block("chk", pair.flags_of(name)),
                               after=second + group)
    run_case(pair, configs, "lvs1", "vrrp_script chk fails", vips={"VI_1": VIP, "VI_2": VIP2},
             expect=("lvs1", "lvs2"))


def test_a_weighted_script_of_a_sync_group_member_is_ignored_as_predicted(pair):
    """Without sync_group_tracking_weight keepalived drops the weighted script: the doctor lists
    no failure for it, and failing it on keepalived moves nothing."""
    group = "vrrp_sync_group G1 {\n    group {\n        VI_1\n    }\n}\n"
    configs = scripted(pair, {"lvs1": 100, "lvs2": 50}, weight=-60, nopreempt=False,
                       after=group)
    pair.reset(configs)
    predicted = predict(pair)
    assert not [s for s in predicted if s["failure"] == "vrrp_script chk fails"]
    pair.start()
    pair.wait_holders({VIP: {"lvs1"}})
    pair.ka["lvs1"].wait_log(r"ignoring tracked script chk with weights due to SYNC group")
    pair.fail_script("lvs1", "chk")
    pair.hold_holders({VIP: {"lvs1"}}, DOWN_TIMER + 1)
    assert "Changing effective priority" not in pair.ka["lvs1"].output()
