"""Secrets come from files or the environment, never from argv.

keepalived.conf is often world-readable and argv shows in ``ps``; a password
file that others can read is refused with the reason, so a leak is loud.
"""

import os
import stat

from kachecks.errors import UsageError


def read_password_file(path):
    """The first line of ``path``, refusing files others can read or group can write."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise UsageError(f"cannot read password file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"password file {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & (stat.S_IRWXO | stat.S_IWGRP | stat.S_IXGRP):
            raise UsageError(
                f"password file {path} has mode {mode:04o}: others can read it or group can "
                f"write it; use chmod 600 (or 640 for a dedicated group)"
            )
        data = os.read(fd, 65536)
    finally:
        os.close(fd)
    secret = data.decode("utf-8", "replace").splitlines()[0] if data.strip() else ""
    if not secret:
        raise UsageError(f"password file {path} is empty")
    return secret


def password_from(path=None, env_var=None):
    """Password from ``path`` if given, else from ``env_var``, else None (anonymous)."""
    if path:
        return read_password_file(path)
    if env_var:
        value = os.environ.get(env_var)
        if value:
            return value
    return None
