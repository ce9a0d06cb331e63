"""Track files as keepalived reads them: one number, replaced atomically.

keepalived watches the directory with inotify and re-reads a track file when
a writer closes it or renames a file onto it; it parses the first number, and
an empty, missing or garbled file counts as 0. Writing in place could let it
read a half-written file, so each value is written to a temporary file in the
same directory and renamed over the old one: keepalived sees the old value
or the new one, never a torn one. No fsync: these files live in /run and are
rewritten on every result; a power cut restarts everything at 0 anyway.

keepalived believes whatever the files say, so their directory must be one
only root (or the agent's own user) can write: anybody else could plant a
file, or a temporary file for us to fill, and declare a dead server up.
"""

import errno
import os
import re

MODE = 0o644  # root-owned; keepalived (root) reads it; readable for monitoring


def write(path, value):
    """Atomically make ``path`` hold ``value``; OSError if it cannot."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, MODE)
    except FileExistsError:  # left by a crash halfway: ours (the directory is nobody else's)
        _unlink(tmp)
        fd = os.open(tmp, flags, MODE)
    try:
        os.write(fd, b"%d\n" % value)
        os.fchmod(fd, MODE)  # whatever the umask: never wider, never narrower
    except BaseException:
        os.close(fd)
        _unlink(tmp)
        raise
    os.close(fd)
    try:
        os.rename(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise


def prepare(track_dir, files=()):
    """Create the track directory (0755) if missing; OSError unless it, and the directory
    of every file kept elsewhere, is safe to use (see ``unsafe``)."""
    if not os.path.isdir(track_dir):
        old = os.umask(0o022)
        try:
            os.makedirs(track_dir, 0o755, exist_ok=True)
        finally:
            os.umask(old)
    for directory in sorted({track_dir, *(os.path.dirname(f) for f in files)}):
        problem = unsafe(directory)
        if problem:
            raise OSError(errno.EPERM,
                          f"{problem}: keepalived would believe files that others write")


def unsafe(directory):
    """Why ``directory`` must not hold track files (owned or writable by others), or None."""
    info = os.stat(directory)
    if info.st_uid not in (0, os.geteuid()):
        return f"{directory} belongs to uid {info.st_uid}"
    if info.st_mode & 0o022:
        return f"{directory} is writable by its group or others (mode {info.st_mode & 0o7777:04o})"
    return None


def looks_like_ours(path):
    """True when ``path`` is absent or holds one number: what zeroing a listed file may touch."""
    try:
        with open(path, "rb") as handle:
            text = handle.read(64)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return re.fullmatch(rb"\s*-?\d+\s*", text) is not None


def zero(paths):
    """Write 0 to every path; return [(path, error text)] for the ones that failed."""
    failed = []
    for path in paths:
        try:
            write(path, 0)
        except OSError as exc:
            failed.append((path, exc.strerror or str(exc)))
    return failed


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass
