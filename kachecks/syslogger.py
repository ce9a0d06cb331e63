"""Send one syslog line, RFC 3164 style, the way glibc's syslog() does.

keepalived throws a check's stdout away, so syslog is where an administrator
learns why a real server went down. Written over ``_socket`` (already paid
for by every check) to a datagram socket: ``$KACHECKS_SYSLOG_SOCKET`` or
``/dev/log``. A missing logger is not an error: the check's exit code is
what keepalived acts on.
"""

import os
import time

LOG_DAEMON = 3 << 3
LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO = 3, 4, 5, 6


def send(ident, message, priority=LOG_INFO, facility=LOG_DAEMON):
    """Best effort: returns True when the datagram was accepted."""
    return deliver(ident, message, priority, facility) is None


def deliver(ident, message, priority=LOG_INFO, facility=LOG_DAEMON):
    """Send the line: None when the datagram was accepted, else why not
    (``/dev/log: No such file or directory``), for a daemon that must say so."""
    import _socket

    path = os.environ.get("KACHECKS_SYSLOG_SOCKET") or "/dev/log"
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime())
    line = f"<{facility | priority}>{stamp} {ident}[{os.getpid()}]: {message}"
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    try:
        sock.settimeout(0.25)  # a syslog daemon that stopped reading must not stall us
        sock.sendto(line.encode("utf-8", "replace")[:8192], path)
        return None
    except OSError as exc:
        return f"{path}: {exc.strerror or 'timed out'}"
    finally:
        sock.close()
