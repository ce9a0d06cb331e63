"""Purpose-built raw TCP/TLS servers on loopback for HTTP clients under test.

Unlike a real HTTP server they answer with exactly the bytes a test gives,
the way the test wants them delivered: in one write, in timed segments,
one byte at a time, never closing, or never answering at all. They record
each request's bytes and the TLS SNI name the client sent.

    with RawHTTPServer(b"HTTP/1.0 200 OK\\r\\n\\r\\nhello") as srv:
        run_client(srv.host, srv.port)
        assert srv.requests[0].startswith(b"GET /")

``response`` may be bytes, a list of byte segments (sent ``pause`` seconds
apart, TCP_NODELAY, so each tends to arrive as its own read), or a callable
``f(request_bytes) -> iterable of bytes`` for big or computed bodies.
"""

import socket
import struct
import threading
import time


def http_response(body=b"", status=b"200 OK", headers=None, content_length=True):
    """A simple HTTP/1.0 response: status line, headers, CRLFCRLF, body."""
    lines = [b"HTTP/1.0 " + status]
    if content_length:
        lines.append(b"Content-Length: %d" % len(body))
    for name, value in (headers or {}).items():
        lines.append(_b(name) + b": " + _b(value))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _b(text):
    return text if isinstance(text, bytes) else str(text).encode("latin-1")


STOP_GRACE = 1.0  # seconds stop() lets connections already taken finish their request


class RawHTTPServer:
    """One listening socket; every connection handled in its own thread.

    Modes: ``drip`` seconds between single bytes; ``close=False`` keeps the
    connection open after answering (until stop); ``hang=True`` accepts and
    never reads nor answers; ``read_request=False`` answers at once,
    ``read_request="once"`` after a single recv (e.g. a TLS ClientHello).
    ``tls=(certfile, keyfile)`` wraps each connection server-side;
    ``client_ca=cafile`` then demands a client certificate signed by it;
    ``close_notify=True`` ends TLS cleanly (default: a bare TCP close);
    ``reset=True`` ends the connection with a TCP RST after answering.
    ``request_end``: bytes that end a request (other protocols than HTTP).
    """

    def __init__(self, response=b"", *, host="127.0.0.1", pause=0.05, drip=None,
                 close=True, hang=False, read_request=True, tls=None, client_ca=None,
                 close_notify=False, reset=False, request_end=b"\r\n\r\n"):
        self.response = response
        self.host = host
        self.pause = pause
        self.drip = drip
        self.close = close
        self.hang = hang
        self.read_request = read_request
        self.requests = []
        self.peers = []  # client addresses, one per accepted connection
        self.sni = []  # server names seen in ClientHellos (None: no SNI)
        self.errors = []
        self.client_certs = []  # peer certificate dicts when client_ca is set
        self._tls = tls
        self._client_ca = client_ca
        self._close_notify = close_notify
        self.reset = reset
        self.request_end = request_end
        self._context = None
        self._stop = threading.Event()
        self._conns = []
        self._threads = []
        self._lock = threading.Lock()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self.port = self._listener.getsockname()[1]
        self._thread = None

    # lifecycle -----------------------------------------------------------
    def start(self):
        if self._tls:
            self._context = self._tls_context()
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop, but first serve what already reached us: a client may finish (a check that
        sends and closes) before this server's threads ran, and its request still counts."""
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        while True:
            try:
                self._listener.setblocking(False)  # (closed already: a second stop)
                self._take(*self._listener.accept())
            except OSError:  # nothing left in the backlog (or the listener is gone)
                break
        deadline = time.monotonic() + STOP_GRACE
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._listener.close()
        with self._lock:
            for conn in self._conns:
                try:
                    conn.close()
                except OSError:
                    pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def address(self):
        """``host:port`` or ``[v6]:port``, as the Host header would say."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self):
        """The reference page on this server: ``https://127.0.0.1:PORT/service.txt``."""
        return f"{'https' if self._tls else 'http'}://{self.address}/service.txt"

    # internals -----------------------------------------------------------
    def _tls_context(self):
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self._tls)
        if self._client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=str(self._client_ca))

        def remember(_sslobj, name, _ctx):
            self.sni.append(name)

        ctx.sni_callback = remember
        return ctx

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, peer = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            self._take(conn, peer)

    def _take(self, conn, peer):
        conn.setblocking(True)
        self.peers.append(peer[0])
        with self._lock:
            self._conns.append(conn)
        thread = threading.Thread(target=self._serve_guarded, args=(conn,), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _serve_guarded(self, conn):
        try:
            self._serve(conn)
        except Exception as exc:  # the client under test may hang up at any time
            self.errors.append(exc)

    def _serve(self, conn):
        conn.settimeout(10)
        if self._context is not None:
            conn = self._context.wrap_socket(conn, server_side=True)
            with self._lock:
                self._conns.append(conn)
            if self._client_ca:
                self.client_certs.append(conn.getpeercert())
        if self.hang:
            self._stop.wait(60)
            return
        if self.read_request == "once":
            request = conn.recv(65536)
        else:
            request = self._read_request(conn) if self.read_request else b""
        self.requests.append(request)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for chunk in self._chunks(request):
            if self.drip:
                for i in range(len(chunk)):
                    conn.sendall(chunk[i:i + 1])
                    if self._stop.wait(self.drip):
                        return
            else:
                conn.sendall(chunk)
        if not self.close:
            self._stop.wait(60)
        if self._close_notify:
            conn = conn.unwrap()
        if self.reset:  # SO_LINGER 0: close with a TCP RST instead of a FIN
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    def _chunks(self, request):
        response = self.response
        if callable(response):
            yield from response(request)
        elif isinstance(response, (list, tuple)):
            for i, segment in enumerate(response):
                if i:
                    time.sleep(self.pause)
                yield segment
        else:
            yield response

    def _read_request(self, conn):
        data = b""
        while self.request_end not in data:
            try:
                chunk = conn.recv(4096)
            except (TimeoutError, socket.timeout):
                break
            if not chunk:
                break
            data += chunk
        return data


def body_stream(size, chunk=1 << 20, header=None):
    """Callable for RawHTTPServer streaming ``size`` bytes of a fixed pattern.

    The body is ``size`` bytes of repeating ``0123456789abcdef``; returns
    (callable, md5 hex of the body) computed without holding the body.
    """
    import hashlib

    block = (b"0123456789abcdef" * (chunk // 16 + 1))[:chunk]
    digest = hashlib.md5()
    left = size
    while left:
        n = min(left, chunk)
        digest.update(block[:n])
        left -= n
    head = header if header is not None else http_response(b"", content_length=False)

    def stream(_request):
        yield head
        remaining = size
        while remaining:
            n = min(remaining, chunk)
            yield block[:n]
            remaining -= n

    return stream, digest.hexdigest()


class DroppingListener:
    """A loopback port whose SYNs are dropped: connects hang like a black hole.

    A listener with backlog 0 that never accepts, its accept queue filled
    by a few of our own half-open connections; Linux then drops new SYNs,
    so a client's connect() waits until its own timeout. No packet leaves
    loopback and no namespace is needed.
    """

    def __init__(self, host="127.0.0.1"):
        self.host = host
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((host, 0))
        self._listener.listen(0)
        self.port = self._listener.getsockname()[1]
        self._fillers = []

    def __enter__(self):
        for _ in range(3):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            try:
                filler.connect((self.host, self.port))
            except BlockingIOError:
                pass
            self._fillers.append(filler)
        time.sleep(0.1)  # let the handshakes fill the accept queue
        return self

    def __exit__(self, *exc):
        for sock in self._fillers + [self._listener]:
            sock.close()
