"""One HTTP/1.x exchange the keepalived way: connect, [TLS], send, read to EOF.

Shared by ``kachecks genhash`` and the HTTP check. Everything runs within
one Deadline. keepalived never stops at Content-Length, so neither do we:
a server that keeps the connection open ends in a read timeout.

Failures are ProbeFailure/DeadlineExceeded with ``phase`` one of resolve,
connect, tls, send, wait (no response byte yet), read; ``keepalived_message``
turns one into the text keepalived's genhash prints for that stage.

``fetch_steps`` is the exchange as steps (kachecks.net.steps), for a probe's
own steps and the agent's event loop; ``fetch`` drives them in this thread.
"""

import time

import _socket

from kachecks.errors import DeadlineExceeded
from kachecks.http.request import build_request, host_header
from kachecks.http.response import HEADER_LIMIT, ResponseReader, find_header
from kachecks.net import connect as net
from kachecks.net import steps

READ_SIZE = 4095  # keepalived reads at most MAX_BUFFER_LENGTH - 1 bytes
TLS_RECORD = 16384  # the most one TLS record carries: one read each when nothing looks


class Response:
    """Immutable outcome of ``fetch``.

    ``header_complete`` False means no CRLFCRLF within 4095 bytes
    (keepalived: "no data received from remote webserver"); the digests are
    then those of no bytes, as keepalived computes them.
    ``clean_eof``: the peer closed cleanly (for TLS: sent close_notify).
    ``timings``: seconds per phase (connect includes resolve; wait is time
    to the first response byte; read the rest) and ``total``.
    """

    __slots__ = ("status", "reason", "headers", "header_complete", "raw_header",
                 "content_length", "body_length", "hashed_length", "total_bytes",
                 "digests", "raw_digests", "body_prefix", "timings", "cert_days_left",
                 "clean_eof", "address", "request")

    def __init__(self, **fields):
        for name in self.__slots__:
            object.__setattr__(self, name, fields.get(name))

    def __setattr__(self, name, value):
        raise AttributeError("Response is immutable")

    def header(self, name):
        """First value of header ``name`` (case-insensitive), or None."""
        return find_header(self.headers, name)


def fetch(host, port, path, deadline, **options):
    """Fetch ``path`` from ``host``:``port``; returns a Response (blocking: see
    ``fetch_steps`` for the options)."""
    return steps.run(fetch_steps(host, port, path, deadline, **options), deadline)


def fetch_steps(host, port, path, deadline, *, protocol="1.0", vhost=None, tls=None,
                bind=None, fwmark=None, family=0, algorithms=("md5",), fast_start=False,
                extra_headers=(), observer=None, on_body=None, body_prefix=0,
                body_read_size=READ_SIZE):
    """Steps (kachecks.net.steps) of one exchange: the Response.

    ``tls``: a kachecks.net.tls.TLSOptions to speak HTTPS (None: plain).
    ``body_read_size``: read size once the header is in; keepalived's is
    4095, which only matters for observers (genhash -v dumps per read).
    """
    timings = {}
    mark = time.monotonic()
    sock, fam, sockaddr = yield from net.connect_steps(host, port, deadline, bind=bind,
                                                       fwmark=fwmark, family=family)
    mark = _lap(timings, "connect", mark)
    cert_days = None
    try:
        if tls is not None:
            from kachecks.net import tls as tlsmod

            sock = yield from tlsmod.handshake(sock, fam, tls, deadline)
            mark = _lap(timings, "tls", mark)
            cert_days = tlsmod.peer_cert_days_left(sock)
        host_value = host_header(sockaddr[0], sockaddr[1], fam == _socket.AF_INET6, vhost)
        request = build_request(path, host_value, protocol, extra_headers)
        stream = net.Stream(sock, deadline, over_tls=tls is not None)
        yield from stream.send(request)
        mark = _lap(timings, "send", mark)
        reader = ResponseReader(algorithms, fast_start, observer, on_body, body_prefix)
        unseen = not (algorithms or observer or on_body or body_prefix)
        clean = yield from _read_to_eof(stream, reader, body_read_size, timings, mark, unseen)
    finally:
        sock.close()
    timings["total"] = sum(timings.values())
    return Response(
        status=reader.status, reason=reader.reason, headers=reader.headers,
        header_complete=reader.header_complete, raw_header=reader.raw_header,
        content_length=reader.content_length, body_length=reader.body_bytes,
        hashed_length=reader.hashed_bytes, total_bytes=reader.total_bytes,
        digests=reader.digests(), raw_digests=reader.raw_digests(),
        body_prefix=reader.body_prefix, timings=timings, cert_days_left=cert_days,
        clean_eof=clean, address=net.format_address(fam, sockaddr), request=request)


def _lap(timings, phase, mark):
    now = time.monotonic()
    timings[phase] = timings.get(phase, 0.0) + (now - mark)
    return now


def _read_to_eof(stream, reader, body_read_size, timings, mark, unseen=False):
    """Steps: read until EOF into ``reader``; True when the peer closed cleanly.

    ``unseen``: nobody looks at the body (no digest, observer, callback or prefix), so
    once the header is in, the rest is only counted (``Stream.discard``: a plain
    socket's bytes are dropped by the kernel, never copied). It is still read to EOF
    within the deadline: keepalived's HTTP_GET reads to EOF whatever it checks, and a
    peer that never closes fails it (docs/reference.md), so the verdict stays the
    same; what a body of 100 MB costs is the kernel's receive, not a copy and a
    Python call per 4 KiB.
    """
    tls_records = TLS_RECORD if unseen and stream.over_tls else 0  # decrypted, then dropped
    buf = bytearray(max(body_read_size, HEADER_LIMIT, tls_records))
    view = memoryview(buf)
    phase = "wait"
    try:
        while True:
            if unseen and reader.header_complete:
                got = yield from stream.discard(view, phase)
                if not got:
                    return not stream.ragged
                reader.skip(got)
                continue
            want = reader.room(body_read_size if reader.header_complete else READ_SIZE)
            if want <= 0:
                return True  # keepalived reads 0 bytes: taken as EOF
            got = yield from stream.recv_into(view, want, phase)
            if not got:
                return not stream.ragged
            if phase == "wait":
                mark = _lap(timings, "wait", mark)
                phase = "read"
            reader.feed(view[:got])
    finally:
        _lap(timings, phase, mark)


# keepalived's genhash wording per stage (check_http.c / check_ssl.c timeout_epilog), as
# keepalived >= 2.2.8 words it: 2.2.7 (Debian 12) said "HTTP_CHECK - network unreachable".
_KEEPALIVED_TEXT = {
    ("connect", "refused"): "Connection failed",
    ("connect", "timeout"): "Timeout connecting",
    ("connect", "unreachable"): "HTTP/SSL_CHECK - network unreachable",
    ("connect", "error"): "Error connecting",
    ("tls", "timeout"): "Timeout connecting",
    ("tls", "error"): "SSL handshake/communication error connecting to",
    ("send", "timeout"): "Timeout WEB write",
    ("send", "error"): "Cannot send get request to",
    ("wait", "timeout"): "Timeout WEB read",
    ("wait", "error"): "Read error with",
    ("read", "timeout"): "Timeout HTTP read",
    ("read", "error"): "Read error with",
}
_KEEPALIVED_TLS_READ = {
    ("read", "timeout"): "Timeout SSL read",
    ("wait", "error"): "SSL read error from",
    ("read", "error"): "SSL read error from",
}


def keepalived_message(exc):
    """keepalived genhash's line for this failure, or None (no equivalent, e.g. resolve)."""
    reason = "timeout" if isinstance(exc, DeadlineExceeded) else exc.reason or "error"
    if exc.phase == "tls" and reason != "timeout":
        reason = "error"
    if exc.phase == "connect" and reason not in ("refused", "timeout", "unreachable"):
        reason = "error"
    key = (exc.phase, reason)
    if exc.over_tls and key in _KEEPALIVED_TLS_READ:
        return _KEEPALIVED_TLS_READ[key]
    return _KEEPALIVED_TEXT.get(key)
