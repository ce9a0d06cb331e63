"""The durable spool: every event is on disk (write, fsync, rename, fsync dir) first.

Layout under the spool directory::

    tmp/            files being written (never read)
    incoming/       events as spooled by `kachecks notify` / `kachecks fifo`
    mail/ webhook/  per-channel queues, filled from incoming/ in order; each has
                    .states.json (last known state per instance: "previous state")
                    and .batch (the batch being sent: names, Message-ID, previous states)
    expired/        events given up after spool.expire (kept for the admin)
    .lock           held by the one process delivering (flock)

File names start with the event time in nanoseconds (for `kachecks notify`,
the time keepalived forked it), so sorting the names is delivery order.
"""

import errno
import fcntl
import json
import os
import time

from kachecks.errors import KachecksError
from kachecks.notify.channels import CHANNELS
from kachecks.notify.event import describe
from kachecks.notify.log import LOG_WARNING, log

SUBDIRS = ("tmp", "incoming", "expired")
QUEUES = ("incoming",) + CHANNELS  # events not yet delivered
EVERYWHERE = QUEUES + ("expired",)


class SpoolError(KachecksError):
    """The spool cannot be written: the one failure `kachecks notify` reports."""


def ensure(root):
    try:
        for sub in SUBDIRS + CHANNELS:
            os.makedirs(os.path.join(root, sub), mode=0o750, exist_ok=True)
    except OSError as exc:
        raise SpoolError(f"cannot create spool {root}: {exc.strerror}") from None


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(root, path, obj):
    """Atomically replace ``path`` with ``obj``, durable when this returns."""
    data = json.dumps(obj, sort_keys=True).encode()
    tmp = os.path.join(root, "tmp", f"{os.getpid()}-{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    fsync_dir(os.path.dirname(path))


def read_json(path, default=None):
    try:
        with open(path, "rb") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default
    except ValueError:
        return default


def put(root, event):
    """Spool ``event`` into incoming/; raise SpoolError if it is not durable."""
    ensure(root)
    try:
        path = os.path.join(root, "incoming", event["id"] + ".json")
        write_json(root, path, event)
        return path
    except OSError as exc:
        raise SpoolError(f"cannot write to spool {root}: {exc.strerror}") from None


def names(root, sub):
    """Event file names in ``sub``, oldest first."""
    try:
        return sorted(n for n in os.listdir(os.path.join(root, sub))
                      if n.endswith(".json") and not n.startswith("."))
    except FileNotFoundError:
        return []


def walk(root, wheres=EVERYWHERE):
    """``(where, name, path)`` of every event file in ``wheres``, each oldest first."""
    for where in wheres:
        for name in names(root, where):
            yield where, name, os.path.join(root, where, name)


def count(root, wheres=QUEUES):
    return sum(1 for _ in walk(root, wheres))


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class Lock:
    """The delivery lock; its holder's pid is written in the file for handover."""

    def __init__(self, root, name=".lock"):
        self.path = os.path.join(root, name)
        self.fd = None
        self.recorded = False

    def acquire(self, wait=0.0, should_stop=lambda: False, record=True):
        """Try for ``wait`` seconds; True if we now hold it (pid recorded if ``record``)."""
        ensure(os.path.dirname(self.path))
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        end = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= end or should_stop():
                    os.close(self.fd)
                    self.fd = None
                    return False
                time.sleep(0.05)
        if record:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        self.recorded = record
        return True

    def busy(self):
        """True if somebody holds the lock right now."""
        if self.acquire(0, record=False):
            self.release()
            return False
        return True

    def holder(self):
        """Pid of the process holding the lock, or None."""
        if not self.busy():
            return None
        try:
            with open(self.path) as handle:
                return int(handle.read().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def release(self):
        if self.fd is not None:
            if self.recorded:
                os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = None


def listing(root):
    """``(where, event or None, name)`` for ``kachecks spool list``: queued, then expired.

    ``where`` is the queue, or ``expired:<queue>`` for an event given up on.
    """
    for where, name, path in walk(root):
        event = read_json(path)
        if where == "expired":
            where = "expired:" + name[:-5].rsplit(".", 1)[-1]
        yield where, event if isinstance(event, dict) and event.get("type") else None, name


def purge(root, wheres, wait):
    """Remove every event in ``wheres`` under the lock, logging each; None if the lock stayed busy."""
    lock = Lock(root)
    if not lock.acquire(wait=wait, record=False):  # not a deliverer: no SIGUSR1 for us
        return None
    removed = 0
    try:
        for where, name, path in walk(root, wheres):
            event = read_json(path) or {}
            remove(path)
            removed += 1
            log(f"purged from {where}: {describe(event) if event.get('type') else name}", LOG_WARNING)
        for where in wheres:
            remove(os.path.join(root, where, ".batch"))
    finally:
        lock.release()
    return removed
