"""The FIFO reading loop behind ``kachecks fifo`` (interfaces §5.4).

keepalived SIGTERMs the FIFO script's process group *before* writing the STOP
lines, so SIGTERM only means "keepalived is going": read on until EOF (all
writers closed), or until the FIFO stays silent for IDLE_AFTER_TERM seconds.
The global notify_fifo_script is started by both keepalived children; a flock
per FIFO makes the second reader wait and take over when the first exits.
"""

import errno
import hashlib
import os
import select
import signal
import stat

from kachecks.errors import KachecksError
from kachecks.notify import spool
from kachecks.notify.log import LOG_INFO

IDLE_AFTER_TERM = 10.0


class FifoError(KachecksError):
    """The FIFO cannot be opened: one line for people."""


def _lock_name(path):
    """One reader per FIFO: the lock is named after the FIFO's real path."""
    return f".fifo-{hashlib.sha1(os.path.realpath(path).encode()).hexdigest()[:16]}.lock"


def read(path, spool_dir, on_line, log):
    """Call ``on_line(text)`` for every line of ``path``; return at EOF."""
    terminated = []

    def on_term(signum, frame):
        if not terminated:
            log("SIGTERM: reading on until keepalived closes the FIFO", LOG_INFO)
        terminated.append(signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise FifoError(f"cannot read FIFO {path}: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise FifoError(f"cannot read FIFO {path}: it is a directory")

    spool.ensure(spool_dir)
    lock = spool.Lock(spool_dir, _lock_name(path))
    if not lock.acquire(wait=float("inf"), should_stop=lambda: bool(terminated)):
        return  # terminated while another reader had the FIFO: nothing of ours to drain
    try:
        try:
            fd = os.open(path, os.O_RDONLY)  # waits for keepalived's O_RDWR open
        except OSError as exc:
            raise FifoError(f"cannot read FIFO {path}: {exc.strerror}") from None
        try:
            _loop(fd, on_line, terminated)
        finally:
            os.close(fd)
    finally:
        lock.release()


def _loop(fd, on_line, terminated):
    pending = b""
    idle = 0.0
    while True:
        try:
            ready, _, _ = select.select([fd], [], [], 1.0)
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            raise
        if not ready:
            idle = idle + 1.0 if terminated else 0.0
            if idle >= IDLE_AFTER_TERM:
                break
            continue
        idle = 0.0
        data = os.read(fd, 65536)
        if not data:
            break
        pending += data
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            _one(raw, on_line)
    _one(pending, on_line)


def _one(raw, on_line):
    text = raw.decode("utf-8", "replace").strip("\0\r ")
    if text:
        on_line(text)
