"""Track files as keepalived reads them: one number, replaced atomically.

keepalived watches the directory with inotify and re-reads a track file when
a writer closes it or renames a file onto it; it parses the first number, and
an empty, missing or garbled file counts as 0. Writing in place could let it
read a half-written file, so each value is written to a temporary file in the
same directory and renamed over the old one: keepalived sees the old value
or the new one, never a torn one. No fsync: these files live in /run and are
rewritten on every result; a power cut restarts everything at 0 anyway.
"""

import os

MODE = 0o644  # root-owned; keepalived (root) reads it; readable for monitoring


def write(path, value):
    """Atomically make ``path`` hold ``value``; OSError if it cannot."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, MODE)
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


def ensure_dir(path):
    """Create the track directory (0755, as keepalived needs it to exist) if missing."""
    if not os.path.isdir(path):
        old = os.umask(0o022)
        try:
            os.makedirs(path, 0o755, exist_ok=True)
        finally:
            os.umask(old)


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
