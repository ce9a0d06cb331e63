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

from kachecks import files

MODE = 0o644  # root-owned; keepalived (root) reads it; readable for monitoring


def write(path, value, dir_fd=None):
    """Atomically make ``path`` hold ``value``; OSError if it cannot.

    With ``dir_fd`` (the track directory, opened once) ``path`` is a name in
    it: a directory renamed or swapped since cannot redirect the write.
    """
    files.replace(path, b"%d\n" % value, MODE, dir_fd=dir_fd)


def prepare(track_dir, paths=()):
    """Create the track directory (0755) if missing; OSError unless it, and the directory
    of every file kept elsewhere, is only root's or ours to write (files.ROOT_OR_ME)."""
    try:
        os.close(files.open_dir(track_dir, files.ROOT_OR_ME, create=0o755, parents=True))
        for directory in sorted({os.path.dirname(p) for p in paths} - {track_dir}):
            problem = files.untrusted_path(directory)
            if problem:
                raise files.UntrustedDirectory(problem)
    except files.UntrustedDirectory as exc:
        raise OSError(errno.EPERM, f"{exc}: keepalived would believe files that others write") \
            from None


def read(path):
    """What keepalived reads in ``path`` now: its number, or None when the file is missing,
    unreadable or not a number (keepalived: 0, down)."""
    try:
        text = files.read_regular(path, "", 64, follow=False)
    except files.UnusableFile:
        return None
    match = re.match(rb"\s*(-?\d+)", text)
    return int(match.group(1)) if match else None


def looks_like_ours(path):
    """True when ``path`` is absent or holds one number: what zeroing a listed file may touch."""
    try:
        text = files.read_regular(path, "", 64, follow=False)
    except files.UnusableFile as exc:
        return exc.reason == "missing"
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
