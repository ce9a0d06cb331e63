"""Fixtures and peers for the worker tests: a real `kachecks worker`, and fake ones.

A fake worker is what an attacker (or a broken build) could put behind
``KACHECKS_WORKER_SOCKET``: it records every byte and file descriptor it is
sent and answers with scripted replies, so a test can prove that nothing
reached it, or that the client survives what it said.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness.peers import certs, cli
from harness.peers.rawhttp import RawHTTPServer, http_response

BODY = b"hello from Server 1\n"
MD5 = "5f2b4547f41470dc3e293e7267461575"


@pytest.fixture
def open_dir():
    """A directory other users can traverse (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="kachecks-worker-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory):
    return certs.self_signed(tmp_path_factory.mktemp("tls"), "www.mysite.mydmn.org",
                             alt_names=("127.0.0.1",))


def https_server(tls_pair, body=BODY, **kw):
    """A TLS server on loopback (``.url`` its page); TLS makes kachecks-http delegate."""
    server = RawHTTPServer(http_response(body), tls=tls_pair, **kw)
    server.url = f"https://127.0.0.1:{server.port}/service.txt"
    return server


@pytest.fixture
def https(tls_pair):
    with https_server(tls_pair) as server:
        yield server


@pytest.fixture
def hanging_https(tls_pair):
    with https_server(tls_pair, hang=True) as server:
        yield server


def start_worker(path, *args, env=None):
    """`kachecks worker --socket PATH ARGS…`, returned once it listens."""
    proc = subprocess.Popen(cli.command("kachecks") + ["worker", "--socket", str(path), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(env or {})))
    wait_until_listening(proc, path)
    return proc


def wait_until_listening(proc, path):
    deadline = time.monotonic() + 15
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"worker exited {proc.returncode}: {out}{err}")
        assert time.monotonic() < deadline, "worker did not listen within 15 s"
        time.sleep(0.05)


def stop_worker(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)


@pytest.fixture
def worker(open_dir, monkeypatch):
    path = open_dir / "worker.sock"
    proc = start_worker(path)
    monkeypatch.setenv("KACHECKS_WORKER_SOCKET", str(path))
    yield proc
    stop_worker(proc)


FAKE = r"""
import json, os, signal, socket, sys, time
path, log, listen_uid, replies = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a client that kills by pid must not end us
signal.signal(signal.SIGINT, signal.SIG_IGN)
out = open(log, "a")  # opened before the uid changes
sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
sock.bind(path)
os.chmod(path, 0o666)
if listen_uid >= 0:  # the socket file stays root's: only the listening process is another user
    os.setgroups([])
    os.setgid(listen_uid)
    os.setuid(listen_uid)
sock.listen(16)

def note(**record):
    out.write(json.dumps(record) + "\n")
    out.flush()

note(event="listening", uid=os.geteuid())
while True:
    conn, _ = sock.accept()
    conn.settimeout(3)
    try:
        payload, ancillary, _, _ = conn.recvmsg(1 << 20, socket.CMSG_SPACE(64))
    except OSError as exc:
        note(event="request", error=str(exc), payload="", fds=0)
        continue
    fds = [int.from_bytes(data[i:i + 4], sys.byteorder) for _, _, data in ancillary
           for i in range(0, len(data), 4)]
    note(event="request", payload=payload.decode("latin-1"), fds=len(fds))
    try:
        for reply in replies:
            if reply.startswith("sleep:"):
                time.sleep(float(reply[6:]))
            else:
                conn.send(reply.replace("{pid}", str(os.getpid())).encode())
        conn.settimeout(30)
        while conn.recv(64):  # hold the connection (and stdio) until the client hangs up
            pass
    except OSError as exc:
        note(event="error", error=str(exc))
    for fd in fds:
        os.close(fd)
    conn.close()
"""


class FakeWorker:
    """A process listening on ``path`` that sends ``replies``: run as ``user`` (a pwd entry;
    default us), or bound by us and listening as ``listen_uid``.

    A reply ``sleep:S`` pauses S seconds; ``{pid}`` in a reply is the fake's own pid (it
    ignores SIGTERM and SIGINT). ``records()`` lists what it received.
    """

    def __init__(self, path, replies=(), listen_uid=-1, user=None):
        self.path = Path(path)
        self.log = self.path.with_name(self.path.name + ".log")
        as_user = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid,
                                           "extra_groups": []}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FAKE, str(self.path), str(self.log), str(listen_uid),
             *replies],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **as_user)
        deadline = time.monotonic() + 10
        while not self.records():
            assert self.proc.poll() is None, self.proc.communicate()[1]
            assert time.monotonic() < deadline, "fake worker did not listen"
            time.sleep(0.02)

    def records(self, event=None):
        try:
            lines = self.log.read_text().splitlines()
        except FileNotFoundError:
            return []
        records = [json.loads(line) for line in lines]
        return [r for r in records if event is None or r["event"] == event]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait(timeout=5)


def made_in_namespace(name, factory):
    """``factory()`` called on a thread moved into network namespace ``name``: sockets
    it creates belong to that namespace (a thread's setns ends with the thread)."""
    import ctypes
    import threading

    made = []

    def enter_and_make():
        fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns = getattr(os, "setns", None)
            if setns is not None:  # Python >= 3.12
                setns(fd, os.CLONE_NEWNET)
            elif ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            made.append(factory())
        except BaseException as exc:
            made.append(exc)
        finally:
            os.close(fd)

    thread = threading.Thread(target=enter_and_make)
    thread.start()
    thread.join()
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]
