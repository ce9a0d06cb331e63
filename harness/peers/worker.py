"""`kachecks worker` on a socket of its own, for tests and the bench: started, awaited, stopped;
and a fake one, standing in for whatever an attacker (or a broken build) could put behind
``KACHECKS_WORKER_SOCKET``.

    with Worker(cli.command("kachecks"), directory / "worker.sock") as worker:
        ... KACHECKS_WORKER_SOCKET=worker.socket ... worker.pid ...

``args`` are more options of ``kachecks worker`` (``--slots 4``); ``launch`` wraps the
command line (the bench moves the worker into a cgroup first; a test runs it in a mount
namespace of its own, as systemd's sandbox would).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness import signalled


class WorkerError(RuntimeError):
    """The worker exited or did not listen in time (carries its stderr)."""


class Worker:
    def __init__(self, command, socket, env=None, launch=None, start_timeout=15.0, args=()):
        self.command = list(command)  # how to run `kachecks` (its console script, or python + it)
        self.socket = Path(socket)
        self.args = [str(a) for a in args]
        self.env = env
        self.launch = launch or (lambda argv: argv)
        self.start_timeout = start_timeout
        self.log = self.socket.with_name(self.socket.name + ".log")
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        argv = self.launch([*map(str, self.command), "worker", "--socket", str(self.socket),
                            *self.args])
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + self.start_timeout
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise WorkerError(f"kachecks worker did not listen on {self.socket} within"
                                  f" {self.start_timeout:g} s: {self.stderr()[-300:]}")
            time.sleep(0.05)
        return self

    def stderr(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def first_line(self, timeout=15.0):
        """The first line the worker wrote on stderr (its start line), once written."""
        deadline = time.monotonic() + timeout
        while "\n" not in self.stderr():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise WorkerError(f"kachecks worker wrote no line within {timeout:g} s:"
                                  f" {self.stderr()[-300:]!r}")
            time.sleep(0.02)
        return self.stderr().splitlines(keepends=True)[0]

    def stop(self, timeout=10):
        """SIGTERM and wait: the exit status; signalled.Lingered (diagnosed, then SIGKILLed)
        if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        try:
            return signalled.stop(self.proc, signal.SIGTERM, timeout,
                                  what="kachecks worker").returncode
        except signalled.Lingered as exc:
            raise signalled.Lingered(f"{exc}\nits stderr: {self.stderr()[-600:]!r}") from None


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
    """A process listening on ``path`` that answers every request with ``replies``: run
    as ``user`` (a pwd entry; default us), or bound by us and listening as ``listen_uid``.

    A reply ``sleep:S`` pauses S seconds; ``{pid}`` in a reply is the fake's own pid (it
    ignores SIGTERM and SIGINT). ``records()`` lists what it received (payload, number
    of descriptors), so a test can prove that nothing reached it.
    """

    def __init__(self, path, replies=(), listen_uid=-1, user=None, start_timeout=10.0):
        self.path = Path(path)
        self.log = self.path.with_name(self.path.name + ".log")
        self.log.unlink(missing_ok=True)  # an earlier fake's: "listening" must be this one's
        as_user = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid,
                                           "extra_groups": []}
        # The fake needs only the standard library: the base interpreter, which another
        # user can run (a venv's may sit in root's 0700 home).
        python = sys.executable if user is None else os.path.join(sys.base_exec_prefix, "bin",
                                                                   "python3")
        self.proc = subprocess.Popen(
            [python, "-c", FAKE, str(self.path), str(self.log), str(listen_uid),
             *replies],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **as_user)
        deadline = time.monotonic() + start_timeout
        while not self.records():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise WorkerError(f"fake worker did not listen on {self.path}:"
                                  f" {self.proc.stderr.read()[-300:]}")
            time.sleep(0.02)

    def records(self, event=None):
        """What the fake noted, oldest first: ``{"event": "request", "payload": …,
        "fds": N}`` per request; only ``event``'s if given."""
        try:
            lines = self.log.read_text().splitlines()
        except FileNotFoundError:
            return []
        records = [json.loads(line) for line in lines]
        return [r for r in records if event is None or r["event"] == event]

    def wait_for_request(self, timeout=10.0):
        """Block until a client's request reached the fake."""
        deadline = time.monotonic() + timeout
        while not self.records("request"):
            if time.monotonic() > deadline:
                raise WorkerError(f"no request reached the fake worker within {timeout:g} s")
            time.sleep(0.01)

    def close(self):
        signalled.stop(self.proc, signal.SIGKILL, 5, what="fake worker")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
