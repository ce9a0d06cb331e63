"""Socket calls under one Deadline: connect, handshake, send, receive.

The only place a check's socket calls meet the deadline: each sets the
socket timeout to what the deadline leaves, so a peer
that accepts and never answers, or drips one byte a second, costs at most
the deadline, on any thread (no signals). Failures become ProbeFailure /
DeadlineExceeded carrying ``phase`` and ``over_tls``.

A TLS peer that closes TCP without close_notify (a "ragged EOF", as many
servers and keepalived's own SSL_GET peers do) ends the stream like EOF;
``ragged`` records that it happened. Python 3.11.4+ raises SSLEOFError for
it, Debian 12's 3.11.2 a plain SSLError whose reason says so: both are
recognised here, and nowhere else.
"""

from kachecks.errors import DeadlineExceeded, ProbeFailure, os_error_text


class Stream:
    """A connected socket (plain or TLS) and the deadline its I/O runs under."""

    __slots__ = ("sock", "deadline", "over_tls", "ragged")

    def __init__(self, sock, deadline, over_tls=False):
        self.sock = sock
        self.deadline = deadline
        self.over_tls = over_tls
        self.ragged = False  # the TLS peer closed without close_notify

    def bounded(self, phase, call, *args):
        """``call(*args)`` with the socket timeout the deadline leaves; expiry raises
        DeadlineExceeded, other OSErrors pass through untouched."""
        try:
            self.sock.settimeout(self.deadline.remaining(phase))
            return call(*args)
        except (TimeoutError, DeadlineExceeded):
            raise DeadlineExceeded(phase, self.deadline.timeout, self.over_tls) from None

    def send(self, data, phase="send"):
        """Send all of ``data``."""
        try:
            self.bounded(phase, self.sock.sendall, data)
        except OSError as exc:
            raise ProbeFailure(f"send error: {os_error_text(exc)}", phase, "error",
                               self.over_tls) from None

    def recv_into(self, view, size, phase="read"):
        """Bytes received into ``view`` (at most ``size``); 0 at EOF, clean or ragged."""
        return self._recv(phase, self.sock.recv_into, view, size) or 0

    def recv(self, size, phase="read"):
        """Up to ``size`` bytes; b"" at EOF, clean or ragged."""
        return self._recv(phase, self.sock.recv, size) or b""

    def _recv(self, phase, call, *args):
        try:
            return self.bounded(phase, call, *args)
        except OSError as exc:
            if self.over_tls and _tls_eof(exc, self):
                return None
            raise ProbeFailure(f"read error: {os_error_text(exc)}", phase, "error",
                               self.over_tls) from None


def _tls_eof(exc, stream):
    """True when ``exc`` is the TLS peer closing (noting a ragged close on ``stream``)."""
    import ssl  # loaded already: the stream is over TLS

    if isinstance(exc, ssl.SSLZeroReturnError):  # close_notify: a clean end
        return True
    if (isinstance(exc, ssl.SSLEOFError)
            or getattr(exc, "reason", None) == "UNEXPECTED_EOF_WHILE_READING"):
        stream.ragged = True
        return True
    return False
