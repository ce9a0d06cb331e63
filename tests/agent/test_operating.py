"""Operating the agent: what it says in the foreground, what status says once it is gone,
stopping it without systemd, a reload of a file with several mistakes."""

import os
import signal
import time

from harness.checks import MD5_SERVER2, SERVER2
from harness.peers.agent import ALIVE_FILE, STATUS_FILE, http_check, run_agent_cli
from harness.peers.rawhttp import http_response
from harness.wait import wait_for


def lines(agent):
    return agent.output().splitlines()


def up_down_stopped(agent_factory, web):
    """An agent whose web1 check came up, went down (a wrong page) and that was stopped."""
    agent = agent_factory([http_check("web1", web)], interval=0.3, timeout=0.2)
    with agent:
        agent.wait_value("web1", "1\n")
        web.response = http_response(SERVER2)
        agent.wait_value("web1", "0\n")
        assert agent.stop(signal.SIGTERM) == 0
    return agent


def test_in_the_foreground_every_line_goes_to_stderr_and_to_syslog(agent_factory, web,
                                                                    syslog_socket):
    agent = up_down_stopped(agent_factory, web)
    said = [line for line in lines(agent) if line.startswith("kachecks agent: ")]
    logged = syslog_socket()
    assert [line.split(": ", 1)[1].split(":")[0] for line in said] == [
        "started", "check web1", "SIGTERM"], said
    assert "md5 mismatch" in said[1]
    for line in said:  # the same words in both
        assert any(line.split(": ", 1)[1] in message for message in logged), (line, logged)
    assert not [line for line in said if "syslog unreachable" in line]


def test_without_syslog_the_agent_says_so_once_and_every_line_goes_to_stderr(agent_factory,
                                                                               web, tmp_path):
    # the test's KACHECKS_SYSLOG_SOCKET names nothing: a container without /dev/log
    agent = up_down_stopped(agent_factory, web)
    said = lines(agent)
    assert said[0] == (f"kachecks agent: syslog unreachable ({tmp_path}/no-syslog: No such file"
                       " or directory): logging to stderr only")
    assert said[1].startswith("kachecks agent: started: 1 check from ")
    assert [line for line in said if "syslog unreachable" in line] == said[:1]
    assert any("check web1: " in line and "DOWN: md5 mismatch" in line for line in said)
    assert said[-1] == "kachecks agent: SIGTERM: stopping; every track file set to 0"


def journal_env(agent):
    """$JOURNAL_STREAM as systemd sets it when standard error is the journal: the device and
    inode of the agent's standard error (here its log file)."""
    agent.log.touch()
    st = os.stat(agent.log)
    return {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


def test_under_the_journal_a_line_is_not_written_twice(agent_factory, web, syslog_socket):
    agent = agent_factory([http_check("web1", web)], interval=0.3, timeout=0.2)
    agent.env = journal_env(agent)
    with agent:
        agent.wait_value("web1", "1\n")
        assert agent.stop(signal.SIGTERM) == 0
    assert agent.output() == ""
    assert [m for m in syslog_socket() if "started: 1 check" in m]


def test_under_the_journal_without_syslog_the_lines_still_reach_the_journal(agent_factory, web):
    agent = agent_factory([http_check("web1", web)], interval=0.3, timeout=0.2)
    agent.env = journal_env(agent)
    with agent:
        agent.wait_value("web1", "1\n")
        assert agent.stop(signal.SIGTERM) == 0
    said = lines(agent)
    assert "syslog unreachable" in said[0] and "started: 1 check" in said[1]


def test_status_after_a_stop_dates_every_check_from_the_stop(agent_factory, web):
    """Not from the last change of state (it showed web2's DOWN time as the STOPPED's)."""
    agent = agent_factory([http_check("web1", web),
                           http_check("web2", web, digest=MD5_SERVER2)], interval=0.3,
                          timeout=0.2)
    with agent:
        agent.wait_value("web1", "1\n")
        document = agent.wait_status(lambda d: d["checks"][1]["since"], what="web2 DOWN")
        down = document["checks"][1]["since"]
        wait_for(lambda: int(time.time()) > int(down), 2, what="the next second")
        assert agent.stop(signal.SIGTERM) == 0
    stopped = agent.status()["written"]
    assert int(stopped) > int(down)
    proc = run_agent_cli("status", "--config", agent.config)
    assert proc.returncode == 3, proc.stderr
    head, columns, web1, web2, tail = proc.stdout.splitlines()
    assert head.startswith(f"kachecks agent is not running: pid {agent.pid} stopped at"
                           f" {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(stopped))} (")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stopped))
    for row, name in ((web1, "web1"), (web2, "web2")):
        assert row.split()[:5] == [name, "STOPPED", "0", *stamp.split()], row
    assert tail == "every track file reads 0 (or is missing): this director's real servers are out"


def test_routine_results_of_few_checks_among_many_leave_the_status_document_a_change_rewrites_it(
        agent_factory, web):
    """The agent at rest rewrites its status document only for news: web1 runs every
    0.3 s among 19 checks with none due for hours, so each of its results is routine
    (its first UP, the one expected, then counters and latencies: 1 check in 20) and
    leaves the document written at the start as it is; web1 going DOWN rewrites it at
    once, the counters with it. `agent status` judges the agent running by its lock, not
    by how old the document is."""
    quiet = [http_check(f"quiet{i}", web, interval=86400) for i in range(19)]
    agent = agent_factory([http_check("web1", web), *quiet], interval=0.3, timeout=0.2)
    with agent:
        agent.wait_value("web1", "1\n")
        path = agent.track / STATUS_FILE
        before = os.stat(path)
        started = agent.status()
        assert [c["runs"] for c in started["checks"]] == [0] * 20
        asked = len(web.requests)
        wait_for(lambda: len(web.requests) >= asked + 10, 10, what="ten more runs of web1")
        after = os.stat(path)
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        proc = run_agent_cli("status", "--config", agent.config)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"kachecks agent (pid {agent.pid}): 20 checks, 0 up\n")
        web.response = http_response(SERVER2)
        down = agent.wait_status(lambda d: d["checks"][0]["state"] == "DOWN", timeout=5,
                                 what="web1 DOWN")
        assert down["checks"][0]["runs"] >= 11
        assert [c["runs"] for c in down["checks"][1:]] == [0] * 19  # none due: none ran


def test_status_after_a_crash_names_the_files_that_still_read_1_and_the_fix(agent_factory,
                                                                             web):
    agent = agent_factory([http_check("web1", web), http_check("web2", web)], interval=0.3,
                          timeout=0.2)
    with agent:
        agent.wait_value("web1", "1\n")
        agent.wait_value("web2", "1\n")
        agent.wait_status(lambda d: all(c["up"] for c in d["checks"]))
    agent.stop(signal.SIGKILL)
    proc = run_agent_cli("status", "--config", agent.config)
    assert proc.returncode == 3, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0].startswith(f"kachecks agent is not running: pid {agent.pid} died without"
                             " stopping; its last status is from ")
    assert [row.split()[:3] for row in out[2:4]] == [["web1", "STALE", "1"], ["web2", "STALE", "1"]]
    assert out[4] == ("still non-zero, so keepalived still believes them: "
                      f"{agent.track / ALIVE_FILE}, {agent.track / 'web1'}, {agent.track / 'web2'}")
    assert out[5] == ("set them to 0 with `kachecks agent zero` (the unit's ExecStopPost does it"
                      " after a crash), or start the agent again")
    assert run_agent_cli("zero", "--config", agent.config).returncode == 0
    after = run_agent_cli("status", "--config", agent.config).stdout.splitlines()
    assert "stopped at" in after[0] and after[-1].startswith("every track file reads 0")


def test_stop_stops_a_running_agent_and_leaves_every_file_at_0(agent_factory, web):
    agent = agent_factory([http_check("web1", web)], interval=0.3, timeout=0.2)
    with agent:
        agent.wait_value("web1", "1\n")
        agent.wait_value(ALIVE_FILE, "1\n")
        proc = run_agent_cli("stop", "--config", agent.config)
        assert (proc.returncode, proc.stderr) == (0, "")
        assert proc.stdout == f"kachecks agent (pid {agent.pid}) stopped\n"
        assert agent.proc.wait(5) == 0  # its own SIGTERM path, not a kill
    assert agent.value("web1") == agent.value(ALIVE_FILE) == "0\n"
    assert agent.status()["state"] == "stopped"
    again = run_agent_cli("stop", "--config", agent.config)  # none runs: the files stay 0
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")


def test_stop_kills_an_agent_that_does_not_stop_in_time(agent_factory, web):
    # SIGTERM ignored from the start, as a wedged agent would
    agent = agent_factory([http_check("web1", web)], interval=0.3, timeout=0.2,
                          preamble="import signal\n"
                                   "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})")
    with agent:
        agent.wait_value("web1", "1\n")
        started = time.monotonic()
        proc = run_agent_cli("stop", "--timeout", "1", "--config", agent.config)
        assert time.monotonic() - started < 5
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == (f"kachecks agent stop: pid {agent.pid} did not stop within 1 s:"
                               " killed\n")
        assert agent.proc.wait(5) == -signal.SIGKILL
    assert agent.value("web1") == agent.value(ALIVE_FILE) == "0\n"  # zeroed after the kill


def test_a_reload_of_a_file_with_several_mistakes_logs_each_and_keeps_running(
        agent_factory, web, syslog_socket):
    agent = agent_factory([http_check("web1", web)], interval=0.3, timeout=0.2)
    with agent:
        agent.wait_value("web1", "1\n")
        agent.rewrite([http_check("web1", web, fal=2), http_check("web2", web, interval="x")],
                      interval=0.3, timeout=0.2)
        agent.send(signal.SIGHUP)
        deadline = time.monotonic() + 10
        failed = []
        while time.monotonic() < deadline and len(failed) < 2:
            failed += [m for m in syslog_socket() if "reload failed" in m]
            time.sleep(0.05)
        agent.assert_running()
    assert [m.split("running configuration kept: ", 1)[1] for m in failed] == [
        f"{agent.config}: check 'web1': fal: unknown key; did you mean 'fall'?",
        f"{agent.config}: check 'web2': interval: must be a duration (a number of seconds, or a"
        ' number with a unit: 500ms, 30s, 5m, 12h, 3d, 1w), not "x"']
