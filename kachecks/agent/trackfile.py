"""Track files as keepalived reads them: one number, replaced atomically, only where they belong.

keepalived watches the directory with inotify and re-reads a track file when
a writer closes it or renames a file onto it; it parses the first number, and
an empty, missing or garbled file counts as 0. Writing in place could let it
read a half-written file, so each value is written to a temporary file in the
same directory and renamed over the old one: keepalived sees the old value
or the new one, never a torn one. No fsync: these files live in /run; a power
cut restarts everything at 0 anyway.

Every result reaches its file: a value the file already holds (``holds``, a read)
is left as it is, anything else is written. So a file keepalived re-initialised
(``init_file … overwrite``) or somebody removed is right again at the next result.
Once a file was read holding a value and has not changed since, one lstat says so
(``Directories.holds``: same inode, size and change time), not a read every result.

keepalived believes whatever the files say, and the agent writes them as root, so:

- a track file's directory, every directory above it and every symbolic link on
  the way must be root's (or the agent's own user's), and no directory writable by
  others unless sticky (kachecks.files.untrusted_path): anybody else could plant a
  file, or swap a directory, and declare a dead server up;
- each directory is opened once (``Directories``) and every file is written by
  name relative to that descriptor (openat, renameat): a directory renamed or
  swapped later cannot redirect a write;
- an existing file is replaced only if it is a regular file that is empty or holds
  a number (``unfit``): a ``file`` that names /etc/passwd is a configuration error,
  never a clobbered file.
"""

import errno
import os
import re
import time

from kachecks import files

MODE = 0o644  # root-owned; keepalived (root) reads it; readable for monitoring
NUMBER = re.compile(rb"\s*-?\d+\s*\Z")
MAX_SIZE = 64  # bytes: a longer file is not a track file
NOT_A_NUMBER = "holds something else than a number: not a track file"


class Unusable(OSError):
    """A track directory or file the agent must not write; str() says which and why."""

    def __init__(self, message):
        super().__init__(errno.EPERM, message)

    def __str__(self):
        return self.strerror


def unfit(name, dir_fd=None):
    """Why the existing file ``name`` must not be replaced by a track file's value, or None
    (absent, empty or one number)."""
    try:
        text = files.read_regular(name, "", MAX_SIZE, follow=False, dir_fd=dir_fd)
    except files.UnusableFile as exc:
        if exc.reason == "missing":
            return None
        return NOT_A_NUMBER if exc.reason == "size" else exc.detail
    return NOT_A_NUMBER if text.strip() and not NUMBER.match(text) else None


def read(path):
    """What keepalived reads in ``path`` now: its number, or None when the file is missing,
    unreadable or not a number (keepalived: 0, down)."""
    try:
        text = files.read_regular(path, "", MAX_SIZE, follow=False)
    except files.UnusableFile:
        return None
    match = re.match(rb"\s*(-?\d+)", text)
    return int(match.group(1)) if match else None


_PEEK = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC


def holds(name, value, dir_fd=None):
    """True when the file ``name`` holds exactly what a write of ``value`` would put there.

    A look (open, read, close), cheaper than a replacement by the seven calls of a
    temporary file and a rename, and as exact: whatever the file is (gone, a link,
    something else, a number keepalived's ``init_file`` put there), anything but
    that text is False, and the caller writes.
    """
    expected = b"%d\n" % value
    try:
        fd = os.open(name, _PEEK, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        return os.read(fd, len(expected) + 1) == expected
    except OSError:
        return False
    finally:
        os.close(fd)


def judge_directory(directory):
    """Why ``directory`` (or, while it does not exist, the directory it would be made in)
    may not hold track files, or None. OSError if it cannot be looked at."""
    path = directory
    while not os.path.lexists(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    return files.untrusted_path(path, files.ROOT_OR_ME, ancestors=True)


# A change time at least this old (ns) is trusted to tell any later change: the kernel
# stamps files from a clock that lags by up to a tick (1-10 ms), so a file changed
# within a tick of a look can keep the change time it had (git's "racily clean").
SETTLED_NS = 100_000_000


class Directories:
    """The directories of the track files, each judged and opened once (O_DIRECTORY), and
    the writes by name relative to them. ``close()`` when done.

    ``holds`` remembers, per file, the value it read there with the file's inode, size
    and change time, when that change time was settled (``SETTLED_NS``) before it looked:
    while an lstat finds the same three, the file is the one read then, unchanged
    (anything that replaces, rewrites, truncates, removes or re-creates it gives
    another inode or a newer change time), and it is not read again. ``clock``: wall
    time in ns (the clock change times are stamped with)."""

    def __init__(self, clock=time.time_ns):
        self._fds = {}
        self._clock = clock
        self._known = {}  # path -> (value, st_ino, st_size, st_ctime_ns) read there
        self._where_of = {}  # path -> (its directory's descriptor, its name)

    def fd(self, directory):
        return self._fds[directory]

    def __contains__(self, directory):
        return directory in self._fds

    def open(self, track_dir, paths=(), create=True):
        """Judge and open ``track_dir`` (made 0755 if missing and ``create``) and the
        directory of every path in ``paths`` not open yet; judge each existing file
        (``unfit``). Unusable (or OSError) naming the first problem. Without
        ``create`` (``--check-config``) a missing track directory is only judged."""
        for directory in [track_dir, *sorted({os.path.dirname(p) for p in paths} - {track_dir})]:
            if directory in self._fds:
                continue
            try:
                problem = judge_directory(directory)
                if problem:
                    raise Unusable(f"{problem}: keepalived would believe files that others"
                                   " write")
                if not create and not os.path.lexists(directory):
                    continue
                self._fds[directory] = files.open_dir(
                    directory, files.ROOT_OR_ME, create=0o755 if create and directory ==
                    track_dir else None, parents=True)
            except files.UntrustedDirectory as exc:
                raise Unusable(f"{exc}: keepalived would believe files that others write") \
                    from None
            except FileNotFoundError:
                raise Unusable(f"{directory}: no such directory") from None
        for path in paths:
            directory, name = os.path.split(path)
            if directory in self._fds:
                why = unfit(name, self._fds[directory])
                if why:
                    raise Unusable(f"{path} {why}")

    def write(self, path, value):
        """Atomically make ``path`` (in an opened directory) hold ``value``; OSError if not."""
        fd, name = self._where(path)
        self._known.pop(path, None)
        files.replace(name, b"%d\n" % value, MODE, dir_fd=fd)

    def holds(self, path, value):
        """True when ``path`` (in an opened directory) holds ``value`` already (``holds``):
        an lstat while it is the file read holding it before, else a read."""
        try:
            fd, name = self._where(path)
        except Unusable:
            return False
        now = self._clock()
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError:
            self._known.pop(path, None)
            return False
        seen = (value, st.st_ino, st.st_size, st.st_ctime_ns)
        if self._known.get(path) == seen:
            return True
        if not holds(name, value, fd):
            self._known.pop(path, None)
            return False
        # Read after the lstat: a change since gives a newer change time, unless the
        # one the lstat found is too recent to tell (then the next result reads again).
        if st.st_ctime_ns < now - SETTLED_NS:
            self._known[path] = seen
        else:
            self._known.pop(path, None)
        return True

    def _where(self, path):
        where = self._where_of.get(path)
        if where is None:
            directory, name = os.path.split(path)
            fd = self._fds.get(directory)
            if fd is None:
                raise Unusable(f"{directory} was never judged fit for track files")
            where = self._where_of[path] = (fd, name)
        return where

    def close(self):
        fds, self._fds = self._fds, {}
        self._known.clear()
        self._where_of.clear()
        for fd in fds.values():
            os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def zero(directories, paths):
    """Write 0 to every path (their directories opened in ``directories``); return
    [(path, error text)] for the ones that failed."""
    failed = []
    for path in paths:
        try:
            directories.write(path, 0)
        except OSError as exc:
            failed.append((path, exc.strerror or str(exc)))
    return failed
