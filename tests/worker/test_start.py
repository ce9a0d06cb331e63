"""`kachecks worker` at start: what it preloads, where it says it listens, where it refuses."""

import os
import signal
import socket
import subprocess
import sys

import pytest

from harness import signalled
from harness.peers import cli
from harness.peers.worker import Worker
from kachecks.checks import registry

CHECKS = tuple(registry.executable(name) for name in registry.CHECKS)


def test_the_worker_says_where_it_listens_and_which_checks_it_preloaded(open_dir,
                                                                       syslog_socket):
    path = open_dir / "worker.sock"
    with Worker(cli.command("kachecks"), path) as worker:
        line = worker.first_line()
        assert worker.stop() == 0, worker.stderr()
    assert line.startswith(f"kachecks worker: listening on {path} for ")
    assert all(name in line for name in CHECKS), line
    assert line.rstrip().endswith(", 64 slots, 32 per caller uid)"), line
    logged = syslog_socket()
    assert len(logged) == 1, logged
    assert logged[0].startswith("<30>")  # facility daemon, priority info
    assert f" kachecks-worker[{worker.pid}]: listening on {path} for " in logged[0]
    assert all(name in logged[0] for name in CHECKS), logged


def test_under_systemd_the_worker_logs_once_and_reports_ready(open_dir, syslog_socket,
                                                             tmp_path):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(15)
    read_end, write_end = os.pipe()  # stands in for the journal's stderr stream
    info = os.fstat(write_end)
    path = open_dir / "worker.sock"
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify"),
               JOURNAL_STREAM=f"{info.st_dev}:{info.st_ino}")
    proc = subprocess.Popen(cli.command("kachecks") + ["worker", "--socket", str(path)],
                            stdout=subprocess.DEVNULL, stderr=write_end, env=env)
    os.close(write_end)
    try:
        ready = notify.recv(4096)
        assert path.exists()  # ready means listening
    finally:
        signalled.stop(proc, signal.SIGTERM, 10, what="kachecks worker")
        notify.close()
    with os.fdopen(read_end) as journal:
        assert journal.read() == ""  # the syslog line reaches the journal: no second copy
    assert ready == b"READY=1"
    assert [f"listening on {path}" in line for line in syslog_socket()] == [True]


@pytest.mark.parametrize("mode", [0o777, 0o770])
def test_the_worker_refuses_a_socket_directory_others_can_write(open_dir, mode):
    shared = open_dir / "shared"
    shared.mkdir()
    shared.chmod(mode)
    done = cli.run("kachecks", "worker", "--socket", shared / "worker.sock", timeout=30)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(shared) in lines[0] and "writable" in lines[0], lines
    assert not (shared / "worker.sock").exists()


def test_a_share_per_uid_above_the_slots_is_refused_before_listening(open_dir):
    done = cli.run("kachecks", "worker", "--socket", open_dir / "worker.sock", "--slots", "4",
                   "--slots-per-uid", "5", timeout=30)
    assert done.returncode != 0, done.stdout + done.stderr
    assert "--slots-per-uid: 5 is more than --slots 4" in done.stderr
    assert not (open_dir / "worker.sock").exists()


# Run the preload as the other interpreter series would: Python >= 3.12 has only _sha2,
# earlier ones only _sha256. Whichever this one has is hidden and the other provided.
OTHER_INTERPRETER = r"""
import importlib, sys
for have, other in (("_sha2", "_sha256"), ("_sha256", "_sha2")):
    try:
        module = importlib.import_module(have)
    except ImportError:
        continue
    sys.modules[other] = module
    sys.modules[have] = None  # import of it now fails, as on the other series
    break
from kachecks.worker import server
server.preload()
print("preloaded")
"""


def test_the_preload_follows_the_interpreters_module_names():
    done = subprocess.run([sys.executable, "-c", OTHER_INTERPRETER], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "preloaded\n"
