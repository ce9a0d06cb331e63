"""A loopback HTTP responder that is never the bottleneck: one epoll loop, one thread.

Load tests and the bench point thousands of checks at it (the bench: a thousand runs
a second): each connection gets the same bytes after the request's blank line, then a
close. No thread per connection, no parsing beyond the end of the header, no asyncio
machinery: a connection costs the server a few system calls and a few microseconds of
Python, so the numbers measured are the client's.

    with Responder(http_response(SERVER1)) as web:
        web.address      # "127.0.0.1:PORT"
        web.served       # requests answered so far
"""

import select
import socket
import threading
import time

IDLE = 10.0  # seconds a connection may take to send its request


class Responder:
    def __init__(self, response, host="127.0.0.1", backlog=4096):
        self.response = response
        self.host = host
        self.backlog = backlog
        self.port = None
        self.served = 0
        self._listener = None
        self._thread = None
        self._stop = threading.Event()

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    def start(self):
        self._listener = socket.create_server((self.host, 0), backlog=self.backlog)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._run, daemon=True, name="responder")
        self._thread.start()
        return self

    def _run(self):
        poller = select.epoll()
        listener = self._listener
        poller.register(listener, select.EPOLLIN)
        open_ = {}  # fd -> (socket, bytes so far, accepted at)
        swept = time.monotonic()
        try:
            while not self._stop.is_set():
                for fd, _events in poller.poll(0.1):
                    if fd == listener.fileno():
                        self._accept(listener, poller, open_)
                    else:
                        self._read(fd, poller, open_)
                now = time.monotonic()
                if now - swept > 1:
                    swept = now
                    for fd, (_conn, _, since) in list(open_.items()):
                        if now - since > IDLE:
                            self._close(fd, poller, open_)
        finally:
            for fd in list(open_):
                self._close(fd, poller, open_)
            poller.close()
            listener.close()

    def _accept(self, listener, poller, open_):
        while True:
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of descriptors: the client's connect times out
                return
            conn.setblocking(False)
            open_[conn.fileno()] = (conn, b"", time.monotonic())
            poller.register(conn, select.EPOLLIN)

    def _read(self, fd, poller, open_):
        conn, data, since = open_[fd]
        try:
            chunk = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close(fd, poller, open_)
            return
        data += chunk
        if b"\r\n\r\n" not in data:
            open_[fd] = (conn, data[-4096:], since)
            return
        try:
            conn.sendall(self.response)  # a few kB: the socket buffer takes it at once
            self.served += 1
        except OSError:
            pass
        self._close(fd, poller, open_)

    @staticmethod
    def _close(fd, poller, open_):
        conn = open_.pop(fd)[0]
        try:
            poller.unregister(fd)
        except OSError:
            pass
        conn.close()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
