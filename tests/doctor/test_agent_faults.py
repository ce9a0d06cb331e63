"""What the doctor's agent-* codes say is what the real keepalived does: each configuration it
flags, run by keepalived (VRRP, in network namespaces) with the files as the agent leaves them,
is an outage: FAULT with the check healthy, FAULT for ever on a file nobody writes, both
directors in FAULT when one shared real server fails.

The agent itself is not needed to show it: keepalived reads files, and each file here holds
what the agent writes (``1`` up, ``0`` down) or nothing at all.
"""

import pytest

from harness.checks import MD5_SERVER1
from harness.config import toml_text
from harness.peers.keepalived import Keepalived, vrrp_config
from harness.peers.netns import Network, cleanup_stale, run_prefix, wait_for

pytestmark = pytest.mark.netns

BASE = "kcdg"
VIP = "192.168.8.142"
WEB1 = "192.168.8.101"
DIRECTORS = {"lvs1": ("192.168.8.100", 100), "lvs2": ("192.168.8.110", 50)}
WEB1_CHECK = f"kachecks-http --url http://{WEB1}/service.txt --digest {MD5_SERVER1}"
UPLINK_CHECK = "kachecks-tcp 192.168.8.25:25"  # this director's way to the mail relay
# The HTTP service, so that the doctor knows web1's address as a real server's (keepalived
# in these namespaces runs VRRP only: this kernel has no IPVS).
VIRTUAL_SERVER = (f"\nvirtual_server {VIP} 80 {{\n    delay_loop 4\n    lb_algo wlc\n"
                  f"    lb_kind DR\n    protocol TCP\n    real_server {WEB1} 80 {{\n"
                  "        weight 1\n    }\n}\n")


def director(tmp_path, name, checks, tracks, tracked):
    """(keepalived.conf, kachecks.toml, track directory) of director ``name``.

    ``checks``: {name: command} of the agent; ``tracks``: {name: weight line} of the
    track_file blocks; ``tracked``: the entries of VI_1's ``track_file { … }``.
    """
    home = tmp_path / name
    track = home / "track"
    track.mkdir(parents=True)
    toml = home / "kachecks.toml"
    toml.write_text(toml_text({"agent": {"track_dir": str(track)},
                               "check": [{"name": n, "command": c} for n, c in checks.items()]}))
    blocks = "".join(f"track_file {n} {{\n    file {track / n}\n    {weight}\n}}\n\n"
                     for n, weight in tracks.items())
    _, priority = DIRECTORS[name]
    text = vrrp_config(name, priority, VIP, instance_extra="    track_file {\n"
                       + "".join(f"        {entry}\n" for entry in tracked) + "    }\n")
    conf = home / "keepalived.conf"
    conf.write_text(text.replace("vrrp_instance", blocks + "vrrp_instance", 1) + VIRTUAL_SERVER)
    return conf, toml, track


def codes(doctor, conf, toml):
    """{(line, code)} of the doctor's agent-* findings on ``conf``."""
    run = doctor("--no-run", "--no-keepalived", "-f", conf, "--agent-config", toml)
    assert "Traceback" not in run.stderr, run
    return {(f["line"], f["code"]) for f in run.findings if f["code"].startswith("agent-")}


def wait_fault(ka, timeout=20):
    """Until keepalived puts VI_1 in FAULT: at start-up it logs "(VI_1) entering FAULT state"
    (lower case, no "(init)"), later "(VI_1) Entering FAULT STATE"."""
    return ka.wait_log(r"\(VI_1\) [Ee]ntering FAULT (state|STATE)", timeout=timeout)


def line_of(path, text):
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def network(*names):
    cleanup_stale(BASE)
    return Network(run_prefix(BASE), {n: DIRECTORS[n][0] for n in names})


def write(path, value):
    """As the agent writes: a temporary file renamed over the track file."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(value)
    temporary.rename(path)


def test_weight_0_without_reverse_is_fault_while_the_check_is_up(tmp_path, doctor):
    conf, toml, track = director(tmp_path, "lvs1", {"uplink": UPLINK_CHECK},
                                 {"uplink": "weight 0"}, ["uplink"])
    assert codes(doctor, conf, toml) == {(line_of(conf, "        uplink"), "agent-polarity")}
    write(track / "uplink", "1\n")  # the check is up
    with network("lvs1") as net:
        ka = Keepalived(net["lvs1"], tmp_path / "ka", conf.read_text()).start()
        try:
            wait_fault(ka)
            # never BACKUP nor MASTER meanwhile
            assert {state for _, state in ka.states("VI_1")} == {"FAULT"}, ka.output()
            write(track / "uplink", "0\n")  # the check goes down: keepalived leaves FAULT
            ka.wait_state("MASTER", "VI_1", timeout=20)
            assert VIP in net["lvs1"].addresses()
        finally:
            ka.stop()


def test_a_file_no_check_writes_under_weight_0_reverse_is_fault_for_ever(tmp_path, doctor):
    """web3 was never configured in the agent: nothing will ever write its file."""
    conf, toml, track = director(tmp_path, "lvs1", {"web1": WEB1_CHECK},
                                 {"web3": "weight 0 reverse"}, ["web3"])
    assert codes(doctor, conf, toml) == {(line_of(conf, f"file {track / 'web3'}"),
                                          "agent-orphan")}
    with network("lvs1") as net:
        ka = Keepalived(net["lvs1"], tmp_path / "ka", conf.read_text()).start()
        try:
            wait_fault(ka)
            assert {state for _, state in ka.states("VI_1")} == {"FAULT"}, ka.output()
            assert not (track / "web3").exists()
            write(track / "web3", "1\n")  # what a [[check]] named web3 would write
            ka.wait_state("MASTER", "VI_1", timeout=20)
        finally:
            ka.stop()


def test_a_shared_real_server_check_at_weight_0_takes_the_vip_off_both_directors(tmp_path,
                                                                                  doctor):
    """What `kachecks agent conf` suggested, pasted on both directors: web1 fails, each
    director's agent writes 0, and the VIP is on neither."""
    made = {name: director(tmp_path, name, {"web1": WEB1_CHECK, "uplink": UPLINK_CHECK},
                           {"web1": "weight 0 reverse", "uplink": "weight 0 reverse"},
                           ["web1", "uplink"])
            for name in DIRECTORS}
    for conf, toml, track in made.values():
        assert codes(doctor, conf, toml) == {(line_of(conf, "        web1"),
                                              "agent-shared-fault")}
        write(track / "web1", "1\n")
        write(track / "uplink", "1\n")
    with network(*DIRECTORS) as net:
        kas = {name: Keepalived(net[name], tmp_path / f"ka-{name}", conf.read_text()).start()
               for name, (conf, _, _) in made.items()}
        try:
            kas["lvs1"].wait_state("MASTER", "VI_1", timeout=20)
            kas["lvs2"].wait_state("BACKUP", "VI_1", timeout=20)
            assert VIP in net["lvs1"].addresses()
            for _, _, track in made.values():
                write(track / "web1", "0\n")  # one real server fails: both agents see it
            for ka in kas.values():
                wait_fault(ka, timeout=10)
            wait_for(lambda: all(VIP not in net[name].addresses() for name in DIRECTORS), 10,
                     what="the VIP gone from both directors")
        finally:
            for ka in kas.values():
                ka.stop()
