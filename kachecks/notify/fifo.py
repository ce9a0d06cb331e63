"""The FIFO reading loop behind ``kachecks fifo`` (docs/reference.md, "FIFO lines").

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
from kachecks.notify.log import LOG_INFO, LOG_WARNING

IDLE_AFTER_TERM = 10.0
MAX_LINE = 65536  # keepalived's lines are a few hundred bytes; a longer one is skipped


class FifoError(KachecksError):
    """The FIFO cannot be opened: one line for people."""


def lock_name(path):
    """One reader per FIFO: the lock is named after the FIFO's real path."""
    return f".fifo-{hashlib.sha1(os.path.realpath(path).encode()).hexdigest()[:16]}.lock"


def read(path, spool_dir, on_line, log):
    """Call ``on_line(text)`` for every line of ``path``; return at EOF."""
    terminated: list[int] = []

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

    with spool.Spool(spool_dir) as opened:
        lock = opened.lock(lock_name(path))
        if not lock.acquire(wait=float("inf"), should_stop=lambda: bool(terminated)):
            return  # terminated while another reader had the FIFO: nothing of ours to drain
        try:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # waits for keepalived's O_RDWR open
            except OSError as exc:
                raise FifoError(f"cannot read FIFO {path}: {exc.strerror}") from None
            try:
                _loop(fd, Lines(on_line, lambda: log(f"{path}: skipped a line longer than {MAX_LINE} "
                                                     "bytes", LOG_WARNING)), terminated)
            finally:
                os.close(fd)
        finally:
            lock.release()


class Lines:
    """Bytes in, ``on_line(text)`` out: linear in the input, at most MAX_LINE bytes held."""

    def __init__(self, on_line, on_too_long):
        self.on_line = on_line
        self.on_too_long = on_too_long
        self.pending = bytearray()
        self.skipping = False  # inside a line already reported as too long

    def feed(self, data):
        start = 0
        while True:
            end = data.find(b"\n", start)
            piece = data[start:] if end < 0 else data[start:end]
            if not self.skipping:
                if len(self.pending) + len(piece) > MAX_LINE:
                    self.pending.clear()
                    self.skipping = True
                    self.on_too_long()
                else:
                    self.pending += piece
            if end < 0:
                return
            if not self.skipping:
                _one(bytes(self.pending), self.on_line)
            self.pending.clear()
            self.skipping = False
            start = end + 1

    def close(self):
        if not self.skipping:
            _one(bytes(self.pending), self.on_line)
        self.pending.clear()


def _loop(fd, lines, terminated):
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
        lines.feed(data)
    lines.close()


def _one(raw, on_line):
    text = raw.decode("utf-8", "replace").strip("\0\r ")
    if text:
        on_line(text)
