"""The durable spool: every event is on disk (write, fsync, rename, fsync dir) first.

Layout under the spool directory::

    tmp/            files being written (never read; left-overs of a killed
                    writer are cleaned up after STALE_TMP seconds)
    incoming/       events as spooled by `kachecks notify` / `kachecks fifo`
    mail/ webhook/  per-channel queues, filled from incoming/ in order; each has
                    .states.json (last known state per instance: "previous state")
                    and .batch (the batch being sent: names, Message-ID, previous states)
    expired/        events given up on (after spool.expire, or not a usable event
                    at all), kept for the administrator until purged
    notified/       the last state notified per VRRP instance (kachecks.notify.notified:
                    what the agent's reconciliation compares with), one file each
    .lock           held by the one process delivering (flock)

File names start with the event time in nanoseconds (for `kachecks notify`,
the time keepalived forked it), so sorting the names is delivery order.

The spool may be shared with a non-root notify user (group-writable), while
root's `kachecks spool flush` works in it. So: the spool directory must be
owned by this user or root and not writable by others (files.SHARED_WITH_GROUP);
every file is opened relative to an open directory with O_NOFOLLOW (a planted
symbolic link is refused, never followed) and read only if it is a regular
file of sane size (files.read_regular); files are written by exclusive create
in tmp/ and rename (files.replace, durable); modes are set explicitly
whatever the umask (keepalived runs scripts with umask 0177): directories
take the spool directory's group permissions, files are 0640 at most.
"""

import errno
import fcntl
import json
import os
import re
import shutil
import stat
import time

from kachecks import files
from kachecks.errors import KachecksError
from kachecks.notify import event as events
from kachecks.notify.channels import CHANNELS
from kachecks.notify.log import LOG_ERR, LOG_WARNING, log

QUEUES = ("incoming",) + CHANNELS  # events not yet delivered
EVERYWHERE = QUEUES + ("expired",)
NOTIFIED = "notified"  # kachecks.notify.notified: not a queue, never listed nor purged
SUBDIRS = ("tmp",) + EVERYWHERE + (NOTIFIED,)
MAX_FILE = 1 << 20  # no spool file is anywhere near this; a bigger one is garbage
STALE_TMP = 600.0  # a writer needs milliseconds between create and rename
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_LOCK = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a planted FIFO must not block us
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_GONE = object()  # a file that is not there (JSON null is something else: not an event)


class SpoolError(KachecksError):
    """The spool cannot be used: one line for people."""


class BadFile(KachecksError):
    """A spool file that is not what its place says: garbage, a link, a directory…"""


class Spool:
    """An open spool directory; every operation is relative to its directory descriptors."""

    def __init__(self, root, create=True):
        self.root = root
        self.fd = self._open_root(create)
        info = os.fstat(self.fd)
        self.mode = stat.S_IMODE(info.st_mode)
        self.file_mode = 0o600 | (self.mode & 0o040)
        self.fds = {}

    @classmethod
    def existing(cls, root):
        """The spool at ``root``, or None if there is none yet (nothing is created)."""
        try:
            return cls(root, create=False)
        except FileNotFoundError:
            return None

    def _open_root(self, create):
        try:
            return files.open_dir(self.root, files.SHARED_WITH_GROUP,
                                  create=0o750 if create else None, parents=True)
        except files.UntrustedDirectory as exc:
            raise SpoolError(f"spool {exc}: refusing to use it") from None
        except FileNotFoundError:
            if not create:
                raise
            raise SpoolError(f"cannot create spool {self.root}: a parent is missing") from None
        except OSError as exc:
            verb = "create" if create and exc.errno == errno.ENOTDIR else "open"
            raise SpoolError(f"cannot {verb} spool {self.root}: {exc.strerror}") from None

    def close(self):
        for fd in [self.fd, *self.fds.values()] if self.fd is not None else []:
            os.close(fd)
        self.fd, self.fds = None, {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def path(self, *parts):
        """For messages only: nothing is opened by path."""
        return os.path.join(self.root, *parts)

    def dir(self, sub, create=True):
        """Descriptor of subdirectory ``sub``, created (mode from the spool's) if missing.

        None if it is missing and ``create`` is false.
        """
        fd = self.fds.get(sub)
        if fd is None:
            fd = self._open_sub(sub, create)
            if fd is not None:
                self.fds[sub] = fd
        return fd

    def _open_sub(self, sub, create):
        want = self.mode & 0o2770  # the group may share the spool; others never
        try:
            try:
                fd = os.open(sub, _DIR | os.O_NOFOLLOW, dir_fd=self.fd)
            except FileNotFoundError:
                if not create:
                    return None
                try:
                    os.mkdir(sub, 0o700, dir_fd=self.fd)
                except FileExistsError:
                    pass
                fd = os.open(sub, _DIR | os.O_NOFOLLOW, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                what = "a symbolic link" if _is_link(sub, self.fd) else "not a directory"
                raise SpoolError(f"{self.path(sub)} is not a directory ({what}): "
                                 "refusing to use it") from None
            raise SpoolError(f"cannot open {self.path(sub)}: {exc.strerror}") from None
        # Not files.untrusted: inside the trusted spool, a subdirectory is whoever's of
        # the spool's group made it first; it must only never be writable by others.
        info = os.fstat(fd)
        if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != want:
            os.fchmod(fd, want)  # ours: align it with what the spool directory grants
        elif info.st_mode & stat.S_IWOTH:
            os.close(fd)
            raise SpoolError(f"{self.path(sub)} is writable by others: refusing to use it")
        return fd

    # -- reading ---------------------------------------------------------------
    def names(self, sub):
        """Event file names in ``sub``, oldest first (whatever they hold)."""
        fd = self.dir(sub, create=False)
        if fd is None:
            return []
        return sorted(n for n in os.listdir(fd) if n.endswith(".json") and not n.startswith("."))

    def read(self, sub, name, missing=None):
        """The JSON value in ``sub/name``; ``missing`` if it is not there; BadFile if it is not sane."""
        fd = self.dir(sub, create=False)
        if fd is None:
            return missing
        try:
            data = files.read_regular(name, "", MAX_FILE, follow=False, dir_fd=fd)
        except files.UnusableFile as exc:
            if exc.reason == "missing":
                return missing
            if exc.reason == "denied":  # not garbage: ours to fix, not to set aside
                raise SpoolError(f"cannot read {self.path(sub, events.clean(name))}: {exc.detail} "
                                 "(see docs/notifications.md for a spool shared with a group)") from None
            raise BadFile(exc.detail) from None
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise BadFile(f"not JSON ({type(exc).__name__})") from None

    def event(self, sub, name):
        """The clean event in ``sub/name``; None if it is not there; BadFile if it is no event."""
        stem = name[:-5]
        if sub == "expired":  # <id>.<queue>.json
            stem = stem.rsplit(".", 1)[0]
        if not events.ID_RE.fullmatch(stem):
            raise BadFile("not an event file name")
        obj = self.read(sub, name, missing=_GONE)
        if obj is _GONE:
            return None
        try:
            return events.check(obj, stem)
        except events.EventError as exc:
            raise BadFile(f"not a usable event: {exc}") from None

    # -- writing ---------------------------------------------------------------
    def write(self, sub, name, obj):
        """Atomically replace ``sub/name`` with ``obj``, durable when this returns
        (written in tmp/, so no queue ever holds half an event)."""
        data = json.dumps(obj, sort_keys=True).encode()
        staging, dest = (self.dir("tmp"), f"{sub}."), self.dir(sub)
        try:
            files.replace(name, data, self.file_mode, dest, durable=True, staging=staging)
        except OSError as exc:
            if exc.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                raise
            self.discard(sub, name, "a directory where a file belongs")
            files.replace(name, data, self.file_mode, dest, durable=True, staging=staging)

    def put(self, event):
        """Spool ``event`` into incoming/; raise SpoolError if it is not durable."""
        try:
            self.write("incoming", event["id"] + ".json", event)
        except OSError as exc:
            raise SpoolError(f"cannot write to spool {self.root}: {exc.strerror}") from None

    def remove(self, sub, name):
        """Remove ``sub/name`` (a file, or a directory someone put there)."""
        try:
            os.unlink(name, dir_fd=self.dir(sub))
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            shutil.rmtree(name, dir_fd=self.dir(sub))

    def sync(self, sub):
        os.fsync(self.dir(sub))

    def set_aside(self, sub, name):
        """Move ``sub/name`` (whatever it is) to expired/; returns its new name there."""
        stem = name[:-5] if name.endswith(".json") else name
        stem = stem if events.ID_RE.fullmatch(stem) else (_SAFE_NAME.sub("_", stem)[:80] or "_")
        dest, expired = f"{stem}.{sub}.json", self.dir("expired")
        while _exists(dest, expired):
            dest = f"{stem}-{os.urandom(2).hex()}.{sub}.json"
        os.rename(name, dest, src_dir_fd=self.dir(sub), dst_dir_fd=expired)
        os.fsync(expired)
        return dest

    def discard(self, sub, name, reason):
        """Set aside a file that can never be delivered as it is, and say so (daemon.err)."""
        dest = self.set_aside(sub, name)
        log(f"set aside {self.path(sub, events.clean(name))} as {self.path('expired', dest)}: {reason}",
            LOG_ERR)

    def tidy(self, now=None):
        """What a deliverer does first: every subdirectory there, with the spool's group
        permissions (an administrator may have shared the spool since they were made), and
        the left-overs of writers killed between create and rename (SIGKILL, power loss):
        a complete event bound for incoming/ is recovered, anything else removed.
        """
        for sub in SUBDIRS:
            self.dir(sub)
        now = time.time() if now is None else now
        tmp = self.dir("tmp")
        for name in os.listdir(tmp):
            try:
                info = os.stat(name, dir_fd=tmp, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if now - info.st_mtime < STALE_TMP:
                continue
            event = None
            if name.startswith("incoming.") and stat.S_ISREG(info.st_mode):
                try:
                    event = events.check(self.read("tmp", name))
                except (BadFile, events.EventError):
                    pass
            if event and not _exists(event["id"] + ".json", self.dir("incoming")):
                os.rename(name, event["id"] + ".json", src_dir_fd=tmp, dst_dir_fd=self.dir("incoming"))
                self.sync("incoming")
                log(f"recovered {events.describe(event)} from {self.path('tmp', name)} "
                    "(its writer was killed before it finished)", LOG_WARNING)
            else:
                self.remove("tmp", name)
                log(f"removed {self.path('tmp', events.clean(name))}, left {now - info.st_mtime:.0f} s "
                    "ago by a writer that was killed before it finished", LOG_WARNING)

    # -- locking ---------------------------------------------------------------
    def lock(self, name=".lock", sub=None):
        return Lock(self, name, sub)


def _exists(name, dir_fd):
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def _is_link(name, dir_fd):
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


class Lock:
    """An flock on a file in the spool (``.lock``: the one deliverer; the FIFO readers' own),
    or in its subdirectory ``sub`` (an instance's record in notified/)."""

    def __init__(self, spool, name=".lock", sub=None):
        self.spool = spool
        self.name = name
        self.sub = sub
        self.fd = None

    def _open(self):
        where = self.spool.path(*(() if self.sub is None else (self.sub,)), self.name)
        parent = self.spool.fd if self.sub is None else self.spool.dir(self.sub)
        try:
            try:
                fd = os.open(self.name, _LOCK | os.O_CREAT | os.O_EXCL, self.spool.file_mode,
                             dir_fd=parent)
                os.fchmod(fd, self.spool.file_mode)
            except FileExistsError:
                fd = os.open(self.name, _LOCK, dir_fd=parent)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SpoolError(f"{where} is a symbolic link: refusing to follow it "
                                 "(remove it if you did not make it)") from None
            raise SpoolError(f"cannot open {where}: {exc.strerror}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise SpoolError(f"{where} is not a regular file: refusing to use it")
        return fd

    def acquire(self, wait=0.0, should_stop=lambda: False):
        """Try for ``wait`` seconds; True if we now hold it."""
        self.fd = self._open()
        end = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= end or should_stop():
                self.release()
                return False
            time.sleep(0.05)

    def busy(self):
        """True if somebody holds the lock right now."""
        if self.acquire(0):
            self.release()
            return False
        return True

    def holder(self):
        """Pid of the process holding the lock, as the kernel says (/proc/locks), or None.

        Not a pid written in the file: whoever can write the spool could
        write any pid there, and `spool flush` (root) signals the holder.
        """
        fd = self._open()
        try:
            return files.flock_holder(os.fstat(fd))
        finally:
            os.close(fd)

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def listing(root):
    """``(where, event or None, name, problem)`` for `kachecks spool list`: queued, then expired.

    ``where`` is the queue, or ``expired:<queue>`` for what was set aside.
    """
    spool = Spool.existing(root)
    if spool is None:
        return
    with spool:
        for where in EVERYWHERE:
            for name in spool.names(where):
                label = where
                if where == "expired":  # <name>.<queue>.json, as set_aside() names them
                    queue = name[:-5].rsplit(".", 1)[-1]
                    label += f":{queue}" if queue in QUEUES else ""
                try:
                    yield label, spool.event(where, name), name, None
                except BadFile as exc:
                    yield label, None, name, str(exc)


def count(spool, wheres=QUEUES):
    return sum(len(spool.names(where)) for where in wheres)


def purge(root, wheres, wait):
    """Remove everything in ``wheres`` under the lock, logging each; None if the lock stayed busy."""
    spool = Spool.existing(root)
    if spool is None:
        return 0
    with spool:
        lock = spool.lock()
        if not lock.acquire(wait=wait):
            return None
        removed = 0
        try:
            for where in wheres:
                for name in spool.names(where):
                    try:
                        event = spool.event(where, name)
                        what = events.describe(event) if event else events.clean(name)
                    except BadFile as exc:
                        what = f"{events.clean(name)} ({exc})"
                    spool.remove(where, name)
                    removed += 1
                    log(f"purged from {where}: {what}", LOG_WARNING)
                if where in CHANNELS:
                    spool.remove(where, ".batch")
        finally:
            lock.release()
        return removed
