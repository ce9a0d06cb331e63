"""The agent's HTTP endpoint: a few GET routes that nobody can use to exhaust the agent.

The agent runs as root and decides which real servers carry traffic; anybody
who can connect to this port must not be able to take from it what it needs to
do that (descriptors, threads, the schedule's lock, CPU). So:

- one thread and a selector, whatever the number of clients: a connection costs
  a descriptor and a few hundred bytes, never a thread;
- at most ``limit`` connections at once (16): one more is accepted and closed at
  once, so the agent's descriptors stay its own (a slow-loris holds 16, not the
  1,024 of a default RLIMIT_NOFILE);
- one total deadline per connection (5 s from accept to the last byte sent), not
  one per read: dripping a byte every few seconds buys nothing;
- a listen backlog of ``backlog`` (128): a burst of scrapers waits in the kernel;
- at most ``rate`` bytes of responses a second (8 MiB: a page of 1,000 checks is
  1.4 MB, and Prometheus takes one every 15 s): an answer beyond waits its turn
  (within its deadline), so scrapers in a loop cost the agent a bounded share of the
  machine instead of all of it;
- a route is a callable returning (content type, body), or (status, content type,
  body), from data that is already there (the agent's last snapshot): no lock,
  nothing the schedule waits for;
- errors are one log line, never a traceback; no ``Server:`` header, no version.

Connections are closed after each response (``Connection: close``): no keep-alive
to hold. Only GET and HEAD; a request head is at most 8 KiB.
"""

import collections
import errno
import selectors
import socket
import threading
import time

from kachecks.syslogger import LOG_ERR

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any

LIMIT = 16  # connections at once
DEADLINE = 5.0  # seconds from accept to the last byte sent
BACKLOG = 128
MAX_HEAD = 8192  # bytes of request line and headers
RATE = 8 << 20  # bytes of responses a second
ACCEPT_PAUSE = 0.5  # seconds without accepting after EMFILE/ENFILE/ENOBUFS/ENOMEM
_STARVED = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            503: "Service Unavailable"}


class _Connection:
    __slots__ = ("sock", "deadline", "head", "out")

    def __init__(self, sock, deadline):
        self.sock = sock
        self.deadline = deadline
        self.head = bytearray()
        self.out: Any = None  # memoryview of what is left to send, once answered


class Endpoint:
    """``http://HOST:PORT`` serving ``routes`` ({path: callable() -> (content type, bytes)})
    from one daemon thread until ``close()``. OSError if it cannot listen."""

    def __init__(self, address, routes, log, limit=LIMIT, deadline=DEADLINE, backlog=BACKLOG,
                 rate=RATE):
        host, port = address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.address = address
        self.routes = dict(routes)
        self.log = log
        self.limit = limit
        self.deadline = deadline
        self.rate = rate
        self._tokens = float(rate)  # bytes that may be sent now (a second's worth at most)
        self._refilled = time.monotonic()
        self._parked: collections.deque[_Connection] = collections.deque()  # answered, waiting for tokens
        self.open = 0  # connections held now
        self.refused = 0  # connections closed at once: the limit was reached
        self.expired = 0  # connections closed at their deadline
        self._listener = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((host, port))
            self._listener.listen(backlog)
            self._listener.setblocking(False)
            # a socket pair, not a pipe: once closed, a late close() cannot write into
            # a descriptor number reused by something else
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
        except BaseException:
            self._listener.close()
            raise
        self._closing = False
        self._said = set()  # error texts already logged: once each
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                        name="kachecks-endpoint")
        self._thread.start()

    def close(self, wait=True):
        """Stop serving; ``wait`` until the port is free (a reload moving it), not at exit."""
        self._closing = True
        try:
            self._wake_w.send(b"\0", socket.MSG_DONTWAIT)
        except OSError:
            pass  # full (a wake-up is pending) or closed (stopped)
        if wait:
            self._thread.join(5)

    # ------------------------------------------------------------------ the thread

    def _serve(self):
        selector = selectors.DefaultSelector()
        connections: dict[int, _Connection] = {}
        accepting = True
        resume = 0.0
        try:
            selector.register(self._wake_r, selectors.EVENT_READ)
            selector.register(self._listener, selectors.EVENT_READ)
            while not self._closing:
                try:
                    now = time.monotonic()
                    if not accepting and now >= resume:
                        selector.register(self._listener, selectors.EVENT_READ)
                        accepting = True
                    self._unpark(selector, connections, now)
                    wake = min((c.deadline for c in connections.values()), default=now + 60)
                    if not accepting:
                        wake = min(wake, resume)
                    if self._parked:
                        wake = min(wake, now - self._tokens / self.rate)
                    for key, events in selector.select(max(0.0, wake - now)):
                        if key.fileobj is self._listener:
                            if not self._accept(selector, connections):
                                selector.unregister(self._listener)
                                accepting, resume = False, time.monotonic() + ACCEPT_PAUSE
                        elif key.fileobj is self._wake_r:
                            _drain(self._wake_r)
                        else:
                            self._step(selector, connections, key.fileobj, events)
                    now = time.monotonic()
                    for conn in [c for c in connections.values() if c.deadline <= now]:
                        self.expired += 1
                        self._drop(selector, connections, conn)
                    self.open = len(connections)
                except Exception as exc:  # noqa: BLE001 - one line, never a traceback
                    self._say(f"metrics endpoint: {type(exc).__name__}: {exc}")
                    time.sleep(0.1)  # a bug must not spin a core
        finally:
            for conn in list(connections.values()):
                self._drop(selector, connections, conn)
            selector.close()
            self._listener.close()
            self._wake_r.close()
            self._wake_w.close()

    def _accept(self, selector, connections):
        """Accept what is waiting; False when out of descriptors or memory (pause)."""
        for _ in range(64):  # then let the others' events in
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return True
            except OSError as exc:
                if exc.errno in _STARVED:
                    self._say(f"metrics endpoint: cannot accept: {exc.strerror}")
                    return False
                continue  # the client gave up first (ECONNABORTED): next
            if len(connections) >= self.limit:
                self.refused += 1
                sock.close()
                continue
            sock.setblocking(False)
            conn = _Connection(sock, time.monotonic() + self.deadline)
            connections[sock.fileno()] = conn
            selector.register(sock, selectors.EVENT_READ)
        return True

    def _step(self, selector, connections, sock, events):
        conn = connections.get(sock.fileno())
        if conn is None:
            return
        try:
            if conn.out is None:
                data = sock.recv(4096)
                if not data:
                    self._drop(selector, connections, conn)
                    return
                conn.head += data
                if not self._answer(conn):
                    return
                if self._tokens <= 0:  # over the rate: its turn comes
                    selector.unregister(sock)
                    self._parked.append(conn)
                    return
                self._tokens -= len(conn.out)  # type: ignore[arg-type]  # _answer set it
                selector.modify(sock, selectors.EVENT_WRITE)
            conn.out = conn.out[sock.send(conn.out):]
            if not conn.out:
                sock.shutdown(socket.SHUT_WR)
                self._drop(selector, connections, conn)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # reset, broken pipe: the client's business
            self._drop(selector, connections, conn)

    def _unpark(self, selector, connections, now):
        """Refill the byte budget; send the parked answers it now covers, oldest first."""
        self._tokens = min(float(self.rate), self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        while self._parked and self._tokens > 0:
            conn = self._parked.popleft()
            if connections.get(conn.sock.fileno()) is conn:  # not dropped meanwhile
                self._tokens -= len(conn.out)
                selector.register(conn.sock, selectors.EVENT_WRITE)

    def _answer(self, conn):
        """Once the request head is in: the response in ``conn.out``; True then."""
        end = conn.head.find(b"\r\n\r\n")
        if end < 0:
            end = conn.head.find(b"\n\n")
        if end < 0:
            if len(conn.head) <= MAX_HEAD:
                return False
            conn.out = _response(431, "text/plain; charset=utf-8", b"request head too large\n")
            return True
        line = bytes(conn.head[:conn.head.find(b"\n")]).rstrip(b"\r").split(b" ")
        if len(line) != 3 or not line[2].startswith(b"HTTP/"):
            conn.out = _response(400, "text/plain; charset=utf-8", b"bad request\n")
            return True
        method, target = line[0], line[1].split(b"?", 1)[0].decode("latin-1")
        route = self.routes.get(target)
        if method not in (b"GET", b"HEAD"):
            status, kind, body = 405, "text/plain; charset=utf-8", b"GET only\n"
        elif route is None:
            paths = ", ".join(sorted(self.routes))
            status, kind, body = 404, "text/plain; charset=utf-8", f"only {paths} here\n".encode()
        else:
            try:
                answer = route()  # (content type, body), or (status, content type, body)
                status, kind, body = answer if len(answer) == 3 else (200, *answer)
            except Exception as exc:  # noqa: BLE001 - a bug in a page: 500 and one line
                self._say(f"metrics endpoint: {target}: {type(exc).__name__}: {exc}")
                status, kind, body = 500, "text/plain; charset=utf-8", b"internal error\n"
        conn.out = _response(status, kind, body, head_only=method == b"HEAD")
        return True

    def _drop(self, selector, connections, conn):
        connections.pop(conn.sock.fileno(), None)
        try:
            selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def _say(self, text):
        if text not in self._said and len(self._said) < 100:
            self._said.add(text)
            self.log(text, LOG_ERR)


def _response(status, kind, body, head_only=False):
    head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode("latin-1")
    return memoryview(head if head_only else head + body)


def _drain(sock):
    try:
        while sock.recv(256):
            pass
    except BlockingIOError:
        pass
