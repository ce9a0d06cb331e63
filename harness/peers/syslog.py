"""A datagram socket standing in for /dev/log: point KACHECKS_SYSLOG_SOCKET at ``path``.

``SyslogSink`` hands out what arrived since the last call; ``SyslogLines`` keeps every
line of a long-running process (an agent), read by a thread of its own.
"""

import os
import socket
import threading
import time

from harness.peers.sockets import SocketPeer


class SyslogSink(SocketPeer):
    """Collects the lines the executables send to syslog.

    ``mode``: permissions of the socket file (0o777 lets a check run as
    another user write to it).
    """

    def __init__(self, path, mode=None):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        if mode is not None:
            os.chmod(self.path, mode)
        self.sock.setblocking(False)

    def messages(self):
        """The lines received since the last call."""
        out = []
        while True:
            try:
                out.append(self.sock.recv(65536).decode("utf-8", "replace"))
            except BlockingIOError:
                return out


class SyslogLines:
    """Every line a process sends to syslog at ``path`` (point KACHECKS_SYSLOG_SOCKET
    there), drained by a thread of its own: a Unix datagram socket queues only a few lines
    (net.unix.max_dgram_qlen, 10 in a new namespace) and a sender that finds the queue
    full drops its line."""

    def __init__(self, path):
        self.sink = SyslogSink(path)
        self.path = self.sink.path
        self.seen = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self):
        while not self.stopping.wait(0.02):
            found = self.sink.messages()
            with self.lock:
                self.seen += found

    def lines(self):
        with self.lock:
            return list(self.seen)

    def wait(self, needle, timeout):
        """The first line holding ``needle``; AssertionError with the last lines after
        ``timeout`` s."""
        end = time.monotonic() + timeout
        while True:
            for line in self.lines():
                if needle in line:
                    return line
            if time.monotonic() > end:
                raise AssertionError(f"no syslog line with {needle!r} within {timeout} s:"
                                     f" {self.lines()[-10:]}")
            time.sleep(0.05)

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        self.sink.close()
