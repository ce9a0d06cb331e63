"""Peers that misbehave on purpose, for the red-team tests and trials.

``Mute`` accepts and never says a word (``connected`` tells a test the check
is mid-probe); ``Listener`` never even accepts (a check that connects is
counted, so a test can assert it was refused before any traffic);
``FakeLDAP`` answers each connection's first request with given bytes.
"""

import socket
import threading
import time

from harness.peers.sockets import SocketPeer


class Mute(SocketPeer):
    """Accepts and never answers: the probe waits until killed or timed out.

    ``hold``: seconds after which a connection is closed at last (None: never), for a
    load test whose clients gave up long before and must not pile up descriptors."""

    def __init__(self, hold=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.hold = hold
        self.accepted = 0
        self.connected = threading.Event()
        self._held = []  # (connection, accepted at)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            if self.hold is not None:
                now = time.monotonic()
                while self._held and now - self._held[0][1] > self.hold:
                    self._held.pop(0)[0].close()
            try:
                conn, _ = self.sock.accept()
            except OSError:  # the 0.1 s poll, or closed
                continue
            self._held.append((conn, time.monotonic()))
            self.accepted += 1
            self.connected.set()

    def close(self):
        self._stop.set()
        self._thread.join(5)
        for conn, _ in self._held:
            conn.close()
        self.sock.close()


class Listener(SocketPeer):
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


class FakeLDAP(SocketPeer):
    """Answers the first request on each connection with ``reply(message_id)``."""

    def __init__(self, reply):
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    request = conn.recv(65536)
                    message_id = request[4] if request[2:3] == b"\x02" else 1
                    conn.sendall(self.reply(message_id))
                    conn.recv(65536)  # the unbind, or EOF
                except OSError:
                    pass
