"""Resolve and connect within one Deadline; source address, SO_MARK, IPv6.

Built on ``_socket`` rather than ``socket``: ``import socket`` pulls enum,
selectors and friends and costs about 5 ms of CPU at start-up (45 % of a
bare interpreter), which every forked check would pay every delay_loop.

Every failure is a ProbeFailure whose ``phase`` is ``resolve`` or
``connect`` and whose ``reason`` is a stable keyword (``refused``,
``unreachable``, ``resolve``, ``bind``, ``fwmark``, ``error``; running out
of time is a DeadlineExceeded), so callers such as genhash can map it to
keepalived's own wording.
"""

import _socket

from kachecks.errors import DeadlineExceeded, ProbeFailure
from kachecks.net.stream import Stream

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
