"""Sockets within one Deadline: resolve, connect (source address, SO_MARK,
IPv6), then every later call through a Stream (handshake, send, receive).

Built on ``_socket`` rather than ``socket``: ``import socket`` pulls enum,
selectors and friends and costs about 5 ms of CPU at start-up (45 % of a
bare interpreter), which every forked check would pay every delay_loop.

Every connect failure is a ProbeFailure whose ``phase`` is ``resolve`` or
``connect`` and whose ``reason`` is a stable keyword (``refused``,
``unreachable``, ``resolve``, ``bind``, ``fwmark``, ``error``; running out
of time is a DeadlineExceeded), so callers such as genhash can map it to
keepalived's own wording.

A Stream is the only place a socket call meets the deadline: each call
gets the socket timeout the deadline leaves, so a peer that accepts and
never answers, or drips one byte a second, costs at most the deadline, on
any thread (no signals). A TLS peer that closes TCP without close_notify
(a "ragged EOF", as many servers and keepalived's own SSL_GET peers do)
ends the stream like EOF and sets ``ragged``. Python 3.11.4+ raises
SSLEOFError for it, Debian 12's 3.11.2 a plain SSLError whose reason says
so: both are recognised here, and nowhere else.
"""

import _socket

from kachecks.errors import DeadlineExceeded, ProbeFailure, os_error_text

_ERRNO_TEXT = {
    111: ("refused", "connection refused"),  # ECONNREFUSED
    101: ("unreachable", "network unreachable"),  # ENETUNREACH
    113: ("unreachable", "host unreachable"),  # EHOSTUNREACH
    99: ("error", "cannot assign requested address"),  # EADDRNOTAVAIL
    104: ("error", "connection reset"),  # ECONNRESET
}


def parse_literal(host):
    """(family, address) when ``host`` is an IP literal (``[v6]`` too), else None."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    for family in (_socket.AF_INET, _socket.AF_INET6):
        try:
            _socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return family, host
    return None


def split_hostport(text, default_port=None):
    """``host``, ``host:port``, ``[v6]:port`` or a bare v6 literal -> (host, port)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
        return host, int(port) if port else default_port
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, default_port


def resolve(host, port, deadline, family=0):
    """Addresses to try, as [(family, sockaddr)], within the deadline.

    Literals never touch the resolver. Names go through getaddrinfo in a
    helper thread so a dead DNS server cannot outlive the deadline.
    """
    literal = parse_literal(host)
    if literal is not None:
        fam, addr = literal
        if family and fam != family:
            raise ProbeFailure(f"{host} is not an IPv{4 if family == _socket.AF_INET else 6} address",
                          "resolve", "resolve")
        return [(fam, (addr, port) if fam == _socket.AF_INET else (addr, port, 0, 0))]
    return _resolve_name(host, port, deadline, family)


def _resolve_name(host, port, deadline, family):
    import _thread

    box = []
    done = _thread.allocate_lock()
    done.acquire()

    def lookup():
        try:
            box.append(_socket.getaddrinfo(host, port, family, _socket.SOCK_STREAM))
        except Exception as exc:  # handed to the caller below
            box.append(exc)
        finally:
            done.release()

    _thread.start_new_thread(lookup, ())
    if not done.acquire(timeout=deadline.remaining("resolve")):
        raise deadline.expired_in("resolve")
    result = box[0]
    if isinstance(result, Exception):
        detail = result.args[1] if len(result.args) > 1 else str(result)
        raise ProbeFailure(f"cannot resolve {host}: {detail}", "resolve", "resolve")
    seen = []
    for fam, _type, _proto, _name, sockaddr in result:
        if (fam, sockaddr) not in seen:
            seen.append((fam, sockaddr))
    if not seen:
        raise ProbeFailure(f"cannot resolve {host}: no address", "resolve", "resolve")
    return seen


def format_address(family, sockaddr):
    """``ip:port`` or ``[v6]:port``: keepalived's Host header and our messages."""
    if family == _socket.AF_INET6:
        return f"[{sockaddr[0]}]:{sockaddr[1]}"
    return f"{sockaddr[0]}:{sockaddr[1]}"


def connect(host, port, deadline, bind=None, fwmark=None, family=0):
    """A connected blocking ``_socket.socket``; tries each resolved address.

    Returns (sock, family, sockaddr) so callers know which address answered.
    """
    addresses = resolve(host, port, deadline, family)
    last = None
    for fam, sockaddr in addresses:
        try:
            return _connect_one(fam, sockaddr, deadline, bind, fwmark), fam, sockaddr
        except DeadlineExceeded:
            raise
        except ProbeFailure as exc:
            if exc.reason in ("bind", "fwmark"):
                raise
            last = exc
    raise last


def _connect_one(family, sockaddr, deadline, bind, fwmark):
    sock = _socket.socket(family, _socket.SOCK_STREAM, _socket.IPPROTO_TCP)
    try:
        # A check writes small messages back to back (TLS Finished then a request, an
        # LDAP bind then a search): without this, Nagle holds the second one until the
        # server's delayed ACK, ~40 ms of wall time per run.
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        if fwmark is not None:
            try:
                sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_MARK, int(fwmark))
            except OSError as exc:
                raise ProbeFailure(f"cannot set fwmark {fwmark}: {exc.strerror}", "connect", "fwmark") from None
        if bind:
            _bind(sock, family, bind)
        try:
            Stream(sock, deadline).bounded("connect", sock.connect, sockaddr)
        except OSError as exc:
            reason, text = _ERRNO_TEXT.get(exc.errno, ("error", exc.strerror or str(exc)))
            raise ProbeFailure(text, "connect", reason) from None
        return sock
    except BaseException:
        sock.close()
        raise


def _bind(sock, family, bind):
    literal = parse_literal(bind)
    if literal is None or literal[0] != family:
        version = 4 if family == _socket.AF_INET else 6
        raise ProbeFailure(f"bind address {bind} is not an IPv{version} literal", "connect", "bind")
    address = (literal[1], 0) if family == _socket.AF_INET else (literal[1], 0, 0, 0)
    try:
        sock.bind(address)
    except OSError as exc:
        raise ProbeFailure(f"cannot bind to {bind}: {exc.strerror}", "connect", "bind") from None


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

    def discard(self, view, phase="read"):
        """Receive and throw away what has come: how many bytes (0 at EOF, clean or ragged).

        A plain socket hands the bytes to nobody: MSG_TRUNC makes the kernel drop up to
        a mebibyte from its queue without copying it out (``view`` is not used). Over TLS
        they must be decrypted to find the end: into ``view``, one record at a time.
        """
        if self.over_tls:
            return self._recv(phase, self.sock.recv_into, view, len(view)) or 0
        sink = _SINK or _sink()
        return self._recv(phase, self.sock.recv_into, sink, len(sink), _socket.MSG_TRUNC) or 0

    def _recv(self, phase, call, *args):
        try:
            return self.bounded(phase, call, *args)
        except OSError as exc:
            if self.over_tls and _tls_eof(exc, self):
                return None
            raise ProbeFailure(f"read error: {os_error_text(exc)}", phase, "error",
                               self.over_tls) from None


_SINK = None  # MSG_TRUNC's buffer: passed to recv_into, never written to, shared


def _sink():
    global _SINK
    _SINK = bytearray(1 << 20)
    return _SINK


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
