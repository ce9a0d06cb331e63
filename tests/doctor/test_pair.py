"""`kachecks doctor --peer`: the pair codes on the doctor alone (tests/doctor/test_pair_netns.py
shows the dual masters on keepalived itself).

pair-priority (ties keep the current MASTER: a surprise, not a dual master) and
pair-services (no IPVS here) cannot be shown on the wire; their rules are pinned here, with
the bad input of --peer and the shape of what it prints.
"""

import json
import subprocess
from pathlib import Path

import pytest

from harness.peers import cli
from harness.peers.pair import config

EXAMPLE = Path(__file__).resolve().parents[2] / "packaging/debian/examples/keepalived.conf"
SERVICE = """
virtual_server 192.168.8.142 80 {{
    delay_loop 4
    lb_algo {algo}
    lb_kind DR
    protocol TCP
{servers}}}
"""
REAL = """    real_server {address} 80 {{
        weight 1
        MISC_CHECK {{
            misc_path "{check}"
            misc_timeout 3
        }}
    }}
"""


def reference_pair(write):
    """The shipped example on lvs1, and on lvs2 with its two documented changes."""
    text = EXAMPLE.read_text()
    lvs2 = text.replace("router_id lvs1", "router_id lvs2").replace("priority 100", "priority 50")
    return write("lvs1.conf", text), write("lvs2.conf", lvs2)


def pair_of(write, lvs1, lvs2):
    return write("lvs1/keepalived.conf", lvs1), write("lvs2/keepalived.conf", lvs2)


def peer(doctor, mine, theirs, *extra):
    return doctor("--no-run", "-f", mine, "--peer", theirs, *extra)


def coded(run, prefix="pair-"):
    return [f for f in run.findings if f["code"].startswith(prefix)]


def line(path, text):
    return 1 + next(i for i, l in enumerate(Path(path).read_text().splitlines()) if text in l)


def test_the_reference_pair_has_no_pair_error_only_the_weight_that_moves_nothing(doctor, write):
    lvs1, lvs2 = reference_pair(write)
    run = peer(doctor, lvs1, lvs2)
    assert coded(run) == []
    [failover] = coded(run, "failover")
    assert (failover["file"], failover["line"], failover["severity"]) == (
        str(lvs1), line(lvs1, "        chk_web1"), "warning")
    assert "priority 100 - 20 (chk_web1) = 80; 80 > lvs2's 50" in failover["message"]
    assert f"lvs2 has nopreempt ({lvs2}:{line(lvs2, 'nopreempt')})" in failover["message"]
    what_if = doctor("-f", lvs1, "--peer", lvs2, "--what-if", as_json=False)
    assert what_if.code == 0, what_if


def test_two_files_sharing_no_instance_are_pair_instance_errors_not_bad_input(doctor, write):
    lvs1, lvs2 = pair_of(write, config("lvs1", 100), config("lvs2", 50, name="VI_2", vrid=51))
    run = peer(doctor, lvs1, lvs2)
    assert run.code == 1
    assert {(f["file"], f["line"], f["severity"]) for f in coded(run)} == {
        (str(lvs1), line(lvs1, "vrrp_instance"), "error"),
        (str(lvs2), line(lvs2, "vrrp_instance"), "error")}
    assert {f["code"] for f in coded(run)} == {"pair-instance"}
    assert all("MASTER here alone" in f["message"] for f in coded(run))


def test_the_same_name_with_another_vrid_is_flagged_at_both_vrid_lines(doctor, write):
    lvs1, lvs2 = pair_of(write, config("lvs1", 100), config("lvs2", 50, vrid=51))
    found = coded(peer(doctor, lvs1, lvs2))
    assert {(f["file"], f["line"], f["code"]) for f in found} == {
        (str(lvs1), line(lvs1, "virtual_router_id"), "pair-instance"),
        (str(lvs2), line(lvs2, "virtual_router_id"), "pair-instance")}
    mine = next(f for f in found if f["file"] == str(lvs1))
    assert f"{lvs2}:{line(lvs2, 'virtual_router_id')}" in mine["message"]


def test_instances_of_other_names_on_the_same_vrid_and_interface_are_one_pair(doctor, write):
    lvs1, lvs2 = pair_of(write, config("lvs1", 100), config("lvs2", 50, name="VIP_WEB"))
    assert coded(peer(doctor, lvs1, lvs2)) == []


def test_equal_priorities_are_a_warning_at_both_priority_lines(doctor, write):
    lvs1, lvs2 = pair_of(write, config("lvs1", 100), config("lvs2", 100))
    run = peer(doctor, lvs1, lvs2)
    assert run.code == 0
    assert {(f["file"], f["line"], f["severity"], f["code"]) for f in coded(run)} == {
        (str(lvs1), line(lvs1, "priority"), "warning", "pair-priority"),
        (str(lvs2), line(lvs2, "priority"), "warning", "pair-priority")}
    assert all("not a dual master" in f["message"] and "an equal-priority advert does not"
               " preempt" in f["message"] for f in coded(run))


def test_nopreempt_with_state_master_is_a_warning_that_keepalived_clears_it(doctor, write):
    lvs1, lvs2 = pair_of(write, config("lvs1", 100, state="MASTER"), config("lvs2", 50))
    [cleared] = coded(peer(doctor, lvs1, lvs2))
    assert (cleared["file"], cleared["line"], cleared["code"]) == (
        str(lvs1), line(lvs1, "nopreempt"), "pair-priority")
    assert "Warning - nopreempt will not work with initial state MASTER - clearing" in \
        cleared["message"]


def test_both_state_master_and_nopreempt_on_one_side_only_are_warnings(doctor, write):
    lvs1, lvs2 = pair_of(write, config("lvs1", 100, state="MASTER", nopreempt=False),
                         config("lvs2", 50, state="MASTER", nopreempt=False))
    found = coded(peer(doctor, lvs1, lvs2))
    assert {(f["file"], f["line"]) for f in found} == {
        (str(lvs1), line(lvs1, "state")), (str(lvs2), line(lvs2, "state"))}
    lvs1, lvs2 = pair_of(write, config("lvs1", 100, nopreempt=False), config("lvs2", 50))
    found = coded(peer(doctor, lvs1, lvs2))
    assert {(f["file"], f["line"], f["code"]) for f in found} == {
        (str(lvs1), line(lvs1, "vrrp_instance"), "pair-priority"),
        (str(lvs2), line(lvs2, "nopreempt"), "pair-priority")}
    mine = next(f for f in found if f["file"] == str(lvs1))
    assert "this director takes the addresses back" in mine["message"]


def test_v3_authentication_differences_are_said_to_be_ignored(doctor, write):
    v3 = "    version 3\n"
    lvs1, lvs2 = pair_of(write, config("lvs1", 100, password="secret-1", instance_extra=v3),
                         config("lvs2", 50, password="secret-2", instance_extra=v3))
    run = peer(doctor, lvs1, lvs2)
    assert {(f["severity"], f["code"]) for f in coded(run)} == {("warning", "pair-advert")}
    assert all("ignores authentication under VRRPv3" in f["message"] for f in coded(run))
    assert "secret" not in run.stdout


def test_a_password_never_appears_in_text_or_json(doctor, write):
    lvs1, lvs2 = pair_of(write, config("lvs1", 100, password="s3cr3t-A"),
                         config("lvs2", 50, password="s3cr3t-B"))
    for as_json in (True, False):
        run = doctor("--no-run", "-f", lvs1, "--peer", lvs2, as_json=as_json)
        assert "pair-advert" in run.stdout and "s3cr3t" not in run.stdout + run.stderr


def service(algo="wlc", servers=(("192.168.8.101", "/usr/bin/kachecks-http --url"
                                   " http://192.168.8.101/service.txt --timeout 2"),)):
    return SERVICE.format(algo=algo, servers="".join(REAL.format(address=a, check=c)
                                                     for a, c in servers))


def test_pair_services_names_each_difference_at_both_lines_and_hides_check_lines(doctor, write):
    web2 = ("192.168.8.102", "/usr/bin/kachecks-http --url http://192.168.8.102/service.txt"
                             " --timeout 2")
    secret = ("192.168.8.101", "/usr/local/bin/check --password=hunter2")
    lvs1, lvs2 = pair_of(write, config("lvs1", 100, after=service(servers=(secret, web2))),
                         config("lvs2", 50, after=service(algo="rr")))
    run = peer(doctor, lvs1, lvs2)
    assert {f["severity"] for f in coded(run)} == {"warning"}
    found = {(f["file"], f["line"]): f["message"] for f in coded(run)}
    assert "lb_algo wlc here, rr on lvs2" in found[(str(lvs1), line(lvs1, "lb_algo"))]
    assert "lb_algo rr here, wlc on lvs1" in found[(str(lvs2), line(lvs2, "lb_algo"))]
    assert "real_server 192.168.8.102 80 on this director only" in \
        found[(str(lvs1), line(lvs1, "real_server 192.168.8.102"))]
    assert "real_server 192.168.8.102 80 is on lvs1" in \
        found[(str(lvs2), line(lvs2, "virtual_server"))]
    assert "misc_path differs" in found[(str(lvs1), line(lvs1, "misc_path"))]
    assert "hunter2" not in run.stdout


def test_a_virtual_server_on_one_side_only_is_a_warning_there(doctor, write):
    lvs1, lvs2 = pair_of(write, config("lvs1", 100, after=service()), config("lvs2", 50))
    [alone] = coded(peer(doctor, lvs1, lvs2))
    assert (alone["file"], alone["line"], alone["severity"], alone["code"]) == (
        str(lvs1), line(lvs1, "virtual_server"), "warning", "pair-services")
    assert "a failover to it stops this service" in alone["message"]


def test_each_side_is_one_object_naming_the_other_in_json(doctor, write):
    lvs1, lvs2 = pair_of(write, config("lvs1", 100, advert_int=1), config("lvs2", 50, advert_int=3))
    found = coded(peer(doctor, lvs1, lvs2))
    assert len(found) == 2 and all(set(f) == {"file", "line", "severity", "code", "message"}
                                   for f in found)
    a, b = sorted(found, key=lambda f: f["file"])
    assert f"{b['file']}:{b['line']}" in a["message"] and f"{a['file']}:{a['line']}" in b["message"]
    assert "advert_int 1 here and 3 on lvs2" in a["message"]


# -- what keepalived settles, not what the lines say ----------------------------
# The cases where the doctor's reading of an instance and the pair watcher's once differed
# (one model now: kachecks.vrrp.instances; tests/vrrp pins it against keepalived's dump).

NO_PASS = "    authentication {\n        auth_type PASS\n    }\n"
OWNER_WITHOUT_STATE = config("lvs1", 255, nopreempt=False,
                             instance_extra="    preempt_delay 5\n").replace("    state BACKUP\n", "")


@pytest.mark.parametrize("lvs1, lvs2, expected", [
    # "Authentication specified but no password given": no authentication, as on lvs2
    (config("lvs1", 100, password=None, instance_extra=NO_PASS), config("lvs2", 50, password=None),
     {("warning", "pair-advert", "ignores authentication without auth_pass")}),
    # "Strict mode does not support authentication": lvs1 sends none, as lvs2
    (config("lvs1", 100, global_extra="    vrrp_strict\n"), config("lvs2", 50, password=None),
     {("warning", "pair-advert", "ignores authentication under strict mode")}),
    # VRRPv2 rounds advert_int to whole seconds: 1.4 is 1
    (config("lvs1", 100, advert_int=1.4), config("lvs2", 50), set()),
    # the first `version` line stays
    (config("lvs1", 100, password=None, instance_extra="    version 2\n    version 3\n"),
     config("lvs2", 50, password=None), set()),
    # an IPv6 address in an IPv4 instance is skipped: the adverts carry the same list
    (config("lvs1", 100, vips=("192.168.8.142", "2001:db8::142")), config("lvs2", 50), set()),
    # priority 255 without a state line starts as MASTER, which clears preempt_delay
    (OWNER_WITHOUT_STATE, config("lvs2", 50),
     {("warning", "pair-priority", "preempt_delay is cleared by state MASTER")}),
], ids=["pass-without-auth_pass", "strict-mode-auth", "v2-advert_int-rounded", "first-version",
        "other-family-vip", "owner-is-master"])
def test_the_pair_compares_what_keepalived_settles(doctor, write, lvs1, lvs2, expected):
    run = peer(doctor, *pair_of(write, lvs1, lvs2))
    found = coded(run)
    assert {(f["severity"], f["code"]) for f in found} == {(s, c) for s, c, _ in expected}, found
    for _severity, code, said in expected:
        assert all(said in f["message"] for f in found if f["code"] == code), found
    assert run.code == 0


# -- the peer on standard input, and bad input -------------------------------

def doctor_stdin(*args, stdin=b""):
    return subprocess.run([*cli.command("kachecks"), "doctor", "--no-keepalived", *map(str, args)],
                          input=stdin, capture_output=True, timeout=60)


def test_the_peer_on_standard_input_is_named_dash(write):
    lvs1, lvs2 = pair_of(write, config("lvs1", 100), config("lvs2", 50, advert_int=2))
    done = doctor_stdin("--no-run", "--json", "-f", lvs1, "--peer", "-", stdin=lvs2.read_bytes())
    found = [f for f in json.loads(done.stdout) if f["code"] == "pair-advert"]
    assert {(f["file"], f["line"]) for f in found} == {
        (str(lvs1), line(lvs1, "advert_int")), ("-", line(lvs2, "advert_int"))}
    assert done.returncode == 1


@pytest.mark.parametrize("stdin, said", [
    (b"", "nothing on standard input"),
    (b"   \n\n", "nothing on standard input"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00", "binary data"),
    (b"<html><body>502 Bad Gateway</body></html>\n", "not a keepalived configuration"),
])
def test_a_peer_on_stdin_that_is_not_a_configuration_is_one_line_and_exit_1(write, stdin, said):
    lvs1 = write("lvs1.conf", config("lvs1", 100))
    done = doctor_stdin("--no-run", "-f", lvs1, "--peer", "-", stdin=stdin)
    err = done.stderr.decode()
    assert (done.returncode, done.stdout, err.count("\n")) == (1, b"", 1), err
    assert err.startswith("kachecks doctor: --peer ") and said in err


@pytest.mark.parametrize("what_if", [(), ("--what-if",)])
def test_a_peer_file_that_cannot_be_read_is_one_line_and_exit_1(write, tmp_path, what_if):
    lvs1 = write("lvs1.conf", config("lvs1", 100))
    binary = tmp_path / "lvs2.conf"
    binary.write_bytes(b"vrrp_instance VI_1 {\n\x00\x01\x02\n")
    for bad, said in ((tmp_path / "missing.conf", "No such file"), (binary, "binary data"),
                      (tmp_path, "is a directory")):
        done = doctor_stdin("--no-run", "-f", lvs1, "--peer", bad, *what_if)
        err = done.stderr.decode()
        assert (done.returncode, err.count("\n")) == (1, 1) and said in err, err
        assert "Traceback" not in err


def test_a_peer_with_at_id_lines_needs_peer_id(doctor, write):
    shared = config("$HOST", 100).replace("    priority 100\n",
                                          "@lvs1 priority 100\n@lvs2 priority 50\n")
    lvs1, lvs2 = pair_of(write, shared.replace("$HOST", "lvs1"), shared.replace("$HOST", "lvs2"))
    run = doctor("--no-run", "-f", lvs1, "-i", "lvs1", "--peer", lvs2, as_json=False)
    assert run.code == 1 and "--peer-id" in run.stderr and "@lvs1, @lvs2" in run.stderr
    run = doctor("--no-run", "-f", lvs1, "-i", "lvs1", "--peer", lvs2, "--peer-id", "lvs2")
    assert coded(run) == []  # 100 against 50: not equal priorities
    run = doctor("--no-run", "-f", lvs1, "-i", "lvs1", "--peer", lvs2, "--peer-id", "lvs1")
    assert {f["code"] for f in coded(run)} == {"pair-priority"}


def test_peer_id_without_peer_is_a_usage_error(doctor, write):
    lvs1 = write("lvs1.conf", config("lvs1", 100))
    run = doctor("--no-run", "-f", lvs1, "--peer-id", "lvs2", as_json=False)
    assert (run.code, run.stdout, run.stderr.count("\n")) == (1, "", 1)
    assert "--peer-id" in run.stderr and "Traceback" not in run.stderr


def test_the_peers_absolute_includes_are_not_read_from_this_director(doctor, write, tmp_path):
    here = write("conf.d/vi1.conf", config("lvs1", 100).split("\n\n", 1)[1])
    lvs1 = write("lvs1.conf", f"include {here}\n")
    lvs2 = write("lvs2.conf", f"include {here}\n")
    run = doctor("--no-run", "-f", lvs1, "--peer", lvs2)
    [warned] = [f for f in run.findings if f["file"] == str(lvs2)]
    assert warned["severity"] == "warning" and "not read: an absolute include" in warned["message"]
    assert {f["code"] for f in coded(run)} == {"pair-instance"}  # VI_1 is lvs1's only


def test_without_peer_the_audit_says_nothing_about_pairs(doctor, write):
    lvs1 = write("lvs1.conf", config("lvs1", 100, state="MASTER"))
    assert not [f for f in doctor("--no-run", "-f", lvs1).findings
                if f["code"].startswith("pair-") or f["code"] == "failover"]
