"""The real keepalived following the agent's track files: VRRP in network namespaces,
the LVS side (FILE_CHECK, vrrp_track_process) by ``keepalived -t``.

This kernel has no IPVS, so real servers cannot be balanced here; and
``vrrp_track_process`` cannot run inside a network namespace (the kernel's process
connector answers only in the initial one: keepalived enters FAULT at once), so the
blocks ``kachecks agent conf`` prints for them are checked by keepalived's own config
test, with the installed keepalived (2.2.7 on Debian 12, 2.3.3 on Debian 13).
"""

import contextlib
import hashlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness.checks import MD5_SERVER1, SERVER1, SERVER2
from harness.peers.agent import ALIVE_FILE, FilePoller, conf_parts, run_agent_cli
from harness.peers.keepalived import KEEPALIVED, Keepalived, secure_dir, vrrp_config
from harness.peers.netns import Network, cleanup_stale, create_namespace, run_prefix, wait_for

pytestmark = pytest.mark.netns

BASE = "kcag"
WEB1 = "192.168.8.101"
VIP = "192.168.8.142"

# Python's audit hooks see every way Python code can start a process.
NO_FORK = """\
import os, sys
def _record(event, args, _log=os.environ["KACHECKS_TEST_FORKS"]):
    if event in ("os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.spawn", "os.system",
                 "subprocess.Popen"):
        with open(_log, "a") as log:
            log.write(event + "\\n")
sys.addaudithook(_record)
"""


@contextlib.contextmanager
def web1_serving(tmp_path):
    """(Network, page): lvs1 and web1 in namespaces, web1 serving its page on port 80."""
    cleanup_stale(BASE)
    site = secure_dir(tmp_path / "www")
    page = site / "service.txt"
    page.write_bytes(SERVER1)
    with Network(run_prefix(BASE), {"lvs1": "192.168.8.1", "web1": WEB1}) as net:
        net["web1"].start(["python3", "-m", "http.server", "80", "--bind", WEB1,
                           "--directory", site], log=tmp_path / "web.log")
        wait_for(lambda: net["lvs1"].run(["python3", "-c", "import socket; socket.create_"
                                          f"connection(('{WEB1}', 80), 1)"]).returncode == 0,
                 10, interval=0.1, what="web1")
        yield net, page


def test_the_fork_recorder_sees_a_fork(tmp_path):
    log = tmp_path / "forks"
    code = NO_FORK + "import subprocess; subprocess.run(['true'])\n"
    subprocess.run(["python3", "-c", code], env=dict(os.environ, KACHECKS_TEST_FORKS=str(log)),
                   check=True)
    assert "subprocess.Popen" in log.read_text()


@pytest.mark.parametrize("interval, fall", [(1, 1), (0.5, 2)])
def test_keepalived_follows_the_agents_file_without_a_fork(tmp_path, agent_factory, interval,
                                                           fall):
    forks = tmp_path / "forks"
    with web1_serving(tmp_path) as (net, page):
        agent = agent_factory(
            [{"name": "web1", "command": f"kachecks-http --url http://{WEB1}/service.txt"
              f" --digest {MD5_SERVER1}", "interval": interval, "fall": fall}],
            timeout=min(0.4, interval / 2), preamble=NO_FORK, launch=net["lvs1"].argv,
            env={"KACHECKS_TEST_FORKS": str(forks)})
        agent.start()
        agent.wait_value("web1", "1\n")
        blocks = run_agent_cli("conf", "--config", agent.config).stdout
        top = conf_parts(blocks, namespaced=True)["top"]
        config = vrrp_config("lvs1", 100, VIP, vrid=51, instance_extra=(
            "    track_file {\n        web1\n    }\n"))  # one director: web1 is its own here
        config = config.replace("vrrp_instance", top + "\nvrrp_instance", 1)
        assert "script" not in config.replace("script_security", "").replace("script_user", "")
        ka = Keepalived(net["lvs1"], tmp_path / "ka", config).start()
        try:
            ka.wait_state("MASTER", "VI_1", timeout=20)
            changed = time.monotonic()
            page.write_bytes(SERVER2)  # a deploy went wrong: the digest no longer matches
            wait_for(lambda: ka.state("VI_1") == "FAULT", 10, interval=0.01, what="FAULT")
            took = time.monotonic() - changed
            print(f"interval {interval} s, fall {fall}: FAULT {took:.3f} s after the page changed")
            assert took < interval * fall + 0.5, took
            page.write_bytes(SERVER1)
            ka.wait_state("MASTER", "VI_1", timeout=20)
            stopped = time.monotonic()
            assert agent.stop(signal.SIGTERM) == 0
            wait_for(lambda: ka.state("VI_1") == "FAULT", 5, interval=0.01, what="FAULT")
            assert time.monotonic() - stopped < 1.0
        finally:
            ka.stop()
        log = ka.output()
    assert [s for _, s in ka.states("VI_1")][-5:] == ["MASTER", "FAULT", "BACKUP", "MASTER",
                                                      "FAULT"], log
    assert not forks.exists(), forks.read_text()  # not one process started by the agent


def track_blocks(agent, names):
    """Top-level track_file blocks as docs/agent.md shows them: 1 up, 0 (or missing) FAULT."""
    return "".join(f"track_file {name} {{\n    file {agent.track / name}\n    weight 0 reverse\n"
                   "    init_file 0\n}\n\n" for name in names)


def test_a_reload_that_changes_commands_and_order_never_drops_a_file_nor_leaves_master(
        tmp_path, agent_factory, syslog_socket):
    url = f"http://{WEB1}/service.txt"
    before = [
        {"name": "web1", "command": f"kachecks-http --url {url} --digest {MD5_SERVER1}"},
        {"name": "web1-slow", "command": f"kachecks-http --url {url} --digest {MD5_SERVER1}"
                                         " --timeout 0.6"},
        {"name": "web1-tcp", "command": f"kachecks-tcp {WEB1}:80"},
    ]
    after = [  # reordered; a new digest (a deploy), a shorter --timeout, one unchanged
        {"name": "web1-tcp", "command": f"kachecks-tcp {WEB1}:80"},
        {"name": "web1-slow", "command": f"kachecks-http --url {url} --digest {MD5_SERVER1}"
                                         " --timeout 0.5"},
        {"name": "web1", "command": f"kachecks-http --url {url} --digest"
                                    f" {hashlib.sha256(SERVER1).hexdigest()}"},
    ]
    names = [check["name"] for check in before]
    with web1_serving(tmp_path) as (net, _):
        # interval 2: a check started afresh would wait up to 1 s for its first run
        agent = agent_factory(before, interval=2, timeout=0.8, launch=net["lvs1"].argv)
        agent.start()
        for name in names:
            agent.wait_value(name, "1\n")
        config = vrrp_config("lvs1", 100, VIP, vrid=52, instance_extra=(
            "    track_file {\n" + "".join(f"        {name}\n" for name in names) + "    }\n"))
        config = config.replace("vrrp_instance", track_blocks(agent, names) + "vrrp_instance", 1)
        ka = Keepalived(net["lvs1"], tmp_path / "ka", config).start()
        try:
            ka.wait_state("MASTER", "VI_1", timeout=20)
            states = ka.states("VI_1")
            runs = {c["name"]: c["runs"] for c in agent.status()["checks"]}
            with FilePoller(agent.track / name for name in names) as poller:
                agent.rewrite(after, interval=2, timeout=0.8)
                agent.send(signal.SIGHUP)
                # every check has run its new command, and once more on its own schedule
                document = agent.wait_status(
                    lambda d: all(c["runs"] >= runs[c["name"]] + 2 for c in d["checks"])
                    and "sha256" in d["checks"][2]["reason"], timeout=15, what="new results")
            assert poller.reads > 2000, poller.reads
            assert poller.unexpected == [], poller.unexpected[:10]
            assert [c["name"] for c in document["checks"]] == [c["name"] for c in after]
            assert ka.states("VI_1") == states, ka.output()  # never left MASTER
            reloaded = [m for m in syslog_socket() if "reloaded" in m]
            assert len(reloaded) == 1 and (": 0 added, 2 changed (run at once, state kept),"
                                           " 0 removed (track files set to 0), 1 kept") \
                in reloaded[0], reloaded
            # the same files do drive this keepalived: the agent's stop is a FAULT
            assert agent.stop(signal.SIGTERM) == 0
            wait_for(lambda: ka.state("VI_1") == "FAULT", 5, interval=0.01, what="FAULT")
        finally:
            ka.stop()


def keepalived_t(conf):
    """``keepalived -t`` on ``conf`` in a namespace with an eth0 (the instances' interface)."""
    ns = create_namespace(f"{BASE}-t-{os.getpid()}")
    try:
        ns.ip("link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
        return ns.run([KEEPALIVED, "-t", "-f", conf])
    finally:
        subprocess.run(["ip", "netns", "del", ns.name], check=False)


def test_the_printed_blocks_pass_keepalived_config_test(tmp_path, agent_factory):
    checks = [
        {"name": "web1", "command": f"kachecks-http --url http://{WEB1}/service.txt"
                                    f" --digest {MD5_SERVER1}"},
        {"name": "web2", "command": "kachecks-http -s 192.168.8.102 -p 80 -u /service.txt"
                                    " --digest fe020663a9ac3e61b71f6921d423251d"},
        {"name": "web1-weight", "command": f"kachecks-http --url http://{WEB1}/weight"
                                           " --weight-header X-Weight --dynamic --weight 10"},
        {"name": "ldap1", "command": "kachecks-tcp 192.168.8.111:389"},
        {"name": "gateway", "command": "kachecks-tcp 192.168.8.254:80", "director": True},
        {"name": "uplink", "command": "kachecks-tcp 192.168.8.25:25", "director": True,
         "vrrp_weight": 0},
    ]
    agent = agent_factory(checks)
    agent.track.mkdir()  # keepalived needs the directory (the package makes it at boot)
    proc = run_agent_cli("conf", "--config", agent.config)
    assert proc.returncode == 0, proc.stderr
    parts = conf_parts(proc.stdout)
    top, instance, virtual_server = parts["top"], parts["instance"], parts["virtual_server"]
    assert "    real_server 192.168.8.101 80 {\n        weight 0  # the dynamic" in virtual_server
    # the instance tracks this director's own: its agent, its director checks
    assert [line.split()[0] for line in instance.splitlines()
            if line.strip() and not line.strip().startswith("#")] == [
        "track_file", "kachecks_running", "gateway", "uplink", "}", "track_process",
        "kachecks_agent", "}"]
    assert "        gateway weight 20 noreverse\n" in instance
    assert "        uplink\n" in instance  # vrrp_weight = 0: FAULT while down
    assert "kachecks doctor --what-if --peer FILE computes it" in instance
    assert "gateway" not in virtual_server and "uplink" not in virtual_server
    config = (
        "global_defs {\n    router_id lvs1\n}\n\n" + top
        + vrrp_config("lvs1", 100, VIP, vrid=51, instance_extra=instance).split("}\n\n", 1)[1]
        + f"\nvirtual_server {VIP} 80 {{\n    delay_loop 6\n    lb_algo wlc\n    lb_kind DR\n"
          "    persistence_timeout 120\n    protocol TCP\n\n" + virtual_server + "}\n"
        + "\nvirtual_server 192.168.8.143 389 {\n    delay_loop 6\n    lb_algo wlc\n"
          "    lb_kind DR\n    protocol TCP\n    real_server 192.168.8.111 389 {\n"
          "        FILE_CHECK {\n            track_file ldap1\n        }\n    }\n}\n")
    config = config.replace("    real_server 192.168.8.111 389 {\n        weight 1\n"
                            "        FILE_CHECK {\n            track_file ldap1\n        }\n"
                            "    }\n", "")  # port 389 belongs to the LDAP virtual server
    conf = tmp_path / "keepalived.conf"
    conf.write_text(config)
    for needed in ("track_process {\n        kachecks_agent",
                   "vrrp_track_process kachecks_agent {\n    process kachecks-agent\n",
                   "track_file web1 {\n    file ", "    weight 0 reverse\n    init_file 0\n",
                   f"track_file kachecks_running {{\n    file {agent.track / ALIVE_FILE}\n",
                   "track_file web1-weight {\n", "FILE_CHECK {\n            track_file web2\n"):
        assert needed in config, needed
    proc = keepalived_t(conf)
    assert proc.returncode == 0, proc.stderr + config
    # keepalived really read the blocks: a wrong keyword in them fails the same test
    conf.write_text(config.replace("weight 0 reverse", "weight 0 reversed", 1))
    proc = keepalived_t(conf)
    assert proc.returncode != 0 and "reversed" in proc.stderr


def test_agent_conf_lists_every_director_check_and_never_faults_on_a_real_server(
        agent_factory):
    """No list cut short (it once printed three names), and a director check that probes a
    real server's address is weighted even with vrrp_weight = 0: FAULT there would be FAULT
    on both directors at once."""
    checks = [{"name": f"gw{i}", "command": f"kachecks-tcp 10.0.{i}.1:22", "director": True}
              for i in range(7)]
    checks += [{"name": "web1", "command": f"kachecks-tcp {WEB1}:80"},
               {"name": "web1-reach", "command": f"kachecks-tcp {WEB1}:80", "director": True,
                "vrrp_weight": 0}]
    agent = agent_factory(checks)
    proc = run_agent_cli("conf", "--config", agent.config)
    assert proc.returncode == 0, proc.stderr
    instance = conf_parts(proc.stdout)["instance"]
    assert [line.strip() for line in instance.splitlines() if line.startswith("        gw")] \
        == [f"gw{i} weight 20 noreverse" for i in range(7)]
    assert "        web1-reach weight 20 noreverse\n" in instance
    assert f"vrrp_weight = 0 asks for FAULT, but it checks {WEB1}," in instance
    assert "        web1\n" not in instance and "web1 weight" not in instance
    assert "9 checks" in proc.stdout and "1 real-server check," in proc.stdout


def migrated(conf, blocks, namespaced):
    """The shipped reference keepalived.conf after docs/agent.md's migration steps: each
    part of `kachecks agent conf` where its heading says (``namespaced``: keepalived runs
    in a network namespace of its own, the agent's process left out)."""
    parts = conf_parts(blocks, namespaced=namespaced)
    conf = re.sub(r"^vrrp_script chk_web1 \{.*?^\}\n", "", conf, flags=re.M | re.S)
    conf = conf.replace("vrrp_instance VI_1 {", parts["top"] + "\nvrrp_instance VI_1 {", 1)
    conf = conf.replace("    track_script {\n        chk_web1\n    }\n", parts["instance"])
    names = {"192.168.8.101 80": "web1", "192.168.8.102 80": "web2",
             "192.168.8.101 389": "ldap1", "192.168.8.102 389": "ldap2"}
    for server, name in names.items():
        conf = re.sub(rf"(real_server {server} \{{\n        weight 1\n)        MISC_CHECK \{{\n"
                      r".*?\n        \}\n",
                      rf"\1        FILE_CHECK {{\n            track_file {name}\n        }}\n",
                      conf, count=1, flags=re.S)
    return conf


@pytest.mark.parametrize("namespaced", [False, True])
def test_the_documented_migration_of_the_reference_deployment_passes_keepalived_t(
        tmp_path, agent_factory, namespaced):
    root = Path(__file__).resolve().parents[2]
    doc = (root / "docs" / "agent.md").read_text()
    checks_toml = doc.split("**1. Describe the checks", 1)[1].split("```toml\n", 1)[1].split(
        "```", 1)[0]
    agent = agent_factory([])
    # the documented [agent] keys join the test's own [agent] table (its track_dir)
    agent.config.write_text(agent.config.read_text() + checks_toml.replace("[agent]\n", "", 1))
    agent.track.mkdir()
    proc = run_agent_cli("conf", "--config", agent.config)
    assert proc.returncode == 0, proc.stderr
    reference = (root / "packaging/debian/examples/keepalived.conf").read_text()
    conf = migrated(reference, proc.stdout, namespaced)
    assert "MISC_CHECK" not in conf and "vrrp_script" not in conf and conf.count("FILE_CHECK") == 4
    assert conf.count("track_file ldap2 {") == 1
    instance = conf.split("vrrp_instance VI_1 {", 1)[1].split("\n}\n", 1)[0]
    # what the docs show for VI_1: the agent's own file and web1-path, weighted
    entries = [line.strip() for line in instance.splitlines()
               if line.strip() and not line.strip().startswith("#")]
    start = entries.index("track_file {")
    assert entries[start:start + 4] == ["track_file {", "kachecks_running",
                                        "web1-path weight 20 noreverse", "}"]
    assert ("track_process {" in entries) is not namespaced
    assert "web1\n" not in instance and "ldap" not in instance
    path = tmp_path / "keepalived.conf"
    path.write_text(conf)
    done = keepalived_t(path)
    assert done.returncode == 0, done.stderr + conf


PAIR = {"lvs1": ("192.168.8.100", 100), "lvs2": ("192.168.8.110", 50)}
WEB2 = "192.168.8.102"
GATEWAY = "192.168.8.254"  # what each director checks of its own (director = true)


def pair_checks():
    """The reference deployment's checks, and one check of each director's own."""
    return [
        {"name": "web1", "command": f"kachecks-http --url http://{WEB1}/service.txt"
                                    f" --digest {MD5_SERVER1}"},
        {"name": "web2", "command": f"kachecks-http --url http://{WEB2}/service.txt"
                                    f" --digest {hashlib.md5(SERVER2).hexdigest()}"},
        {"name": "web1-tcp", "command": f"kachecks-tcp {WEB1}:80"},
        {"name": "gateway", "command": f"kachecks-tcp {GATEWAY}:80", "director": True},
    ]


def holders(net):
    return [name for name in PAIR if VIP in net[name].addresses()]


def test_agent_conf_pasted_on_both_directors_keeps_the_vip_on_one_when_a_shared_server_fails(
        tmp_path, agent_factory):
    """Issue 26: `agent conf` once put the real servers' checks in the vrrp_instance, so one
    failed web server put both directors in FAULT. Pasted as its headings say (leaving out
    the agent's process, which cannot be followed in a namespace), a shared real server's
    failure takes it out of both directors' FILE_CHECK only: exactly one MASTER holds the VIP.
    Stopping an agent, though, is a failover, track_process or not."""
    cleanup_stale(BASE)
    site = {name: secure_dir(tmp_path / f"www-{name}") for name in ("web1", "web2", "gw")}
    (site["web1"] / "service.txt").write_bytes(SERVER1)
    (site["web2"] / "service.txt").write_bytes(SERVER2)
    hosts = {**{name: address for name, (address, _) in PAIR.items()}, "web1": WEB1,
             "web2": WEB2, "gw": GATEWAY}
    with Network(run_prefix(BASE), hosts) as net:
        servers = {name: net[name].start(["python3", "-m", "http.server", "80", "--bind",
                                           hosts[name], "--directory", site[name]],
                                          log=tmp_path / f"{name}.log")
                   for name in site}
        for name in site:
            wait_for(lambda name=name: net["lvs1"].run(["python3", "-c", "import socket; socket.create_"
                                              f"connection(('{hosts[name]}', 80), 1)"]
                                             ).returncode == 0, 10, interval=0.1, what=name)
        agents, kas = {}, {}
        try:
            for name, (_, priority) in PAIR.items():
                agent = agents[name] = agent_factory(pair_checks(), interval=0.5, timeout=0.3,
                                                     launch=net[name].argv)
                agent.track.mkdir()
                printed = run_agent_cli("conf", "--config", agent.config)
                assert printed.returncode == 0, printed.stderr
                parts = conf_parts(printed.stdout, namespaced=True)
                assert "track_process" not in parts["top"] + parts["instance"]
                text = vrrp_config(name, priority, VIP, instance_extra=parts["instance"])
                text = text.replace("vrrp_instance", parts["top"] + "vrrp_instance", 1)
                text += (f"\nvirtual_server {VIP} 80 {{\n    delay_loop 4\n    lb_algo wlc\n"
                         "    lb_kind DR\n    protocol TCP\n" + parts["virtual_server"] + "}\n")
                assert "web1" not in text.split("vrrp_instance", 1)[1].split("virtual_server")[0]
                (agent.dir / "keepalived.conf").write_text(text)
                checked = net[name].run([KEEPALIVED, "-t", "-f", agent.dir / "keepalived.conf"])
                assert checked.returncode == 0, checked.stderr + text  # FILE_CHECK included
                agent.start()
                for check in ("web1", "web2", "web1-tcp", "gateway", ALIVE_FILE):
                    agent.wait_value(check, "1\n")
                kas[name] = Keepalived(net[name], tmp_path / f"ka-{name}", text).start()
            kas["lvs1"].wait_state("MASTER", "VI_1", timeout=20)
            kas["lvs2"].wait_state("BACKUP", "VI_1", timeout=20)
            assert holders(net) == ["lvs1"]
            states = {name: ka.states("VI_1") for name, ka in kas.items()}

            servers["web1"].stop()  # one shared real server fails: both agents see it
            for agent in agents.values():
                agent.wait_value("web1", "0\n")
                agent.wait_value("web1-tcp", "0\n")
            seen = set()
            end = time.monotonic() + 5  # the peer's master-down timer (3.8 s at 50) and more
            while time.monotonic() < end:
                seen.add(tuple(holders(net)))
                time.sleep(0.05)
            assert seen == {("lvs1",)}, seen
            assert {name: ka.states("VI_1") for name, ka in kas.items()} == states, \
                kas["lvs1"].output() + kas["lvs2"].output()

            # without vrrp_track_process, stopping the agent still hands the VIP over
            stopped = time.monotonic()
            assert agents["lvs1"].stop(signal.SIGTERM) == 0
            assert agents["lvs1"].value(ALIVE_FILE) == "0\n"
            kas["lvs1"].wait_state("FAULT", "VI_1", timeout=5)
            fault = time.monotonic() - stopped
            wait_for(lambda: holders(net) == ["lvs2"], 10, interval=0.02,
                     what="the VIP on lvs2 alone")
            print(f"agent stopped: lvs1 FAULT after {fault:.2f} s, the VIP on lvs2 alone after"
                  f" {time.monotonic() - stopped:.2f} s")
            assert kas["lvs2"].state("VI_1") == "MASTER"
        finally:
            for ka in kas.values():
                ka.stop()
