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

Sockets are non-blocking and every operation is a step (kachecks.net.steps):
``connect_steps`` and the Stream's ``send``/``recv``/``recv_into`` are
generators, used with ``yield from`` by a probe's own steps, whoever drives
them (a forked run blocks in ``steps.run``; the agent's event loop runs
thousands at once). ``connect`` is the blocking form, for code that hands the
socket to a library (ldap3).

A Stream is the only place a socket call meets the deadline: no call starts
once it has ended, and a wait ends with it, so a peer that accepts and never
answers, or drips one byte a second, costs at most the deadline, on any
thread (no signals). A TLS peer that closes TCP without close_notify (a
"ragged EOF", as many servers and keepalived's own SSL_GET peers do) ends the
stream like EOF and sets ``ragged``. Python 3.11.4+ raises SSLEOFError for it,
Debian 12's 3.11.2 a plain SSLError whose reason says so: both are recognised
here, and nowhere else.
"""

import _socket
from time import monotonic as _monotonic

from kachecks.errors import DeadlineExceeded, ProbeFailure, os_error_text
from kachecks.net import steps

# Non-blocking from the start (one system call less than setting it afterwards).
_STREAM = _socket.SOCK_STREAM | getattr(_socket, "SOCK_NONBLOCK", 0)
_IN_PROGRESS = (115, 4)  # EINPROGRESS; EINTR: the connection goes on meanwhile
_TCP_INFO = 11  # Linux's TCP_INFO (the constant is missing from some builds)
_ESTABLISHED, _SYN_SENT = 1, 2  # tcpi_state: connected; under way

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
    """Addresses to try, as [(family, sockaddr)], within the deadline (blocking)."""
    return steps.run(resolve_steps(host, port, deadline, family), deadline)


def resolve_steps(host, port, deadline, family=0):
    """Steps: the addresses to try, as [(family, sockaddr)].

    Literals never touch the resolver. Names go through getaddrinfo in another
    thread (an Offload), so a dead DNS server cannot outlive the deadline.
    """
    literal = parse_literal(host)
    if literal is not None:
        fam, addr = literal
        if family and fam != family:
            raise ProbeFailure(f"{host} is not an IPv{4 if family == _socket.AF_INET else 6} address",
                          "resolve", "resolve")
        return [(fam, (addr, port) if fam == _socket.AF_INET else (addr, port, 0, 0))]
    deadline.remaining("resolve")
    try:
        result = yield steps.Offload(_socket.getaddrinfo, host, port, family, _socket.SOCK_STREAM)
    except TimeoutError:
        raise deadline.expired_in("resolve") from None
    except Exception as exc:
        detail = exc.args[1] if len(exc.args) > 1 else str(exc)
        raise ProbeFailure(f"cannot resolve {host}: {detail}", "resolve", "resolve") from None
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
    """A connected non-blocking ``_socket.socket``; tries each resolved address.

    Returns (sock, family, sockaddr) so callers know which address answered.
    """
    return steps.run(connect_steps(host, port, deadline, bind, fwmark, family), deadline)


def connect_steps(host, port, deadline, bind=None, fwmark=None, family=0):
    """Steps of ``connect``: (sock, family, sockaddr)."""
    addresses = yield from resolve_steps(host, port, deadline, family)
    last = None
    for fam, sockaddr in addresses:
        try:
            sock = yield from _connect_one(fam, sockaddr, deadline, bind, fwmark)
            return sock, fam, sockaddr
        except DeadlineExceeded:
            raise
        except ProbeFailure as exc:
            if exc.reason in ("bind", "fwmark"):
                raise
            last = exc
    raise last


def _connect_one(family, sockaddr, deadline, bind, fwmark):
    sock = _socket.socket(family, _STREAM, _socket.IPPROTO_TCP)
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
        deadline.remaining("connect")
        try:
            error = sock.connect_ex(sockaddr)
            # Often done already (a loopback or LAN peer answers within the call): then
            # there is nothing to wait for. Else wait until it is, or failed.
            if error in _IN_PROGRESS:
                state = _state(sock)
                if state == _SYN_SENT:
                    yield from steps.wait(sock, steps.WRITE, lambda: DeadlineExceeded(
                        "connect", deadline.timeout))
                error = 0 if state == _ESTABLISHED else \
                    sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
        except OSError as exc:
            error = exc.errno
            if error is None:
                raise ProbeFailure(str(exc), "connect", "error") from None
        if error:
            reason, text = _ERRNO_TEXT.get(error) or ("error", _strerror(error))
            raise ProbeFailure(text, "connect", reason)
        return sock
    except BaseException:
        sock.close()
        raise


def _state(sock):
    """The TCP state of ``sock`` (``tcpi_state``, the first byte of TCP_INFO)."""
    return sock.getsockopt(_socket.IPPROTO_TCP, _TCP_INFO, 1)[0]


def _strerror(number):
    import os  # loaded at start-up already

    return os.strerror(number)


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
    """A connected non-blocking socket (plain or TLS) and the deadline its I/O runs under.

    ``send``, ``recv`` and ``recv_into`` are steps (kachecks.net.steps): use them with
    ``yield from``. ``bounded`` is the blocking form of one call, for a library that
    reads and writes by itself (ldap3).
    """

    __slots__ = ("sock", "deadline", "over_tls", "ragged", "unpaused", "asked", "_again")

    def __init__(self, sock, deadline, over_tls=False):
        self.sock = sock
        self.deadline = deadline
        self.over_tls = over_tls
        self.ragged = False  # the TLS peer closed without close_notify
        self.unpaused = 0  # bytes received since the steps last waited or paused
        # Just sent on a plain socket: the answer cannot be there yet, so the next read
        # waits first instead of trying (and failing) once. Not over TLS, where OpenSSL
        # may hold bytes it read already that no wait would ever announce.
        self.asked = False
        self._again = _tls_again() if over_tls else (BlockingIOError,)

    def bounded(self, phase, call, *args):
        """``call(*args)`` with the socket timeout the deadline leaves (blocking); expiry
        raises DeadlineExceeded, other OSErrors pass through untouched."""
        try:
            self.sock.settimeout(self.deadline.remaining(phase))
            return call(*args)
        except (TimeoutError, DeadlineExceeded):
            raise DeadlineExceeded(phase, self.deadline.timeout, self.over_tls) from None

    def expired(self, phase):
        """The DeadlineExceeded of ``phase`` on this stream."""
        return DeadlineExceeded(phase, self.deadline.timeout, self.over_tls)

    def _ready(self, phase, events):
        """Steps: wait for ``events`` (or what TLS wants: it may read to write)."""
        if self.deadline.expires <= _monotonic():
            raise self.expired(phase)
        self.unpaused = 0
        try:
            yield (self.sock, events)
        except TimeoutError:
            raise self.expired(phase) from None

    def send(self, data, phase="send"):
        """Steps: send all of ``data``."""
        view = memoryview(data)
        while view:
            if self.deadline.expires <= _monotonic():
                raise self.expired(phase)
            try:
                sent = self.sock.send(view)
            except self._again as exc:
                yield from self._ready(phase, _events(exc, steps.WRITE))
                continue
            except OSError as exc:
                raise ProbeFailure(f"send error: {os_error_text(exc)}", phase, "error",
                                   self.over_tls) from None
            view = view[sent:]
        self.asked = not self.over_tls

    def recv_into(self, view, size, phase="read"):
        """Steps: bytes received into ``view`` (at most ``size``); 0 at EOF, clean or ragged."""
        return (yield from self._recv(phase, self.sock.recv_into, view, size)) or 0

    def recv(self, size, phase="read"):
        """Steps: up to ``size`` bytes; b"" at EOF, clean or ragged."""
        return (yield from self._recv(phase, self.sock.recv, size)) or b""

    def discard(self, view, phase="read"):
        """Steps: receive and throw away what has come: how many bytes (0 at EOF, clean or
        ragged).

        A plain socket hands the bytes to nobody: MSG_TRUNC makes the kernel drop up to
        a mebibyte from its queue without copying it out (``view`` is not used). Over TLS
        they must be decrypted to find the end: into ``view``, one record at a time.
        """
        if self.over_tls:
            return (yield from self._recv(phase, self.sock.recv_into, view, len(view))) or 0
        sink = _SINK or _sink()
        return (yield from self._recv(phase, self.sock.recv_into, sink, len(sink),
                                      _socket.MSG_TRUNC)) or 0

    def _recv(self, phase, call, *args):
        if self.unpaused >= steps.CHUNK:  # a long read without a wait: let others run
            self.unpaused = 0
            try:
                yield steps.PAUSE
            except TimeoutError:
                raise self.expired(phase) from None
        if self.asked:
            self.asked = False
            yield from self._ready(phase, steps.READ)
        while True:
            if self.deadline.expires <= _monotonic():
                raise self.expired(phase)
            try:
                got = call(*args)
            except self._again as exc:
                yield from self._ready(phase, _events(exc, steps.READ))
                continue
            except OSError as exc:
                if self.over_tls and _tls_eof(exc, self):
                    return None
                raise ProbeFailure(f"read error: {os_error_text(exc)}", phase, "error",
                                   self.over_tls) from None
            self.unpaused += got if type(got) is int else len(got)
            return got


def _events(exc, default):
    """What a would-block error waits for: TLS may need to read in order to write."""
    name = type(exc).__name__
    if name == "SSLWantReadError":
        return steps.READ
    if name == "SSLWantWriteError":
        return steps.WRITE
    return default


def _tls_again():
    import ssl  # loaded already: the stream is over TLS

    return (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


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
