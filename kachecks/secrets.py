"""Secrets come from files or the environment, never from argv.

keepalived.conf is often world-readable and argv shows in ``ps``; a password
file that others can read is refused with the reason, so a leak is loud.

The password is the first line of the file that is not blank, without its
line ending (LF or CRLF); spaces inside or around it are part of it, later
lines are ignored. So a file written by ``printf %s`` (what ``ldapsearch -y``
needs: it sends the whole file), by ``echo`` or by an editor all work, and a
stray blank line before the password does not make it "empty".
"""

import os
import stat

from kachecks.errors import UsageError
from kachecks.files import read_regular

# A password file is a line of text; anything bigger is the wrong file.
MAX_PASSWORD_FILE = 64 * 1024


def read_password_file(path):
    """The password in ``path``, refusing files others can read or group can write."""
    def private(info):
        mode = stat.S_IMODE(info.st_mode)
        if mode & (stat.S_IRWXO | stat.S_IWGRP | stat.S_IXGRP):
            raise UsageError(
                f"password file {path} has mode {mode:04o}: others can read it or group can "
                f"write it; use chmod 600 (or 640 for a dedicated group)"
            )

    data = read_regular(path, "password file", MAX_PASSWORD_FILE, follow=False, vet=private)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"password file {path} is not UTF-8 text") from None
    for line in text.split("\n"):
        line = line[:-1] if line.endswith("\r") else line
        if line.strip(" \t\r"):
            return line
    raise UsageError(f"password file {path} is empty")


def password_from(path=None, env_var=None):
    """Password from ``path`` if given, else from ``env_var``, else None (anonymous)."""
    if path:
        return read_password_file(path)
    if env_var:
        value = os.environ.get(env_var)
        if value:
            return value
    return None
