"""The agent under attack: a local user, a unit's limits, a spoofed name must never blind it.

Each test reproduces an attack found against the agent (bounded in count and time)
and pins what must hold: a dead real server's file reaches 0 on time, the schedule
survives, our own tools tell a running agent from a process that only looks like one.
The attackers are harness.agentattacks; `python -m harness.redteam --only agent`
repeats them with figures.
"""

import errno
import json
import os
import signal
import time

import pytest

from harness.agentattacks import SlowLoris, SpoofedName, TaskLimit, descriptors, threads
from harness.checks import SERVER1
from harness.peers.agent import http_check, run_agent_cli
from harness.peers.hostile import Mute
from harness.peers.ports import free_port
from harness.peers.rawhttp import RawHTTPServer, http_response

NOFILE_1024 = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))"
               "  # the unit's default before LimitNOFILE")
JITTER = 0.05


def wait_held(pid, loris, count, timeout=30):
    """The agent's descriptors once it holds ``count`` of them or has dropped ``count`` of
    the attacker's connections (each tried, and tried again once dropped)."""
    end = time.monotonic() + timeout
    while True:
        held = descriptors(pid)
        if held >= count or loris.progress()["dropped"] >= count or time.monotonic() > end:
            return held
        time.sleep(0.1)


def test_a_slow_loris_under_1024_descriptors_never_keeps_a_dead_server_up(agent_factory):
    """1,020 connections held from uid 65534 to the metrics port; then web1 stops:
    its file must read 0 within one interval (+ jitter + timeout), as without attack."""
    port = free_port()
    web = RawHTTPServer(http_response(SERVER1)).start()
    try:
        agent = agent_factory([http_check("web1", web)], metrics=f"127.0.0.1:{port}",
                              interval=1, timeout=0.5, preamble=NOFILE_1024)
        with agent:
            agent.wait_value("web1", "1\n")
            with SlowLoris(port, 1020, drip=2.0) as loris:
                held = wait_held(agent.pid, loris, 1000)
                web.stop()
                stopped = time.monotonic()
                down = agent.wait_value("web1", "0\n", timeout=10)
                assert agent.check("web1")["error"] is None
            report = loris.report()
            assert down - stopped <= 1 * (1 + JITTER) + 0.5 + 0.5, down - stopped
            assert held < 64, held  # 16 connections at most, not 1,020
            assert report["attempts"] >= 1020 and report["dropped"] > 0, report
            assert "Traceback" not in agent.output()
    finally:
        web.stop()


def test_a_task_limit_fails_the_runs_that_cannot_start_and_never_the_agent(agent_factory):
    """Under a pids cgroup (systemd's TasksMax) hung LDAP peers hold every thread there is
    (ldap3 blocks: each LDAP run has a thread): the LDAP run that cannot get one fails,
    the HTTP check (steps on the agent's loop: no thread) stays up all along, the agent
    goes on, and the LDAP run runs again when it can."""
    root, how = TaskLimit.hierarchy()
    if root is None:
        pytest.skip(how)
    with Mute() as mute, RawHTTPServer(http_response(SERVER1)) as web, TaskLimit(3) as limit:
        ldap = [{"name": f"ldap{i}", "command": f"kachecks-ldap --uri ldap://127.0.0.1:{mute.port}"}
                for i in range(3)]
        agent = agent_factory([*ldap, http_check("web1", web)], interval=2, timeout=1.9)
        agent.start()
        limit.add(agent.pid)  # main thread + 2: the first two hung runs take both
        document = agent.wait_status(
            lambda d: any("could not start" in (c["reason"] or "") for c in d["checks"]),
            timeout=15, what="a run that could not start")
        failed = [c for c in document["checks"] if "could not start" in (c["reason"] or "")]
        assert failed[0]["reason"].startswith("the run could not start: ")
        assert (failed[0]["value"], failed[0]["up"]) == (0, False)
        runs = document["checks"][-1]["runs"]
        later = agent.wait_status(lambda d: d["checks"][-1]["runs"] >= runs + 2, timeout=15,
                                  what="two more runs of web1 under the limit")  # loop goes on
        web1 = later["checks"][-1]
        assert (web1["value"], web1["up"], web1["failed_runs"]) == (1, True, 0)
        agent.assert_running()
        limit.set(None)
        name = failed[0]["name"]
        agent.wait_status(lambda d: "no LDAP answer" in ({c["name"]: c for c in d["checks"]}
                                                         [name]["reason"] or ""),
                          timeout=15, what=f"{name} run again, in a thread")
        assert threads(agent.pid) <= 1 + 3 + 4  # main, three hung; idle ones retire
        assert agent.stop() == 0
    assert "Traceback" not in agent.output()


def test_a_process_named_kachecks_agent_neither_stops_zero_nor_a_new_agent(agent_factory):
    """The last agent was killed (its document says running, pid P) and P now belongs to
    a user's process named kachecks-agent: zero, a new agent and status are not fooled."""
    with RawHTTPServer(http_response(SERVER1)) as web:
        agent = agent_factory([http_check("web1", web)], interval=0.5, timeout=0.3)
        with agent:
            agent.wait_value("web1", "1\n")
            agent.send(signal.SIGKILL)
            agent.proc.wait(5)
        with SpoofedName("kachecks-agent") as spoof:
            document = agent.status()
            assert document["state"] == "running"
            document["pid"] = spoof.pid  # the killed agent's pid, reused by the user
            (agent.track / ".kachecks-agent.json").write_text(json.dumps(document))
            status = run_agent_cli("status", "--config", agent.config)
            assert status.returncode == 3, status.stdout + status.stderr
            zero = run_agent_cli("zero", "--config", agent.config)
            assert zero.returncode == 0, zero.stderr
            assert agent.value("web1") == "0\n"
            agent.start()
            agent.wait_value("web1", "1\n")
            assert agent.stop() == 0


def test_zero_and_a_second_agent_refuse_while_the_agent_runs(agent_factory):
    with RawHTTPServer(http_response(SERVER1)) as web:
        agent = agent_factory([http_check("web1", web)], interval=0.5, timeout=0.3)
        with agent:
            agent.wait_value("web1", "1\n")
            zero = run_agent_cli("zero", "--config", agent.config)
            assert zero.returncode == 1 and "is running" in zero.stderr
            assert agent.value("web1") == "1\n"
            second = run_agent_cli("--config", agent.config)
            assert second.returncode == 1 and "another kachecks agent" in second.stderr
            status = run_agent_cli("status", "--config", agent.config)
            assert status.returncode == 0 and f"(pid {agent.pid})" in status.stdout
            agent.assert_running()


def test_the_agent_stops_when_it_cannot_publish_any_result(agent_factory, syslog_socket):
    """Every write fails (here: the track files made directories, so renames fail with
    EISDIR, as ENOSPC or EROFS would): after a few seconds the agent says why and exits 1
    rather than run blind; one broken file alone is that check's problem."""
    with RawHTTPServer(http_response(SERVER1)) as web:
        agent = agent_factory([http_check("web1", web), http_check("web2", web)],
                              interval=0.3, timeout=0.2)
        with agent:
            agent.wait_value("web1", "1\n")
            agent.wait_value("web2", "1\n")
            (agent.track / "web1").unlink()
            (agent.track / "web1").mkdir()  # one file broken: the agent goes on
            runs = agent.wait_status(lambda d: d["checks"][0]["error"])["checks"][1]["runs"]
            agent.wait_status(lambda d: d["checks"][1]["runs"] >= runs + 10, timeout=20,
                              what="web2's runs over 3 s and more")  # GIVE_UP_AFTER is 2 s
            agent.assert_running()
            (agent.track / "web2").unlink()
            (agent.track / "web2").mkdir()  # both: it cannot publish anything
            assert agent.proc.wait(10) == 1
    lines = [m for m in syslog_socket() if "cannot publish results" in m]
    assert len(lines) == 1 and "stopping rather than run blind" in lines[0], lines
    assert "Traceback" not in agent.output()


def test_the_descriptor_reserve_lets_a_write_through_when_none_is_free(tmp_path):
    """In-process: with every descriptor taken, the publisher still writes (its reserve)."""
    import resource

    from kachecks.agent.daemon import TrackFiles

    tracks = TrackFiles()
    tracks.directories.open(str(tmp_path), [str(tmp_path / "web1")])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    taken = []
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        while True:
            try:
                taken.append(os.open("/dev/null", os.O_RDONLY))
            except OSError as exc:
                assert exc.errno == errno.EMFILE
                break
        written = tracks(str(tmp_path / "web1"), 1)
    finally:
        for fd in taken:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert written is None
    assert (tmp_path / "web1").read_text() == "1\n"


def test_one_files_trouble_never_stops_the_agent_but_every_file_failing_does(tmp_path):
    """TrackFiles.blind: failures in a row, of two files or more (or the only one), for
    GIVE_UP_AFTER seconds; a success anywhere starts the count again."""
    from kachecks.agent.daemon import GIVE_UP, GIVE_UP_AFTER, TrackFiles

    now = [0.0]
    tracks = TrackFiles(clock=lambda: now[0])
    good, bad, worse = (str(tmp_path / name) for name in ("web1", "web2", "web3"))
    tracks.directories.open(str(tmp_path), [good, bad, worse])
    os.mkdir(bad)  # a directory where the file should be: every write to it fails
    for _ in range(10):  # web2 broken, web1 fine, interleaved: that check's problem
        now[0] += 1
        assert tracks(bad, 1) is not None and tracks(good, 1) is None
        assert tracks.blind() is None
    os.mkdir(worse + ".x")
    os.rename(worse + ".x", worse)  # web3 broken too: nothing can be published
    failures = 0
    while tracks.blind() is None:
        now[0] += 0.5
        failures += (tracks(bad, 1) is not None) + (tracks(worse, 1) is not None)
        assert failures < 20
    assert failures >= GIVE_UP and now[0] - 10 >= GIVE_UP_AFTER
    assert tracks.blind().startswith(f"{tracks.streak} track-file writes in a row failed")
    os.rmdir(worse)
    assert tracks(worse, 1) is None and tracks.blind() is None  # one success: count again


def test_the_agent_raises_its_descriptor_limit_to_what_its_checks_need():
    """In a child (a hard limit lowered cannot be raised again): soft 256, hard 8192."""
    import subprocess
    import sys

    from kachecks.agent.daemon import DESCRIPTORS_OWN, DESCRIPTORS_PER_CHECK

    code = (
        "import resource, sys\n"
        "from kachecks.agent.daemon import fit_descriptors\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 8192))\n"
        "for checks in (1000, 10000):\n"
        "    fit_descriptors(checks, lambda message, priority: print(message))\n"
        "    print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.splitlines()
    need = 10_000 * DESCRIPTORS_PER_CHECK + DESCRIPTORS_OWN
    assert out == [str(1000 * DESCRIPTORS_PER_CHECK + DESCRIPTORS_OWN),  # raised, silently
                   f"10000 checks may need {need} descriptors, the limit is 8192: runs may"
                   " fail with 'Too many open files' (raise LimitNOFILE)", "8192"]
