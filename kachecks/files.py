"""Small files, safely: bounded reads, atomic replace, trusted directories.

The one place for the three things every part of kachecks does with the small
files that decide what it does (passwords, certificates, kachecks.toml, a check's
last state, keepalived's track files, the agent's status document, the
notification spool):

- **Reading** a file someone else may have put there: opened without blocking
  (a FIFO nobody writes to), accepted only if it is a regular file no larger
  than the caller allows (not /dev/zero, not a sparse file claiming
  gigabytes), read with that bound (a file still growing).
- **Replacing** a file others read: the new bytes go to a temporary file
  created exclusively (never an existing file, never through a symbolic link)
  beside it, with exactly the mode asked for whatever the umask (keepalived
  runs scripts with umask 0177), then renamed over it; a reader sees the old
  bytes or the new, never part; on any failure the temporary file is removed.
  Given a directory descriptor, every name is relative to it (openat,
  renameat), so a directory renamed or swapped after it was opened cannot
  redirect the write.
- **Trusting** a directory: only root or we may write in it, or a file there
  could be planted (a dead server declared up, a link to a root-owned file).
  The policies differ only where their callers really do; each is named.

On the forked checks' import budget: ``os`` and ``stat`` only.
"""

import os
import stat

from kachecks.errors import UsageError

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


# ---------------------------------------------------------------- reading


class UnusableFile(UsageError):
    """A file cannot be used; the message says which and why.

    ``reason`` is what callers branch on: ``missing``, ``denied``, ``link`` (a
    symbolic link where none is followed), ``type`` (not a regular file),
    ``size`` (over the bound, or grew past it) or ``error`` (any other I/O
    error). ``detail`` is the why without the file's name ("a symbolic link",
    "not a regular file (a FIFO)", …), for callers that name it their own way.
    """

    def __init__(self, message, path, reason="error", detail=None):
        super().__init__(message)
        self.path = path
        self.reason = reason
        self.detail = detail or message


def open_regular(path, what, limit, follow=True, dir_fd=None):
    """``(fd, stat)`` of ``path`` opened for reading: a regular file of at most ``limit`` bytes
    (None: any size, for a caller that reads only its start or bounds its reading itself).

    ``what`` names the file in messages ("password file", or "" for just the
    path); ``follow=False`` refuses a symbolic link. Raises UnusableFile.
    """
    named = f"{what} {path}" if what else f"{path}"
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        if not follow and _is_link(path, dir_fd):  # O_NOFOLLOW's ELOOP
            raise UnusableFile(f"{named} is a symbolic link", path, "link",
                               "a symbolic link") from None
        reason = ("missing" if isinstance(exc, FileNotFoundError) else
                  "denied" if isinstance(exc, PermissionError) else "error")
        raise UnusableFile(f"cannot read {named}: {exc.strerror}", path, reason,
                           exc.strerror) from None
    except ValueError:  # a NUL in the name
        raise UnusableFile(f"cannot read {named}: a NUL byte in its name", path, "error",
                           "a NUL byte in its name") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            detail = f"not a regular file ({_kind(info.st_mode)})"
            raise UnusableFile(f"{named} is {detail}", path, "type", detail)
        if limit is not None and info.st_size > limit:
            detail = f"{info.st_size} bytes, more than the {limit} allowed"
            raise UnusableFile(f"{named} is {detail}", path, "size", detail)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def read_regular(path, what, limit, follow=True, vet=None, dir_fd=None):
    """The bytes of a regular file of at most ``limit`` bytes (see open_regular).

    ``vet(stat)`` may raise to refuse the file once it is open (permissions).
    """
    fd, info = open_regular(path, what, limit, follow, dir_fd)
    try:
        if vet is not None:
            vet(info)
        return read_bounded(fd, limit, path)
    finally:
        os.close(fd)


def read_bounded(fd, limit, path):
    """Read ``fd`` to its end, refusing more than ``limit`` bytes (a file still growing)."""
    chunks = []
    size = 0
    while True:
        try:
            chunk = os.read(fd, min(65536, limit + 1 - size))
        except OSError as exc:
            raise UnusableFile(f"cannot read {path}: {exc.strerror}", path, "error",
                               exc.strerror) from None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            detail = f"grew past the {limit} bytes allowed"
            raise UnusableFile(f"{path} {detail}", path, "size", detail)
        chunks.append(chunk)


def _is_link(path, dir_fd):
    try:
        return stat.S_ISLNK(os.lstat(path, dir_fd=dir_fd).st_mode)
    except (OSError, ValueError):
        return False


def _kind(mode):
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a plain file"


# ---------------------------------------------------------------- replacing


def replace(path, data, mode, dir_fd=None, durable=False, staging=None):
    """Make ``path`` hold ``data`` (bytes, or a list of bytes to write one after the
    other: a large document in pieces, never copied into one), atomically, with
    exactly ``mode``.

    ``path`` is relative to ``dir_fd`` when given (and then ought to be a plain
    name in it); otherwise its directory is opened for the time of the write.
    The temporary file is ``.NAME.PID-RANDOM.tmp`` beside it, or
    ``PREFIX PID-RANDOM.tmp`` in another directory of the same file system when
    ``staging`` is ``(dir_fd, prefix)`` (the spool's tmp/, never read as a
    queue). ``durable``: fsync the file before the rename and the directory
    after it, so the new bytes survive a power cut (the spool); without it a
    crash may leave the old bytes, never a torn file (track and state files in
    /run). OSError (the target untouched, the temporary file gone) if it
    cannot be done.
    """
    if dir_fd is None:
        directory, name = os.path.split(path)
        dir_fd = os.open(directory or ".", _DIR)
        try:
            return replace(name, data, mode, dir_fd, durable, staging)
        finally:
            os.close(dir_fd)
    tmp_dir, prefix = staging or (dir_fd, f".{os.path.basename(path)[:200]}.")
    fd, tmp = _create(tmp_dir, prefix, mode)
    try:
        try:
            os.fchmod(fd, mode)  # exactly: the umask may have cut it, nothing widens it
            _write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path, src_dir_fd=tmp_dir, dst_dir_fd=dir_fd)
    except BaseException:
        _unlink(tmp, tmp_dir)
        raise
    if durable:
        os.fsync(dir_fd)


_IOV_MAX = 1024  # Linux's limit of pieces per writev(2)


def _write_all(fd, data):
    """Write ``data`` (bytes, or a list of bytes) to ``fd`` to the last byte."""
    pieces = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
    for start in range(0, len(pieces), _IOV_MAX):
        batch = pieces[start:start + _IOV_MAX]
        done = os.writev(fd, batch)
        if done < sum(map(len, batch)):  # short (a full disk reports itself next time)
            view = memoryview(b"".join(batch))[done:]
            while view:
                view = view[os.write(fd, view):]


def _create(dir_fd, prefix, mode):
    """A new file ``PREFIX PID-RANDOM.tmp`` in ``dir_fd``: ``(fd, name)``.

    O_EXCL|O_NOFOLLOW: a name someone else made (a file, a link to one) is never
    opened, only stepped around; the random part makes the name unguessable.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for attempt in range(4):
        name = f"{prefix}{os.getpid()}-{os.urandom(4).hex()}.tmp"
        try:
            return os.open(name, flags, mode & 0o600, dir_fd=dir_fd), name
        except FileExistsError:
            if attempt == 3:
                raise


def _unlink(name, dir_fd):
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


# ---------------------------------------------------------------- trusting


class Trust:
    """Who may own and write a directory whose files we believe (see the named policies)."""

    __slots__ = ("root", "group")

    def __init__(self, root, group):
        self.root = root  # root's directory is trusted as well as ours
        self.group = group  # its group may write in it too


# Only we own it and only we write it: a per-user directory found in a shared
# place (a check's state under /tmp): root's is no use to a check run as
# another user, anybody else's not ours to believe.
PRIVATE = Trust(root=False, group=False)
# Root or we own it, nobody else writes it: what root-run programs believe
# (keepalived's track files, the agent's status document, the worker's socket).
ROOT_OR_ME = Trust(root=True, group=False)
# Root or we own it, its group may write it too, others never: the notification
# spool, shared with the group a non-root keepalived script user is in.
SHARED_WITH_GROUP = Trust(root=True, group=True)


def untrusted(info, name, trust=ROOT_OR_ME, sticky=False):
    """Why the directory ``name`` (``info``: its stat) may hold files others planted, or None.

    ``sticky``: writable by group or others is fine if the directory is sticky
    (as /tmp is): nobody else can then rename or remove what is in it.
    """
    me = os.geteuid()
    if info.st_uid != me and not (trust.root and info.st_uid == 0):
        return f"{name} belongs to uid {info.st_uid}"
    writers = stat.S_IWOTH | (0 if trust.group else stat.S_IWGRP)
    if info.st_mode & writers and not (sticky and info.st_mode & stat.S_ISVTX):
        who, hint = ("others", "o-w") if trust.group else ("group or others", "go-w")
        return (f"{name} is writable by {who} (mode {stat.S_IMODE(info.st_mode):04o};"
                f" chmod {hint} {name})")
    return None


def untrusted_path(path, trust=ROOT_OR_ME, ancestors=False):
    """Why directory ``path`` is not trusted (see ``untrusted``), or None; OSError if it
    cannot be looked at. Symbolic links are followed (the real path is judged).

    ``ancestors``: every directory the path passes through must be root's or ours as
    well, and writable by group or others only if sticky (as /tmp is), or someone
    could rename the whole branch away and put their own in its place; and every
    symbolic link on the way must be root's or ours, or its owner could point it
    elsewhere at any time (a link of a user's in /tmp to /etc is not /etc).
    """
    if not ancestors:
        directory = os.path.realpath(path)
        return untrusted(os.stat(directory), directory, trust)
    directory, problem = _resolve(path)
    return problem or untrusted(os.stat(directory), directory, trust)


def _resolve(path, missing=False):
    """``(real path, None)`` of ``path``, judging each directory passed through and each
    symbolic link followed on the way (see ``untrusted_path``); ``(None, why)`` at the
    first that others could change. ``missing``: a path that does not exist (yet) is
    judged as far as it goes, ``(None, None)`` if all that is fine."""
    me = os.geteuid()
    todo = [part for part in reversed(os.path.abspath(path).split("/")) if part]
    current, links = "/", 0
    problem = untrusted(os.stat("/"), "/", ROOT_OR_ME, sticky=True)
    while todo and problem is None:
        name = todo.pop()
        if name == ".":
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            if missing:  # everything above it was judged: what is made there is ours
                return None, None
            raise
        if stat.S_ISLNK(info.st_mode):
            if info.st_uid not in (0, me):
                return None, f"{candidate} is a symbolic link of uid {info.st_uid}"
            links += 1
            if links > 40:
                raise OSError(f"{path}: too many levels of symbolic links")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = "/"
            todo.extend(part for part in reversed(target.split("/")) if part)
            continue
        if todo:  # a directory on the way (the last one is the caller's to judge)
            problem = untrusted(info, candidate, ROOT_OR_ME, sticky=True)
        current = candidate
    return current, problem


def flock_holder(info):
    """Pid of the process holding an flock on the file whose stat is ``info``, as the
    kernel says (/proc/locks), or None: not a pid written in a file, which whoever can
    write there could forge. Only looks; never takes the lock."""
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}"
    holders = {}  # device -> pid, for the flocks on an inode with our number
    try:
        with open("/proc/locks") as handle:
            for line in handle:
                fields = line.split()  # 1: FLOCK ADVISORY WRITE <pid> <maj:min:inode> 0 EOF
                if (len(fields) > 5 and fields[1] == "FLOCK"
                        and fields[5].endswith(f":{info.st_ino}")):
                    holders[fields[5].rsplit(":", 1)[0]] = int(fields[4])
    except (OSError, ValueError):
        return None
    if device in holders:
        return holders[device]
    # overlayfs may show another device number than stat() does: one candidate is ours
    return holders.popitem()[1] if len(holders) == 1 else None


class UntrustedDirectory(PermissionError):
    """A directory others may write in, where a trusted one is needed; str() says why."""


def open_dir(path, trust=ROOT_OR_ME, create=None, parents=False, follow=True,
             ancestors=False):
    """An O_DIRECTORY descriptor on ``path`` that ``trust`` accepts (the caller closes it).

    ``create``: the mode it must have, set exactly whatever the umask, when we
    make it (it is missing) or when it is ours and not usable by us (no rwx for
    its owner: left so by an umask). ``parents``: make missing parents too
    (0755). ``follow=False``: ``path`` itself must not be a symbolic link.
    ``ancestors``: the way to it judged first as ``untrusted_path`` judges it
    (every directory above and every link on the way), before anything is made
    there, and again after (another user may have made a missing part first).
    UntrustedDirectory, or OSError if it cannot be opened or made.
    """
    flags = _DIR | (0 if follow else os.O_NOFOLLOW)
    made = False
    if ancestors:
        _judge_way(path, missing=create is not None)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        if create is None:
            raise
        made = _make_dir(path, parents)
        if ancestors:
            _judge_way(path)
        fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if create is not None and (made or (info.st_uid == os.geteuid()
                                            and info.st_mode & 0o700 != 0o700)):
            os.fchmod(fd, create)
            info = os.fstat(fd)
        problem = untrusted(info, path, trust)
        if problem:
            raise UntrustedDirectory(problem)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _judge_way(path, missing=False):
    problem = _resolve(path, missing)[1]
    if problem:
        raise UntrustedDirectory(problem)


def _make_dir(path, parents):
    """mkdir (-p with ``parents``: missing parents 0755, set exactly); ``path`` itself
    0700 until its mode is set on the descriptor. True if we made ``path``."""
    parent = os.path.dirname(os.path.normpath(path))
    if parents and parent and parent != path and not os.path.isdir(parent):
        if _make_dir(parent, True):
            fd = os.open(parent, _DIR | os.O_NOFOLLOW)
            try:
                os.fchmod(fd, 0o755)
            finally:
                os.close(fd)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return False
    return True
