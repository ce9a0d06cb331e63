"""RFC 3164 datagrams to the local syslog, without importing ``logging`` or ``socket``.

Forked executables log a line per state change; the ``logging`` module and a
``SysLogHandler`` would cost more than the check itself. A missing syslog
socket (containers, tests) is silently ignored, and so is a full one (after SEND_TIMEOUT): logging must
never fail or stall a run.
"""

import os
import time

import _socket

LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO = 3, 4, 5, 6
LOG_DAEMON = 3
# A syslog daemon that stopped reading must not stall a check or a delivery.
SEND_TIMEOUT = 0.25


def socket_path():
    return os.environ.get("KACHECKS_SYSLOG_SOCKET") or "/dev/log"


def format_message(message, priority=LOG_INFO, ident="kachecks", facility=LOG_DAEMON):
    """``<PRI>Mmm dd hh:mm:ss ident[pid]: message`` as bytes (RFC 3164)."""
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime())
    if stamp[4] == "0":  # RFC 3164 pads the day with a space, not a zero
        stamp = stamp[:4] + " " + stamp[5:]
    line = f"<{facility * 8 + priority}>{stamp} {ident}[{os.getpid()}]: {message}"
    return line.encode("utf-8", "replace")


def send(message, priority=LOG_INFO, ident="kachecks", facility=LOG_DAEMON):
    """Send one message; return True if a syslog socket took it."""
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    except OSError:
        return False
    try:
        sock.settimeout(SEND_TIMEOUT)
        sock.connect(socket_path())
        sock.send(format_message(message, priority, ident, facility))
        return True
    except OSError:
        return False
    finally:
        sock.close()
