"""The reusable namespace and keepalived primitives other areas build on."""

import signal
import subprocess
import time

import pytest

from harness.peers.keepalived import (
    Keepalived,
    config_test,
    insecure_components,
    secure_dir,
    secure_executables,
    vrrp_config,
    write_script,
)
from harness.peers.netns import (
    Network,
    cleanup,
    cleanup_stale,
    namespace_pids,
    namespaces,
    run_prefix,
    wait_for,
)

pytestmark = pytest.mark.netns

PREFIX = run_prefix("kclabt")
VIP = "192.168.8.142"


def test_hosts_reach_each_other_over_the_bridge_and_teardown_leaves_nothing():
    with Network(PREFIX, {"a": "192.168.8.1", "b": "192.168.8.2"}) as net:
        assert sorted(namespaces(PREFIX)) == [f"{PREFIX}-a", f"{PREFIX}-b", f"{PREFIX}-sw"]
        assert net["a"].run(["ping", "-c1", "-W2", "192.168.8.2"]).returncode == 0
        sleeper = net["b"].start(["sleep", "600"])
        assert sleeper.running()
    assert namespaces(PREFIX) == []
    assert not sleeper.running()
    root_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "v-a" not in root_links and "br0" not in root_links


def test_teardown_happens_when_the_body_raises():
    with pytest.raises(RuntimeError):
        with Network(PREFIX, {"a": "192.168.8.1"}) as net:
            net["a"].start(["sleep", "600"])
            raise RuntimeError("boom")
    assert namespaces(PREFIX) == []


def test_cleanup_removes_leftovers_of_a_crashed_run():
    net = Network(PREFIX, {"a": "192.168.8.1"})
    net.up()
    stray = subprocess.Popen(net["a"].argv(["sleep", "600"]), start_new_session=True)
    wait_for(lambda: stray.pid in namespace_pids(f"{PREFIX}-a"), 5, what="sleep in the namespace")
    assert sorted(cleanup(PREFIX)) == [f"{PREFIX}-a", f"{PREFIX}-sw"]
    assert stray.wait(5) == -signal.SIGTERM
    assert namespaces(PREFIX) == []


def test_vrrp_pair_fails_over_and_nopreempt_keeps_the_new_master(tmp_path):
    hosts = {"lvs1": "192.168.8.100", "lvs2": "192.168.8.200"}
    with Network(PREFIX, hosts) as net:
        lvs1 = Keepalived(net["lvs1"], tmp_path / "lvs1", vrrp_config("lvs1", 100, VIP)).start()
        lvs1.wait_state("MASTER")
        lvs2 = Keepalived(net["lvs2"], tmp_path / "lvs2", vrrp_config("lvs2", 50, VIP)).start()
        lvs2.wait_state("BACKUP")
        assert VIP in net["lvs1"].addresses()

        lvs1.stop()
        lvs2.wait_state("MASTER")
        assert VIP in net["lvs2"].addresses() and VIP not in net["lvs1"].addresses()

        lvs1 = Keepalived(net["lvs1"], tmp_path / "lvs1b", vrrp_config("lvs1", 100, VIP)).start()
        lvs1.wait_state("BACKUP")
        time.sleep(5)  # past the 3.6 s after which lvs1 would preempt without nopreempt
        assert lvs1.states() == [("VI_1", "BACKUP")]
        assert lvs2.state() == "MASTER"
        assert config_test(lvs1.conf).returncode == 0


def test_without_nopreempt_the_higher_priority_takes_the_vip_back(tmp_path):
    hosts = {"lvs1": "192.168.8.100", "lvs2": "192.168.8.200"}
    with Network(PREFIX, hosts) as net:
        conf = lambda rid, prio: vrrp_config(rid, prio, VIP, nopreempt=False)  # noqa: E731
        lvs2 = Keepalived(net["lvs2"], tmp_path / "lvs2", conf("lvs2", 50)).start()
        lvs2.wait_state("MASTER")
        lvs1 = Keepalived(net["lvs1"], tmp_path / "lvs1", conf("lvs1", 100)).start()
        lvs1.wait_state("MASTER", timeout=10)
        lvs2.wait_state("BACKUP")
        assert VIP in net["lvs1"].addresses()


def test_secure_dir_makes_a_pytest_tmp_path_acceptable_to_script_security(tmp_path):
    script = write_script(secure_dir(tmp_path / "bin") / "check", "#!/bin/sh\nexit 0\n")
    assert insecure_components(script) == []
    tmp_path.chmod(0o777)
    assert insecure_components(script) == [str(tmp_path)]


def test_secure_executables_wraps_only_what_script_security_would_refuse(tmp_path):
    good = secure_dir(tmp_path / "good")
    write_script(good / "kachecks-http", "#!/bin/sh\necho real \"$@\"\n")
    assert secure_executables(good, ["kachecks-http"], tmp_path / "unused") == (good, [])
    good.chmod(0o777)
    shims, bad = secure_executables(good, ["kachecks-http"], tmp_path / "shims")
    assert bad == [str(good)] and shims != good
    assert insecure_components(shims / "kachecks-http") == []
    ran = subprocess.run([shims / "kachecks-http", "a b"], capture_output=True, text=True)
    assert ran.stdout == "real a b\n"


def test_keepalived_disables_a_track_script_on_an_insecure_path(tmp_path):
    bindir = secure_dir(tmp_path / "bin")
    script = write_script(bindir / "check", "#!/bin/sh\nexit 0\n")
    track = f'vrrp_script chk {{\n    script "{script}"\n}}\n'
    tracking = "    track_script {\n        chk\n    }\n"
    tracked = vrrp_config("lvs1", 100, VIP, instance_extra=tracking)
    conf = tmp_path / "keepalived.conf"
    conf.write_text(track + tracked)
    assert config_test(conf).returncode == 0
    bindir.chmod(0o777)
    done = config_test(conf)
    assert done.returncode == 5, done.stderr


def test_cleanup_stale_removes_only_the_namespaces_of_dead_runs():
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale, alive = f"kclabt{dead.pid}", PREFIX
    Network(stale, {"a": "192.168.8.1"}).up()
    with Network(alive, {"a": "192.168.8.1"}):
        assert sorted(cleanup_stale("kclabt")) == [f"{stale}-a", f"{stale}-sw"]
        assert sorted(namespaces(alive)) == [f"{alive}-a", f"{alive}-sw"]


def test_secure_executables_wraps_a_path_keepalived_would_split_at_a_blank(tmp_path):
    # keepalived splits a script line at blanks: "/srv/my checkout/…/kachecks-http --url …"
    # would run "/srv/my" (scripts/test from a checkout whose path holds a space)
    spaced = secure_dir(tmp_path / "my checkout")
    write_script(spaced / "kachecks-http", "#!/bin/sh\necho real \"$@\"\n")
    shims, bad = secure_executables(spaced, ["kachecks-http"], tmp_path / "shims")
    assert bad == [] and shims != spaced and " " not in str(shims)
    ran = subprocess.run([shims / "kachecks-http", "a b"], capture_output=True, text=True)
    assert ran.stdout == "real a b\n"
