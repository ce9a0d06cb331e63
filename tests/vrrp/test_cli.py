"""kachecks-vrrp and kachecks vrrp watch as an administrator runs them: bad input is one
line and exit 1; watch prints one line (or JSON object) per advert and ends cleanly."""

import json
import os
import re
import signal
import subprocess
import time

import pytest

from harness.peers import cli
from harness.peers.keepalived import secure_dir, vrrp_config
from harness.peers.netns import Network, cleanup_stale, run_prefix, wait_for
from harness.peers.vrrp import HOSTS, VIP, Advertiser
from kachecks.vrrp import wire

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
NO_SUCH_INTERFACE = "kcvr-nope0"


def conf(tmp_path, text=None, mode=0o644, interface="lo"):
    directory = secure_dir(tmp_path / "etc")
    path = directory / "keepalived.conf"
    path.write_text(text if text is not None else vrrp_config("lvs1", 100, VIP, interface=interface))
    os.chmod(path, mode)
    return path


def run(argv, timeout=30):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)


def one_line(done, *needles, code=1, stream="stderr"):
    assert done.returncode == code, done
    text = getattr(done, stream)
    other = done.stdout if stream == "stderr" else done.stderr
    assert len(text.splitlines()) == 1 and other == "", done
    assert "Traceback" not in done.stdout + done.stderr
    for needle in needles:
        assert needle in text, done
    return text


CAP = "reading VRRP from the wire needs CAP_NET_RAW: run as root"


def test_without_cap_net_raw_the_check_says_so_in_one_line(tmp_path, other_user):
    path = conf(tmp_path)
    kachecks = other_user.command("kachecks")
    done = run([*NOBODY, *kachecks, "check", "vrrp", "--keepalived-conf", path])
    one_line(done, f"kachecks check vrrp: error: {CAP}")
    done = run([*NOBODY, *kachecks, "check", "vrrp", "--keepalived-conf", path, "--nagios"])
    assert one_line(done, code=3, stream="stdout").startswith(f"VRRP UNKNOWN: {CAP}")


def test_without_cap_net_raw_watch_says_so_in_one_line(tmp_path, other_user):
    done = run([*NOBODY, *other_user.command("kachecks"), "vrrp", "watch", "--keepalived-conf",
                conf(tmp_path)])
    one_line(done, f"kachecks vrrp watch: {CAP}")


def test_an_interface_that_does_not_exist_is_one_line(tmp_path):
    path = conf(tmp_path, interface=NO_SUCH_INTERFACE)
    one_line(cli.run("kachecks-vrrp", "--keepalived-conf", path),
             f"kachecks-vrrp: error: {NO_SUCH_INTERFACE}: no such interface")
    one_line(cli.run("kachecks", "vrrp", "watch", "--keepalived-conf", path),
             f"kachecks vrrp watch: {NO_SUCH_INTERFACE}: no such interface")


def test_a_configuration_without_vrrp_instance_is_one_line(tmp_path):
    path = conf(tmp_path, "global_defs {\n    router_id lvs1\n}\n")
    one_line(cli.run("kachecks-vrrp", "--keepalived-conf", path),
             f"{path}: no vrrp_instance to watch")
    one_line(cli.run("kachecks", "vrrp", "watch", "--keepalived-conf", path),
             f"kachecks vrrp watch: {path}: no vrrp_instance to watch")


def test_an_unreadable_configuration_is_one_line(tmp_path, other_user):
    path = conf(tmp_path, mode=0o600)
    done = run([*NOBODY, *other_user.command("kachecks"), "check", "vrrp", "--keepalived-conf",
                path])
    one_line(done, f"{path}: cannot read the configuration: Permission denied")


@pytest.mark.parametrize("args, message", [
    (["--listen", "4", "--timeout", "4"], "--timeout (4 s) must exceed --listen (4 s)"),
    (["--timeout", "3"], "--timeout (3 s) must exceed --listen (4 s)"),  # listen: 3 × 1 + 1
    (["--bind", "192.168.8.100"], "Unknown option --bind"),
    (["--dynamic"], "Unknown option --dynamic"),
    (["--instance", "VI_9"], "no vrrp_instance VI_9 (there are: VI_1)"),
    (["--ignore-vrid", "256"], "--ignore-vrid"),
])
def test_bad_options_are_one_line_and_exit_1_never_2(tmp_path, args, message):
    one_line(cli.run("kachecks-vrrp", "--keepalived-conf", conf(tmp_path), *args), message)


def test_help_needs_no_configuration_and_names_every_problem():
    done = cli.run("kachecks", "check", "vrrp", "--help")
    assert done.returncode == 0
    for code in ("split-brain", "no-master", "filtered", "mismatch", "foreign"):
        assert code in done.stdout
    assert "--bind" not in done.stdout and "--listen SECONDS" in done.stdout


@pytest.fixture
def segment(tmp_path):
    """lvs1 (with the reference keepalived.conf, no keepalived running) and the client,
    which advertises VI_1 with priority 100 from 192.168.8.10, once a second."""
    cleanup_stale("kcvc")
    with Network(run_prefix("kcvc"), {"lvs1": HOSTS["lvs1"], "client": HOSTS["client"]}) as net:
        path = conf(tmp_path, vrrp_config("lvs1", 100, VIP).replace(
            "        auth_type PASS\n        auth_pass toto\n", "        auth_type NONE\n"))
        packet = wire.encode(4, HOSTS["client"], "224.0.0.18", 50, 100, [VIP])
        with Advertiser(net["client"], lambda: [packet], interval=0.5):
            yield net, path


LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} eth0 192\.168\.8\.10 > 224\.0\.0\.18 v2 vrid 50 prio 100"
                  r" int 1s addrs 192\.168\.8\.142 auth none  VI_1$")


@pytest.mark.netns
def test_watch_prints_one_decoded_line_per_advert_and_stops_at_count(segment):
    net, path = segment
    done = net["lvs1"].run([*cli.command("kachecks"), "vrrp", "watch", "--keepalived-conf", path,
                            "--count", "3"], timeout=30)
    assert done.returncode == 0, done
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(LINE.match(line) for line in lines), lines
    assert done.stderr == "kachecks vrrp watch: 3 adverts, 0 problems started (VI_1)\n"


@pytest.mark.netns
def test_watch_json_is_one_object_a_line(segment):
    net, path = segment
    done = net["lvs1"].run([*cli.command("kachecks"), "vrrp", "watch", "--keepalived-conf", path,
                            "--count", "2", "--json"], timeout=30)
    assert done.returncode == 0, done
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["event"] for e in events] == ["advert", "advert"]
    assert {k: events[0][k] for k in ("interface", "source", "destination", "version", "vrid",
                                      "priority", "interval", "addresses", "auth", "instance",
                                      "own", "ttl", "checksum_ok")} == {
        "interface": "eth0", "source": "192.168.8.10", "destination": "224.0.0.18", "version": 2,
        "vrid": 50, "priority": 100, "interval": 1.0, "addresses": [VIP], "auth": "none",
        "instance": "VI_1", "own": False, "ttl": 255, "checksum_ok": True}
    assert abs(events[0]["epoch"] - time.time()) < 30


@pytest.mark.netns
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_watch_ends_cleanly_on_ctrl_c_and_sigterm(segment, tmp_path, signum):
    net, path = segment
    log = tmp_path / "watch.log"
    proc = net["lvs1"].start([*cli.command("kachecks"), "vrrp", "watch", "--keepalived-conf", path],
                             log=log)
    wait_for(lambda: "VI_1" in proc.output(), 10, what="a first advert")
    proc.signal(signum)
    assert proc.popen.wait(10) == 0
    output = proc.output()
    assert "Traceback" not in output and "problems started (VI_1)" in output
    assert all(LINE.match(line) for line in output.splitlines()[:-1])


@pytest.mark.netns
def test_the_check_logs_a_change_of_state_once(segment, syslog_socket):
    net, path = segment
    argv = [*cli.command("kachecks-vrrp"), "--keepalived-conf", path, "--listen", "1.5"]
    first = net["lvs1"].run(argv)  # the syslog socket and state directory: the test's
    assert first.returncode == 0, first
    [line] = syslog_socket()
    assert "kachecks-vrrp[" in line and "[VI_1] UP: VI_1 vrid 50 on eth0: master 192.168.8.10" in line
    again = net["lvs1"].run(argv)
    assert again.returncode == 0 and syslog_socket() == []  # no change: no line
