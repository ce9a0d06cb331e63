"""Opening the small files a command is given, so that none can stall or swamp it.

A path on a command line may name a FIFO nobody writes to (``open()``
blocks forever), a device that never ends (/dev/zero), a directory, or a
sparse file claiming gigabytes. Every such file a check reads (password,
CA, client certificate and key) goes through here: opened without
blocking, accepted only if it is a regular file no larger than the caller
allows, read with that bound. What a regular file on a local disk costs is
then bounded; the check's watchdog bounds the rest.
"""

import os
import stat

from kachecks.errors import UsageError


class UnusableFile(UsageError):
    """A file given on the command line cannot be used; the message says why."""

    def __init__(self, message, path):
        super().__init__(message)
        self.path = path


def open_regular(path, what, limit, follow=True, dir_fd=None):
    """``(fd, stat)`` of ``path`` opened for reading: a regular file of at most ``limit`` bytes.

    ``what`` names the file in messages ("password file", or "" for just the
    path); ``follow=False`` refuses a symbolic link. Raises UnusableFile.
    """
    named = f"{what} {path}" if what else f"{path}"
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        if not follow and _is_link(path, dir_fd):  # O_NOFOLLOW's ELOOP
            raise UnusableFile(f"{named} is a symbolic link", path) from None
        raise UnusableFile(f"cannot read {named}: {exc.strerror}", path) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnusableFile(f"{named} is not a regular file ({_kind(info.st_mode)})", path)
        if info.st_size > limit:
            raise UnusableFile(f"{named} is {info.st_size} bytes, more than the {limit} allowed",
                               path)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def read_regular(path, what, limit, follow=True, vet=None):
    """The bytes of a regular file of at most ``limit`` bytes (see open_regular).

    ``vet(stat)`` may raise to refuse the file once it is open (permissions).
    """
    fd, info = open_regular(path, what, limit, follow)
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
            raise UnusableFile(f"cannot read {path}: {exc.strerror}", path) from None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise UnusableFile(f"{path} grew past the {limit} bytes allowed", path)
        chunks.append(chunk)


def _is_link(path, dir_fd):
    try:
        return stat.S_ISLNK(os.lstat(path, dir_fd=dir_fd).st_mode)
    except OSError:
        return False


def _kind(mode):
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a plain file"

