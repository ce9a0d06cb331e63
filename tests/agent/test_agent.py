"""The running agent against real loopback peers: files, signals, reload, syslog, status."""

import json
import os
import pty
import re
import signal
import stat
import subprocess
import threading
import time

import pytest

from harness.checks import MD5_SERVER2, SERVER1, SERVER2
from harness.peers import cli
from harness.peers.agent import ALIVE_FILE, http_check, run_agent_cli
from harness.peers.rawhttp import RawHTTPServer, http_response
from harness.wait import wait_for

pytestmark = pytest.mark.slow


def serve(server, body):
    server.response = http_response(body)


def test_track_files_follow_the_peer_on_every_result(agent_factory, web):
    agent = agent_factory([http_check("web1", web), http_check("web2", web, MD5_SERVER2)],
                          interval=0.5, timeout=0.3)
    with agent:
        agent.wait_value("web1", "1\n")
        agent.wait_value("web2", "0\n")
        serve(web, SERVER2)  # a deploy replaced the page
        agent.wait_value("web1", "0\n")
        agent.wait_value("web2", "1\n")
        serve(web, SERVER1)
        agent.wait_value("web1", "1\n")
        agent.wait_value("web2", "0\n")


def test_files_are_replaced_atomically_with_their_own_mode_whatever_the_umask(agent_factory, web):
    agent = agent_factory([http_check("web1", web)], interval=0.2, timeout=0.1,
                          preamble="import os; os.umask(0o177)")  # keepalived's scripts' umask
    with agent:
        agent.wait_value("web1", "1\n")
        seen = set()
        flip = threading.Event()

        def toggle():
            while not flip.is_set():
                serve(web, SERVER2)
                time.sleep(0.15)
                serve(web, SERVER1)
                time.sleep(0.15)

        thread = threading.Thread(target=toggle, daemon=True)
        thread.start()
        path = agent.track / "web1"
        end = time.monotonic() + 3
        reads = 0
        while time.monotonic() < end:
            seen.add(path.read_text())  # keepalived's read: open, read, close
            reads += 1
        flip.set()
        thread.join()
        assert seen == {"0\n", "1\n"}, seen  # never empty, never torn
        assert reads > 1000
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        assert not [p for p in agent.track.iterdir() if p.name.endswith(".tmp")]


def test_a_file_keepalived_reinitialised_is_restored_within_one_interval(agent_factory, web):
    agent = agent_factory([http_check("web1", web)], interval=1, timeout=0.5)
    with agent:
        agent.wait_value("web1", "1\n")
        (agent.track / "web1").write_text("0\n")  # keepalived's init_file … overwrite
        restored = agent.wait_value("web1", "1\n", timeout=3)
        (agent.track / "web1").unlink()
        start = time.monotonic()
        agent.wait_value("web1", "1\n", timeout=3)
        assert time.monotonic() - start < 1.0 * 1.05 + 0.3
        assert restored


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signals_set_every_file_to_0_and_exit_0(agent_factory, web, sig):
    agent = agent_factory([http_check("web1", web), http_check("web2", web),
                           http_check("tcp1", web) | {
                               "command": f"kachecks-tcp {web.address} --dynamic --weight 9"}],
                          interval=0.5, timeout=0.3)
    with agent:
        agent.wait_value("web1", "1\n")
        agent.wait_value("web2", "1\n")
        agent.wait_value("tcp1", "9\n")
        assert agent.value(ALIVE_FILE) == "1\n"
        assert agent.stop(sig) == 0
        assert [agent.value(n) for n in ("web1", "web2", "tcp1", ALIVE_FILE)] == ["0\n"] * 4
        document = agent.status()
        assert document["state"] == "stopped"
    proc = run_agent_cli("status", "--config", agent.config)
    assert proc.returncode == 3
    assert proc.stdout.startswith(f"kachecks agent is not running: pid {agent.pid} stopped at ")
    assert [line.split()[1:3] for line in proc.stdout.splitlines()[2:5]] == [["STOPPED", "0"]] * 3


def test_the_process_names_itself_for_vrrp_track_process(agent_factory, web):
    agent = agent_factory([http_check("web1", web)], interval=1, timeout=0.5)
    with agent:
        agent.wait_value("web1", "1\n")
        with open(f"/proc/{agent.pid}/comm") as handle:
            assert handle.read() == "kachecks-agent\n"


def test_transitions_reach_syslog_in_the_forked_checks_words(agent_factory, web, syslog_socket):
    agent = agent_factory([http_check("web1", web)], interval=0.3, timeout=0.2)
    with agent:
        agent.wait_value("web1", "1\n")
        serve(web, SERVER2)
        agent.wait_value("web1", "0\n")
        serve(web, SERVER1)
        agent.wait_value("web1", "1\n")
        mine = []  # the track file is written before the line is sent
        wait_for(lambda: mine.extend(m for m in syslog_socket() if "kachecks-agent[" in m
                                     and "check web1:" in m) or len(mine) >= 2, 10,
                 what="the agent's DOWN and UP lines")
    forked = []
    for body in (SERVER2, SERVER1):
        serve(web, body)
        cli.run("kachecks-http", *http_check("x", web)["command"].split()[1:])
        forked += [m for m in syslog_socket() if "kachecks-http[" in m]
    assert len(mine) == 2, mine  # no line for the expected first result: UP
    timing = re.compile(r" in \d+\.\d+ s")  # the one part that differs from run to run
    for line, reference in zip(mine, forked[-2:]):
        words = timing.sub(" in T s", reference.split("]: ", 1)[1])
        assert timing.sub(" in T s", line).endswith(
            f"kachecks-agent[{agent.pid}]: check web1: {words}"), (line, words)
    assert "DOWN: md5 mismatch (got fe020663a9ac3e61b71f6921d423251d" in mine[0]
    assert mine[0].startswith("<28>") and mine[1].startswith("<29>")  # daemon.warning, .notice


def test_fall_failures_in_a_row_before_down_and_rise_successes_before_up(agent_factory, web):
    agent = agent_factory([http_check("web1", web, fall=3, rise=2)], interval=0.25, timeout=0.2)
    with agent:
        agent.wait_value("web1", "1\n")
        before = agent.check("web1")["failed_runs"]
        serve(web, SERVER2)
        agent.wait_value("web1", "0\n")
        down = agent.wait_status(lambda d: d["checks"][0]["state"] == "DOWN")
        assert down["checks"][0]["failed_runs"] - before >= 3
        serve(web, SERVER1)
        agent.wait_value("web1", "1\n")
        up = agent.wait_status(lambda d: d["checks"][0]["state"] == "UP")
        assert up["checks"][0]["runs"] - down["checks"][0]["runs"] >= 2


def test_sighup_reloads_and_unchanged_checks_keep_their_state(agent_factory, web, syslog_socket):
    checks = [http_check("web1", web, fall=2), http_check("web2", web, MD5_SERVER2),
              http_check("old", web)]
    agent = agent_factory(checks, interval=0.3, timeout=0.2)
    with agent:
        agent.wait_value("web1", "1\n")
        agent.wait_value("web2", "0\n")
        agent.wait_value("old", "1\n")
        first = agent.wait_status(lambda d: d["checks"][0]["since"])["checks"][0]
        agent.rewrite([http_check("web1", web, fall=2), http_check("web2", web),  # fixed
                       http_check("new", web, MD5_SERVER2)], interval=0.3, timeout=0.2)
        agent.send(signal.SIGHUP)
        agent.wait_value("web2", "1\n")
        agent.wait_value("new", "0\n")
        agent.wait_value("old", "0\n")  # removed: fail-closed, not left at 1
        reloaded = agent.wait_status(lambda d: len(d["checks"]) == 3
                                     and d["checks"][0]["runs"] > first["runs"])
        web1 = reloaded["checks"][0]
        assert web1["name"] == "web1" and web1["since"] == first["since"]  # state kept
        assert {c["name"] for c in reloaded["checks"]} == {"web1", "web2", "new"}
        assert "old" not in [c["name"] for c in reloaded["checks"]]
        # a broken file: logged, the running set kept
        agent.config.write_text(agent.config.read_text() + "interval = 'soon'\n")
        agent.send(signal.SIGHUP)
        deadline = time.monotonic() + 5
        lines = []
        while time.monotonic() < deadline and not any("reload failed" in m for m in lines):
            lines += syslog_socket()
            time.sleep(0.05)
        failed = [m for m in lines if "reload failed" in m]
        assert failed and "running configuration kept" in failed[0]
        assert str(agent.config) in failed[0] and "interval" in failed[0]
        agent.assert_running()
        runs = agent.check("web1")["runs"]
        agent.wait_status(lambda d: d["checks"][0]["runs"] > runs + 2)
        assert agent.value("web1") == "1\n"


def test_a_check_moved_to_another_file_zeroes_the_old_one_and_starts_afresh(agent_factory, web):
    agent = agent_factory([http_check("web1", web)], interval=0.3, timeout=0.2)
    with agent:
        agent.wait_value("web1", "1\n")
        agent.rewrite([http_check("web1", web, file="web1-moved")], interval=0.3, timeout=0.2)
        agent.send(signal.SIGHUP)
        agent.wait_value("web1-moved", "1\n")
        assert agent.value("web1") == "0\n"  # nobody writes it any more: fail-closed
        document = agent.wait_status(lambda d: d["checks"][0]["file"].endswith("web1-moved"))
        assert [c["name"] for c in document["checks"]] == ["web1"]
        assert document["files"] == [str(agent.track / ALIVE_FILE), str(agent.track / "web1"),
                                     str(agent.track / "web1-moved")]


def test_a_hung_peer_never_delays_the_other_checks(agent_factory, web):
    with RawHTTPServer(b"", hang=True) as hung:
        checks = [http_check(f"hung{i}", hung) for i in range(40)]
        checks += [http_check(f"web{i}", web) for i in range(5)]
        agent = agent_factory(checks, interval=1, timeout=0.6)
        with agent:
            agent.wait_value("web4", "1\n")
            agent.wait_value("hung39", "0\n", timeout=5)
            start = {c["name"]: c["runs"] for c in agent.status()["checks"]}
            time.sleep(4)
            document = agent.status()
    for check in document["checks"]:
        if check["name"].startswith("web"):
            assert check["runs"] - start[check["name"]] >= 3, check
            assert check["state"] == "UP" and check["lateness"] < 0.25, check
        else:
            assert check["state"] == "DOWN", check
            assert check["reason"].startswith("timeout after 0.6 s during "), check


def test_status_prints_one_line_per_check(agent_factory, web):
    agent = agent_factory([http_check("web1", web), http_check("web2", web, MD5_SERVER2)],
                          interval=0.5, timeout=0.3)
    with agent:
        agent.wait_value("web2", "0\n")
        agent.wait_status(lambda d: all(c["state"] for c in d["checks"]))
        proc = run_agent_cli("status", "--config", agent.config)
    assert proc.returncode == 0, proc.stderr
    head, columns, web1, web2 = proc.stdout.splitlines()
    assert head == f"kachecks agent (pid {agent.pid}): 2 checks, 1 up"
    assert columns.split() == ["CHECK", "STATE", "VALUE", "SINCE", "CAUSE", "LATENCY", "LAST",
                               "60", "DOWNTIME", "DOWNS", "FLAPPING", "LAST", "RESULT"]
    assert web1.split()[:3] == ["web1", "UP", "1"] and "200 OK, md5 5f2b…75 matches" in web1
    assert web2.split()[:3] == ["web2", "DOWN", "0"]
    assert "md5 mismatch (got 5f2b4547f41470dc3e293e7267461575, want fe02" in web2

    def cell(row, name):  # the columns are aligned under their heads
        return row[columns.index(name):].split()[0]

    assert (cell(web1, "CAUSE"), cell(web2, "CAUSE")) == ("L7OK", "L7RSP")
    assert cell(web1, "LATENCY").replace(".", "").isdigit() and " ms  " in web1
    assert cell(web1, "FLAPPING") == "no" and cell(web2, "DOWNS") == "0"
    assert "\033[" not in proc.stdout  # no colour into a pipe


def test_status_paints_the_states_on_a_terminal_and_prints_the_document_with_json(
        agent_factory, web):
    agent = agent_factory([http_check("web1", web), http_check("web2", web, MD5_SERVER2)],
                          interval=0.5, timeout=0.3)
    with agent:
        agent.wait_status(lambda d: all(c["state"] for c in d["checks"]))
        painted = on_a_terminal("agent", "status", "--config", agent.config)
        plain = on_a_terminal("agent", "status", "--config", agent.config,
                              env={"NO_COLOR": "1"})
        proc = run_agent_cli("status", "--json", "--config", agent.config)
    assert "\033[32mUP" in painted and "\033[31mDOWN" in painted
    assert "\033[" not in plain and "DOWN" in plain
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert [(c["name"], c["state"], c["cause"]) for c in document["checks"]] == [
        ("web1", "UP", "L7OK"), ("web2", "DOWN", "L7RSP")]


def on_a_terminal(*args, env=None):
    """What ``kachecks ARGS`` writes to a terminal (a pseudo-terminal of ours)."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(cli.command("kachecks") + [str(a) for a in args],
                              stdout=follower, stderr=subprocess.PIPE, timeout=30,
                              env={**os.environ, **(env or {})})
        os.close(follower)
        follower = None
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not chunk:
                break
            out += chunk
    finally:
        if follower is not None:
            os.close(follower)
        os.close(leader)
    assert proc.returncode == 0, proc.stderr
    return out.decode("utf-8", "replace")


def test_zero_after_a_crash_sets_every_file_the_agent_wrote_to_0(agent_factory, web):
    agent = agent_factory([http_check("web1", web), http_check("web2", web)],
                          interval=0.3, timeout=0.2)
    with agent:
        agent.wait_value("web1", "1\n")
        agent.wait_value("web2", "1\n")
        agent.wait_status(lambda d: len(d["files"]) == 3)  # and the agent's own file
        assert agent.value(ALIVE_FILE) == "1\n"
        refused = run_agent_cli("zero", "--config", agent.config)
        assert refused.returncode == 1 and "is running; stop it first" in refused.stderr
        agent.rewrite([http_check("web1", web)])  # edited, never reloaded
        agent.stop(signal.SIGKILL)
    # a crash leaves them stale
    assert agent.value("web1") == agent.value("web2") == agent.value(ALIVE_FILE) == "1\n"
    document = agent.status()
    bystander = agent.dir / "not-a-track-file"
    bystander.write_text("precious\n")
    document["files"].append(str(bystander))  # listed, but not a number: never touched
    (agent.track / ".kachecks-agent.json").write_text(json.dumps(document))
    proc = run_agent_cli("zero", "--config", agent.config)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert agent.value("web1") == agent.value("web2") == agent.value(ALIVE_FILE) == "0\n"
    assert bystander.read_text() == "precious\n"
    assert run_agent_cli("status", "--config", agent.config).returncode == 3


def test_a_drain_file_takes_effect_at_once_and_a_dynamic_check_stays_up_at_weight_0(
        agent_factory, web, tmp_path):
    drain = tmp_path / "drain-web1"
    plain = http_check("web1", web, extra=f"--drain-file {drain}", fall=5)
    dynamic = http_check("web1-weight", web, extra=f"--drain-file {drain} --dynamic --weight 7",
                         fall=5)
    agent = agent_factory([plain, dynamic], interval=0.3, timeout=0.2)
    with agent:
        agent.wait_value("web1", "1\n")
        agent.wait_value("web1-weight", "7\n")
        drain.touch()
        agent.wait_value("web1", "0\n", timeout=0.3 * 1.05 + 1)  # fall 5 does not delay it
        agent.wait_value("web1-weight", "0\n", timeout=0.3 * 1.05 + 1)
        document = agent.wait_status(lambda d: all(c["state"] == "DRAIN" for c in d["checks"]))
        assert [c["up"] for c in document["checks"]] == [False, True]
        assert document["checks"][0]["reason"] == f"drained by {drain}"
        drain.unlink()
        agent.wait_value("web1", "1\n")
        agent.wait_value("web1-weight", "7\n")


def test_status_still_reads_when_the_configuration_is_broken(agent_factory, web):
    agent = agent_factory([http_check("web1", web)], interval=0.3, timeout=0.2)
    with agent:
        agent.wait_status(lambda d: d["checks"][0]["state"] == "UP")
        agent.config.write_text(agent.config.read_text() + "\n[[check]]\nname = 'x'\n")
        proc = run_agent_cli("status", "--config", agent.config)
    assert proc.returncode == 0
    assert proc.stderr.startswith("kachecks agent status: warning: ") and "command: missing" \
        in proc.stderr
    assert proc.stdout.splitlines()[2].split()[:2] == ["web1", "UP"]


def test_a_second_agent_on_the_same_track_files_refuses_to_start(agent_factory, web):
    agent = agent_factory([http_check("web1", web)], interval=0.3, timeout=0.2)
    with agent:
        agent.wait_status(lambda d: d["checks"][0]["state"] == "UP")
        proc = run_agent_cli("--config", agent.config, timeout=10)
        assert proc.returncode == 1
        assert proc.stderr == (f"kachecks agent: another kachecks agent (pid {agent.pid}) writes"
                               f" the track files in {agent.track}\n")
        agent.assert_running()
        assert agent.value("web1") == "1\n"


def test_an_unusable_or_unsafe_track_directory_is_one_line_and_exit_1(agent_factory, web, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    agent = agent_factory([http_check("web1", web)])
    agent.config.write_text(agent.config.read_text().replace(str(agent.track),
                                                             str(blocker / "track")))
    proc = run_agent_cli("--config", agent.config, timeout=10)
    assert (proc.returncode, proc.stderr) == (
        1, f"kachecks agent: cannot use {blocker}/track: Not a directory\n")
    agent.track.mkdir()
    agent.track.chmod(0o777)  # anybody could write "1" for a dead server
    agent.config.write_text(agent.config.read_text().replace(str(blocker / "track"),
                                                             str(agent.track)))
    proc = run_agent_cli("--config", agent.config, timeout=10)
    assert (proc.returncode, proc.stderr) == (
        1, f"kachecks agent: cannot use {agent.track}: {agent.track} is writable by group or"
           f" others (mode 0777; chmod go-w {agent.track}): keepalived would believe files that"
           " others write\n")
