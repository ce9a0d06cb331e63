"""Red-team attacks replayed through the installed executables, as keepalived runs them.

Every test here reproduces one attack from the red-team pass: a planted
file, a hostile peer, a signal at a bad moment, closed output. Each runs
the real console scripts (``KACHECKS_BIN_DIR`` points them at /usr/bin)
in a fresh process and asserts what keepalived would see: the exit code,
one line of text, no traceback, no hang past the deadline.
"""

import os
import socket
import subprocess
import threading
import time

import pytest

from tests.support import cli
from tests.support.rawhttp import RawHTTPServer, http_response

BODY = b"hello from Server 1\n"
TRACEBACK_MARKS = ("Traceback", "Fatal Python error", "Exception ignored")


class Finished:
    """How a spawned executable ended: code, text output, wall time."""

    def __init__(self, returncode, stdout, stderr, elapsed):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed

    @property
    def output(self):
        return self.stdout + self.stderr

    def __repr__(self):
        return (f"Finished(rc={self.returncode}, {self.elapsed:.2f} s, stdout={self.stdout!r},"
                f" stderr={self.stderr!r})")


def spawn(name, *args, env=None, stdout=subprocess.PIPE, preexec_fn=None, timeout=20):
    """Run executable ``name`` to the end (killing it after ``timeout``) and say how it ended.

    ``env`` adds to the test's environment; a value of None removes that variable.
    """
    full_env = dict(os.environ)
    for key, value in (env or {}).items():  # None: not in the environment at all
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = str(value)
    started = time.monotonic()
    proc = subprocess.Popen(cli.command(name) + [str(a) for a in args], stdin=subprocess.DEVNULL,
                            stdout=stdout, stderr=subprocess.PIPE, env=full_env,
                            preexec_fn=preexec_fn)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"{name} {' '.join(map(str, args))} still running after {timeout} s")
    return Finished(proc.returncode, (out or b"").decode("utf-8", "replace"),
                    err.decode("utf-8", "replace"), time.monotonic() - started)


def assert_clean(finished):
    """No traceback, no interpreter complaint: at most plain one-line messages."""
    for mark in TRACEBACK_MARKS:
        assert mark not in finished.output, finished


def one_line(text):
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture
def web():
    """A healthy real server: every request gets 200 and BODY."""
    with RawHTTPServer(http_response(BODY)) as srv:
        yield srv


class Mute:
    """A peer that accepts and never says a word: the probe waits until killed or timed out.

    ``connected`` is set once a client is in, so a test knows the check is mid-probe.
    """

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connected = threading.Event()
        self._held = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self._held.append(conn)
            self.connected.set()

    def close(self):
        self._stop.set()
        self._thread.join(5)
        for conn in self._held:
            conn.close()
        self.sock.close()


@pytest.fixture
def mute():
    peer = Mute()
    yield peer
    peer.close()


class Listener:
    """A listening socket nobody accepts on: a client connects, then waits forever."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def connections(self):
        """How many clients connected so far (accepts and closes them)."""
        self.sock.setblocking(False)
        count = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1


@pytest.fixture
def listener():
    listening = Listener()
    yield listening
    listening.sock.close()


@pytest.fixture
def fifo(tmp_path):
    """A named pipe nobody ever writes to: opening it for reading blocks forever."""
    path = tmp_path / "fifo"
    os.mkfifo(path, 0o600)
    return path
