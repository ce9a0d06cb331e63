"""`kachecks doctor --what-if` on the doctor alone: the JSON contract, the table, the rules
whose outcome the namespace tests (tests/doctor/test_whatif_netns.py) do not force:
track_process, clamping, the address owner, sync-group weights, preempt_delay, one file."""

import json
from pathlib import Path

from harness.config import toml_text
from harness.peers import cli
from harness.peers.agent import conf_parts
from harness.peers.pair import config, instance

EXAMPLE = Path(__file__).resolve().parents[2] / "packaging/debian/examples/keepalived.conf"
TRACK = "    track_script {{\n        {0}\n    }}\n"


def script(name, weight=None):
    weight_line = f"    weight {weight}\n" if weight is not None else ""
    return f'vrrp_script {name} {{\n    script "/usr/bin/true"\n{weight_line}}}\n'


def what_if(doctor, lvs1, lvs2=None, as_json=True):
    args = ["--what-if", "-f", lvs1] + (["--peer", lvs2] if lvs2 else [])
    run = doctor(*args, as_json=as_json)
    if as_json:
        assert run.code == 0, run
        return json.loads(run.stdout)
    return run


def scenario(scenarios, director, failure, instance="VI_1"):
    [found] = [s for s in scenarios if (s["director"], s["failure"]) == (director, failure)]
    return found["instances"][instance]


def pair_files(write, lvs1, lvs2):
    return write("lvs1/keepalived.conf", lvs1), write("lvs2/keepalived.conf", lvs2)


def test_the_json_is_a_list_of_scenarios_steady_state_first(doctor, write):
    text = EXAMPLE.read_text()
    lvs1 = write("lvs1.conf", text)
    lvs2 = write("lvs2.conf", text.replace("router_id lvs1", "router_id lvs2")
                 .replace("priority 100", "priority 50"))
    scenarios = what_if(doctor, lvs1, lvs2)
    assert all(set(s) == {"director", "failure", "instances"} for s in scenarios)
    assert all(set(i) == {"holder", "priority", "state"} for s in scenarios
               for i in s["instances"].values())
    assert scenarios[0] == {"director": None, "failure": None, "instances": {"VI_1": {
        "holder": "lvs1", "priority": {"lvs1": 100, "lvs2": 50},
        "state": {"lvs1": "MASTER", "lvs2": "BACKUP"}}}}
    assert [(s["director"], s["failure"]) for s in scenarios[1:]] == [
        (d, f) for d in ("lvs1", "lvs2") for f in (
            "vrrp_script chk_web1 fails", "interface eth0 down", "keepalived stopped",
            "director down")]
    assert scenario(scenarios, "lvs1", "vrrp_script chk_web1 fails") == {
        "holder": "lvs1", "priority": {"lvs1": 80, "lvs2": 50},
        "state": {"lvs1": "MASTER", "lvs2": "BACKUP"}}
    assert scenario(scenarios, "lvs1", "keepalived stopped") == {
        "holder": "lvs2", "priority": {"lvs1": 0, "lvs2": 50},
        "state": {"lvs1": "STOP", "lvs2": "MASTER"}}
    assert scenario(scenarios, "lvs1", "director down")["state"] == {"lvs1": "DOWN", "lvs2": "MASTER"}
    assert scenario(scenarios, "lvs2", "interface eth0 down")["state"] == {
        "lvs1": "MASTER", "lvs2": "FAULT"}


def test_the_table_marks_the_failure_that_moves_nothing_and_the_failover_warning(doctor, write):
    text = EXAMPLE.read_text()
    lvs1 = write("lvs1.conf", text)
    lvs2 = write("lvs2.conf", text.replace("router_id lvs1", "router_id lvs2")
                 .replace("priority 100", "priority 50"))
    run = what_if(doctor, lvs1, lvs2, as_json=False)
    lines = run.stdout.splitlines()
    assert lines[0] == "VI_1: vrid 50 on eth0, 192.168.8.142"
    assert lines[1].split() == ["failure", "lvs1", "lvs2", "addresses", "on"]
    assert lines[2].split() == ["(none:", "steady", "state)", "MASTER", "100", "BACKUP", "50", "lvs1"]
    assert [l.split() for l in lines if "lvs1: vrrp_script chk_web1 fails" in l] == [
        ["lvs1:", "vrrp_script", "chk_web1", "fails", "MASTER", "80", "BACKUP", "50", "lvs1",
         "(stays", "where", "it", "failed)"]]
    [warning] = [l for l in lines if ": warning: failover: " in l]
    assert warning.startswith(f"{lvs1}:41: warning: failover: vrrp_script chk_web1 fails on lvs1")
    assert run.code == 0 and run.stderr.endswith("8 single failures on lvs1 and lvs2, 0 errors,"
                                                 " 1 warning\n")


def test_one_file_says_the_peer_is_unknown_and_only_names_this_director(doctor, write):
    lvs1 = write("lvs1.conf", config("lvs1", 100, blocks=script("chk", -30),
                                     tracks=TRACK.format("chk")))
    scenarios = what_if(doctor, lvs1)
    assert scenarios[0]["instances"]["VI_1"] == {"holder": "lvs1", "priority": {"lvs1": 100},
                                                 "state": {"lvs1": "MASTER"}}
    assert scenario(scenarios, "lvs1", "vrrp_script chk fails")["priority"] == {"lvs1": 70}
    assert scenario(scenarios, "lvs1", "interface eth0 down") == {
        "holder": None, "priority": {"lvs1": 100}, "state": {"lvs1": "FAULT"}}
    text = what_if(doctor, lvs1, as_json=False)
    assert text.stdout.startswith("Peer unknown (no --peer)") and "(peer unknown)" in text.stderr


def test_track_process_is_predicted_with_its_weight_or_fault(doctor, write):
    process = ("vrrp_track_process haproxy {\n    process haproxy\n    weight -60\n}\n"
               "vrrp_track_process sshd {\n    process sshd\n}\n")
    tracks = "    track_process {\n        haproxy\n        sshd\n    }\n"
    lvs1, lvs2 = pair_files(write, config("lvs1", 100, nopreempt=False, blocks=process,
                                          tracks=tracks),
                            config("lvs2", 50, nopreempt=False))
    scenarios = what_if(doctor, lvs1, lvs2)
    assert scenario(scenarios, "lvs1", "track_process haproxy loses quorum") == {
        "holder": "lvs2", "priority": {"lvs1": 40, "lvs2": 50},
        "state": {"lvs1": "BACKUP", "lvs2": "MASTER"}}
    assert scenario(scenarios, "lvs1", "track_process sshd loses quorum")["state"] == {
        "lvs1": "FAULT", "lvs2": "MASTER"}


def test_track_files_fail_at_their_fault_value_or_their_largest_drop(doctor, write, tmp_path):
    files = (f"track_file fault {{\n    file {tmp_path}/a\n    weight 0\n}}\n"
             f"track_file upside {{\n    file {tmp_path}/b\n    weight 0 reverse\n}}\n"
             f"track_file drop {{\n    file {tmp_path}/c\n    weight 10\n}}\n")
    tracks = "    track_file {\n        fault\n        upside\n        drop\n    }\n"
    lvs1, lvs2 = pair_files(write, config("lvs1", 100, blocks=files, tracks=tracks),
                            config("lvs2", 50))
    scenarios = what_if(doctor, lvs1, lvs2)
    assert scenarios[0]["instances"]["VI_1"]["priority"]["lvs1"] == 100
    assert scenario(scenarios, "lvs1", "track_file fault reads 1")["state"]["lvs1"] == "FAULT"
    assert scenario(scenarios, "lvs1", "track_file upside reads 0")["state"]["lvs1"] == "FAULT"
    drop = scenario(scenarios, "lvs1", "track_file drop reads -25")
    assert drop["priority"]["lvs1"] == 1 and drop["holder"] == "lvs1"  # lvs2 has nopreempt
    table = what_if(doctor, lvs1, lvs2, as_json=False).stdout
    assert ("lvs1: track_file drop reads -25: weight 10: -25 adds -250, the largest drop short of"
            " FAULT (-26 is FAULT)") in table


def test_a_weighted_entry_of_a_weight_0_reverse_file_is_noted_with_its_weight(
        doctor, write, tmp_path):
    """`kachecks agent conf` defines each track file `weight 0 reverse` (FAULT where it is
    tracked as is: the agent's own file) and tracks a director check in the vrrp_instance
    as `uplink weight 20 noreverse`: reading 0 costs 20 there, it does not fault."""
    toml = write("kachecks.toml", toml_text({
        "agent": {"track_dir": str(tmp_path / "track")},
        "check": [{"name": "uplink", "command": "kachecks-tcp 192.168.8.1:53",
                   "director": True}]}))
    printed = cli.run("kachecks", "agent", "conf", "--config", toml)
    assert printed.returncode == 0, printed
    parts = conf_parts(printed.stdout, namespaced=True)
    assert "uplink weight 20 noreverse" in parts["instance"]
    lvs1, lvs2 = pair_files(write, config("lvs1", 100, nopreempt=False, blocks=parts["top"],
                                          tracks=parts["instance"]),
                            config("lvs2", 90, nopreempt=False))
    scenarios = what_if(doctor, lvs1, lvs2)
    assert scenarios[0]["instances"]["VI_1"]["priority"]["lvs1"] == 120
    assert scenario(scenarios, "lvs1", "track_file uplink reads 0") == {
        "holder": "lvs1", "priority": {"lvs1": 100, "lvs2": 90},
        "state": {"lvs1": "MASTER", "lvs2": "BACKUP"}}
    assert scenario(scenarios, "lvs1", "track_file kachecks_running reads 0")["state"] == {
        "lvs1": "FAULT", "lvs2": "MASTER"}
    text = what_if(doctor, lvs1, lvs2, as_json=False).stdout
    assert "warning: failover: track_file uplink reads 0 on lvs1 (weight 20: 0 adds 0 where 1" \
        " adds 20): VI_1's addresses stay on lvs1" in text
    notes = [line.strip() for line in text.splitlines() if line.strip().startswith("note:")]
    assert "note: lvs1: track_file uplink reads 0: weight 20: 0 adds 0 where 1 adds 20" \
        in notes, notes
    assert "note: lvs1: track_file kachecks_running reads 0: weight 0 reverse: 0 is FAULT" \
        in notes, notes
    assert not [note for note in notes if "uplink" in note and "FAULT" in note], notes


def test_priorities_clamp_to_1_and_254(doctor, write):
    lvs1, lvs2 = pair_files(write, config("lvs1", 250, blocks=script("up", 50),
                                          tracks=TRACK.format("up")),
                            config("lvs2", 30, blocks=script("down", -253),
                                   tracks=TRACK.format("down")))
    scenarios = what_if(doctor, lvs1, lvs2)
    assert scenarios[0]["instances"]["VI_1"]["priority"] == {"lvs1": 254, "lvs2": 30}
    assert scenario(scenarios, "lvs1", "vrrp_script up fails")["priority"]["lvs1"] == 250
    assert scenario(scenarios, "lvs2", "vrrp_script down fails")["priority"]["lvs2"] == 1


def test_the_address_owner_holds_and_its_weighted_scripts_are_dropped(doctor, write):
    blocks = script("chk", -50) + script("gate")
    tracks = TRACK.format("chk\n        gate")
    lvs1, lvs2 = pair_files(write, config("lvs1", 100, blocks=blocks, tracks=tracks),
                            config("lvs2", 255, state="MASTER", nopreempt=False, blocks=blocks,
                                   tracks=tracks))
    scenarios = what_if(doctor, lvs1, lvs2)
    assert scenarios[0]["instances"]["VI_1"]["holder"] == "lvs2"
    assert [s["failure"] for s in scenarios if s["director"] == "lvs2"] == [
        "vrrp_script gate fails", "interface eth0 down", "keepalived stopped", "director down"]
    assert scenario(scenarios, "lvs2", "vrrp_script gate fails")["holder"] == "lvs1"


def test_weights_of_sync_group_members_count_only_with_sync_group_tracking_weight(doctor, write):
    group = "vrrp_sync_group G1 {{\n    group {{\n        VI_1\n        VI_2\n    }}\n{0}}}\n"
    second = instance(100, name="VI_2", vrid=51, vips=("192.168.8.143",))
    for extra, expected in (("", None), ("    sync_group_tracking_weight\n", 70)):
        lvs1, lvs2 = pair_files(
            write, config("lvs1", 100, blocks=script("chk", -30), tracks=TRACK.format("chk"),
                          after=second + group.format(extra)),
            config("lvs2", 50, after=second.replace("priority 100", "priority 50")
                   + group.format(extra)))
        scenarios = what_if(doctor, lvs1, lvs2)
        failing = [s for s in scenarios if s["failure"] == "vrrp_script chk fails"]
        if expected is None:
            assert failing == []
        else:
            assert failing[0]["instances"]["VI_1"]["priority"]["lvs1"] == expected


def test_a_sync_group_member_in_fault_takes_its_group_along(doctor, write):
    group = "vrrp_sync_group G1 {\n    group {\n        VI_1\n        VI_2\n    }\n}\n"
    second = instance(100, name="VI_2", vrid=51, vips=("192.168.8.143",),
                      tracks=TRACK.format("chk"))
    lvs1, lvs2 = pair_files(write, config("lvs1", 100, blocks=script("chk"), after=second + group),
                            config("lvs2", 50, after=second.replace("priority 100", "priority 50")
                                   .replace(TRACK.format("chk"), "") + group))
    scenarios = what_if(doctor, lvs1, lvs2)
    failing = [s for s in scenarios if s["failure"] == "vrrp_script chk fails"][0]
    assert {name: i["holder"] for name, i in failing["instances"].items()} == {
        "VI_1": "lvs2", "VI_2": "lvs2"}
    assert failing["instances"]["VI_1"]["state"]["lvs1"] == "FAULT"


def test_a_sync_group_whose_members_prefer_different_directors_is_unknown(doctor, write):
    group = "vrrp_sync_group G1 {\n    group {\n        VI_1\n        VI_2\n    }\n}\n"
    lvs1, lvs2 = pair_files(
        write, config("lvs1", 100, nopreempt=False,
                      after=instance(50, name="VI_2", vrid=51, vips=("192.168.8.143",),
                                     nopreempt=False) + group),
        config("lvs2", 50, nopreempt=False,
               after=instance(100, name="VI_2", vrid=51, vips=("192.168.8.143",),
                              nopreempt=False) + group))
    steady = what_if(doctor, lvs1, lvs2)[0]["instances"]
    assert {name: i["holder"] for name, i in steady.items()} == {"VI_1": None, "VI_2": None}
    assert "members prefer different directors" in what_if(doctor, lvs1, lvs2, as_json=False).stdout


def test_preempt_delay_delays_but_does_not_change_the_outcome(doctor, write):
    lvs1, lvs2 = pair_files(write, config("lvs1", 100, nopreempt=False, blocks=script("chk", -60),
                                          tracks=TRACK.format("chk")),
                            config("lvs2", 50, nopreempt=False,
                                   instance_extra="    preempt_delay 5\n"))
    scenarios = what_if(doctor, lvs1, lvs2)
    assert scenario(scenarios, "lvs1", "vrrp_script chk fails")["holder"] == "lvs2"
    assert "preempts after preempt_delay 5 s" in what_if(doctor, lvs1, lvs2, as_json=False).stdout


def test_equal_priorities_without_addresses_leave_the_holder_unknown(doctor, write):
    lvs1, lvs2 = pair_files(write, config("lvs1", 100), config("lvs2", 100))
    steady = what_if(doctor, lvs1, lvs2)[0]["instances"]["VI_1"]
    assert steady == {"holder": None, "priority": {"lvs1": 100, "lvs2": 100},
                      "state": {"lvs1": "UNKNOWN", "lvs2": "UNKNOWN"}}
    assert "unicast_src_ip" in what_if(doctor, lvs1, lvs2, as_json=False).stdout
    sourced = [config(n, 100, instance_extra=f"    unicast_src_ip {a}\n    unicast_peer {{\n"
                                             f"        {b}\n    }}\n")
               for n, a, b in (("lvs1", "192.168.8.100", "192.168.8.110"),
                               ("lvs2", "192.168.8.110", "192.168.8.100"))]
    lvs1, lvs2 = pair_files(write, *sourced)
    assert what_if(doctor, lvs1, lvs2)[0]["instances"]["VI_1"]["holder"] == "lvs2"


def test_a_director_is_named_by_its_router_id_else_its_file(doctor, write):
    bare = config("x", 100).replace("    router_id x\n", "")
    lvs1 = write("a/keepalived.conf", bare)
    lvs2 = write("b/keepalived.conf", bare.replace("priority 100", "priority 50"))
    steady = what_if(doctor, lvs1, lvs2)[0]["instances"]["VI_1"]
    assert steady["priority"] == {"keepalived.conf": 100, "keepalived.conf (peer)": 50}


def test_failover_warns_with_the_arithmetic_also_without_nopreempt(doctor, write):
    lvs1, lvs2 = pair_files(write, config("lvs1", 100, nopreempt=False, blocks=script("chk", -20),
                                          tracks=TRACK.format("chk")),
                            config("lvs2", 50, nopreempt=False))
    run = doctor("--no-run", "-f", lvs1, "--peer", lvs2)
    [warning] = [f for f in run.findings if f["code"] == "failover"]
    at = 1 + lvs2.read_text().splitlines().index("    priority 50")
    assert warning["message"].endswith(f"priority 100 - 20 (chk) = 80; 80 > lvs2's 50 ({lvs2}:{at})")
