"""No client can hold up the worker, and no worker can hold up a check.

A connection that sends nothing is dropped after a short read timeout and
never delays anyone else; a check waiting on a worker keeps the contract
of a check run in-process: bounded by its --timeout, and SIGTERM or SIGINT
end it with exit 1 and one line, never by a signal or with a traceback.
"""

import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import signalled
from harness.checks import MD5_SERVER1 as MD5
from harness.peers import cli
from harness.peers.worker import FakeWorker

CONCURRENT = 20


def idle_connection(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.connect(str(path))
    return sock


@pytest.mark.slow
def test_a_client_that_sends_nothing_is_dropped(worker, open_dir):
    with idle_connection(open_dir / "worker.sock") as idle:
        idle.settimeout(10)
        started = time.monotonic()
        assert idle.recv(64) == b""  # the worker hung up on it
        assert time.monotonic() - started < 5


@pytest.mark.slow
def test_an_idle_connection_holds_up_no_delegated_check(worker, open_dir, https):
    with idle_connection(open_dir / "worker.sock"):
        with ThreadPoolExecutor(CONCURRENT) as pool:
            runs = list(pool.map(lambda _: cli.run("kachecks-http", "--url", https.url,
                                                   "--digest", MD5, "--verbose"),
                                 range(CONCURRENT)))
    for proc in runs:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"(run by kachecks worker {worker.pid})" in proc.stdout
    assert len(https.requests) == CONCURRENT


def start_check(url, path, *args):
    return subprocess.Popen(cli.command("kachecks-http") + ["--url", url, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, KACHECKS_WORKER_SOCKET=str(path)))


def finish(proc, timeout=10):
    """(seconds until the check exited, stdout, stderr); its stdio may outlive it."""
    started = time.monotonic()
    signalled.finish(proc, timeout, read=False)
    elapsed = time.monotonic() - started
    out, err = proc.communicate(timeout=30)
    return elapsed, out, err


@pytest.mark.parametrize("replies", [[], ["P{pid}"]], ids=["before-start", "running"])
@pytest.mark.parametrize("signum,name", [(signal.SIGTERM, "SIGTERM"),
                                         (signal.SIGINT, "SIGINT"),
                                         (signal.SIGHUP, "SIGHUP")])
def test_a_signal_while_waiting_on_the_worker_ends_the_check_by_the_contract(
        open_dir, hanging_https, replies, signum, name):
    path = open_dir / "worker.sock"
    with FakeWorker(path, replies) as fake:  # never reports an exit code
        proc = start_check(hanging_https.url, path, "--timeout", "20")
        fake.wait_for_request()
        proc.send_signal(signum)
        elapsed, out, err = finish(proc)
    assert proc.returncode == 1, (proc.returncode, out, err)
    assert out == f"HTTP FAIL - terminated by {name}\n", out + err
    assert "Traceback" not in err
    assert elapsed < 1.5


@pytest.mark.slow
def test_a_worker_that_never_reports_cannot_outlast_the_timeout(open_dir, https):
    path = open_dir / "worker.sock"
    with FakeWorker(path, ["P{pid}"]):
        proc = start_check(https.url, path, "--timeout", "1")
        elapsed, out, err = finish(proc)
    assert proc.returncode == 1, out + err
    said = (out + err).strip().splitlines()
    assert len(said) == 1 and "kachecks worker" in said[0], said
    assert elapsed < 4


@pytest.mark.slow
def test_a_worker_slow_to_start_the_check_is_not_waited_for(open_dir, https):
    path = open_dir / "worker.sock"
    with FakeWorker(path, ["sleep:3", "P{pid}", "C0"]):
        proc = start_check(https.url, path, "--digest", MD5)
        elapsed, out, err = finish(proc)
    assert proc.returncode == 0, out + err
    assert out.startswith("HTTP OK - 200 OK")
    assert len(https.requests) == 1  # run in-process, once
    assert elapsed < 2.5


@pytest.mark.slow
def test_a_worker_slow_to_start_the_check_cannot_stretch_its_timeout(open_dir, https):
    path = open_dir / "worker.sock"
    with FakeWorker(path, ["sleep:5", "P{pid}", "C0"]):
        proc = start_check(https.url, path, "--timeout", "1")
        elapsed, out, err = finish(proc)
    # the second the worker kept the run was the check's whole --timeout: nothing is left
    assert proc.returncode == 1, out + err
    assert out == "HTTP FAIL - timeout after 1 s during connect\n", out + err
    assert not https.requests
    assert elapsed < 2.5
