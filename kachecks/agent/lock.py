"""Whether an agent runs for a track directory: the flock it holds for as long as it runs.

Not a process name (any local user can name a process ``kachecks-agent``) nor a pid
in a file (pids are reused): ``.kachecks-agent.lock`` in the track directory, which
only root or the agent's own user can create or open (the directory is trusted, the
file 0600), flocked by the agent from start to exit. The kernel drops the lock
however the agent ends (SIGKILL, a crash, the watchdog), so `kachecks agent zero`
never waits for a dead agent, and nobody else can hold it to make `zero` or a new
agent believe one runs. `zero` takes the lock itself while it zeroes, so an agent
cannot start halfway through; `status`, which may run as another user, only looks
(/proc/locks) and never takes it, so it cannot stop an agent from starting.
"""

import errno
import fcntl
import os
import stat

from kachecks import files

LOCK_FILE = ".kachecks-agent.lock"
MODE = 0o600
_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class Busy(Exception):
    """Another process holds the lock; ``pid`` is the holder's (None if /proc cannot say)."""

    def __init__(self, pid):
        super().__init__(pid)
        self.pid = pid


def take(dir_fd):
    """The lock's descriptor, flocked (keep it open for as long as the lock is wanted).

    Busy if another process holds it; OSError if the file cannot be used (a symbolic
    link, not a regular file, somebody else's).
    """
    fd = os.open(LOCK_FILE, _FLAGS, MODE, dir_fd=dir_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, f"{LOCK_FILE} is not a regular file")
        if info.st_uid not in (0, os.geteuid()):
            raise OSError(errno.EPERM, f"{LOCK_FILE} belongs to uid {info.st_uid}")
        if stat.S_IMODE(info.st_mode) != MODE:
            os.fchmod(fd, MODE)  # whatever the umask: nobody else opens it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(files.flock_holder(info)) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def holder(dir_fd):
    """Pid of the process holding the lock of the directory ``dir_fd``, or None (nobody,
    no lock file). Only looks: never opens the file, never takes the lock."""
    try:
        info = os.stat(LOCK_FILE, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return files.flock_holder(info)
