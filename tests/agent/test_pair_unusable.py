"""The agent's [vrrp] when the watch cannot run: one line, and the checks run on.

A keepalived.conf the watcher cannot use, an interface that does not exist or no
CAP_NET_RAW must never cost keepalived its track files: the agent says why once (syslog,
status, `--check-config`'s warning, the kachecks_vrrp_watching metric) and runs every
check. The pair itself is watched in tests/vrrp/test_agent.py.
"""

import urllib.request

import pytest

from harness.checks import SERVER1
from harness.peers import cli
from harness.peers.agent import http_check
from harness.peers.rawhttp import RawHTTPServer, http_response

INSTANCE = """\
vrrp_instance VI_1 {{
    state BACKUP
    interface {interface}
    virtual_router_id 50
    priority 100
    advert_int 1
    virtual_ipaddress {{
        192.168.8.142/32
    }}
}}
"""


@pytest.fixture
def web():
    with RawHTTPServer(http_response(SERVER1)) as server:
        yield server


def no_capability(argv):
    """``argv`` run without CAP_NET_RAW (out of the bounding set: root's exec drops it)."""
    return ["setpriv", "--bounding-set", "-net_raw", "--", *argv]


def keepalived_conf(tmp_path, case):
    """(path, words the agent's line must hold) of each way keepalived.conf can be unusable."""
    conf = tmp_path / "keepalived.conf"
    if case == "missing":
        return tmp_path / "nowhere.conf", "nowhere.conf: cannot read the configuration: No such file"
    if case == "directory":
        return tmp_path, "is a directory, not a configuration file"
    if case == "no instance":
        conf.write_text("global_defs {\n    router_id lvs1\n}\n")
        return conf, "keepalived.conf: no vrrp_instance to watch"
    if case == "no interface":
        conf.write_text(INSTANCE.format(interface="eth9"))
        return conf, "eth9: no such interface (watching VI_1 vrid 50 on eth9 from"
    conf.write_text(INSTANCE.format(interface="lo"))
    return conf, "reading VRRP from the wire needs CAP_NET_RAW"


@pytest.mark.parametrize("case", ["missing", "directory", "no instance", "no interface",
                                  "no CAP_NET_RAW"])
def test_an_unusable_watch_is_one_line_and_the_checks_run_on(agent_factory, web, tmp_path,
                                                            syslog_socket, unused_port, case):
    conf, words = keepalived_conf(tmp_path, case)
    launch = no_capability if case == "no CAP_NET_RAW" else None
    agent = agent_factory([http_check("web1", web)], interval=0.5, timeout=0.3, launch=launch,
                          metrics=f"127.0.0.1:{unused_port}",
                          tables={"vrrp": {"keepalived_conf": str(conf)}})
    checked = cli.run("kachecks", "agent", "--check-config", "--config", agent.config)
    # ExecStartPre runs --check-config: a keepalived.conf typo must not keep the checks down
    assert checked.returncode == 0, checked
    if case != "no CAP_NET_RAW":  # the test runs as root: --check-config can watch
        warning = [line for line in checked.stderr.splitlines() if "[vrrp]" in line]
        assert len(warning) == 1 and words in warning[0], checked.stderr
        assert warning[0].startswith("warning: [vrrp]: not watching the pair: ")
    with agent:
        agent.wait_value("web1", "1\n")
        document = agent.wait_status(lambda d: d.get("vrrp") and d["vrrp"]["error"]
                                     and d["checks"][0]["state"] == "UP", 5,
                                     "the check up and the watch's error in the status")
        assert document["vrrp"]["watching"] is False and words in document["vrrp"]["error"]
        with urllib.request.urlopen(f"http://127.0.0.1:{unused_port}/metrics", timeout=5) as page:
            metrics = page.read().decode()
        assert "\nkachecks_vrrp_watching 0.0\n" in metrics
        assert "kachecks_vrrp_problem{" not in metrics  # nothing watched, nothing to say
        shown = cli.run("kachecks", "agent", "status", "--config", agent.config)
        assert "  not watching: " in shown.stdout and words in shown.stdout, shown.stdout
        lines = [line for line in syslog_socket() if "vrrp:" in line]
        assert len(lines) == 1, lines
        assert "vrrp: not watching the pair: " in lines[0] and words in lines[0]
        assert "the checks run on" in lines[0] and lines[0].startswith("<27>")  # daemon.err
        assert agent.stop() == 0
    assert "Traceback" not in agent.output()

