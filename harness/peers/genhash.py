"""keepalived's /usr/bin/genhash, the oracle, and ``kachecks genhash``, run side by side."""

import re
import subprocess
import sys
from pathlib import Path

from harness.peers import cli

KEEPALIVED_GENHASH = "/usr/bin/genhash"
_USECS = re.compile(rb"(Global response time for \[.*\] = )\d+( usecs)")


def run_keepalived(*args, timeout=30):
    """keepalived's genhash, bytes out (its -v output is not always UTF-8)."""
    return subprocess.run([KEEPALIVED_GENHASH, *map(str, args)], capture_output=True, timeout=timeout)


def run_ours(*args, timeout=30):
    return subprocess.run(ours_command() + ["genhash", *map(str, args)],
                          capture_output=True, timeout=timeout)


def ours_command():
    """The ``kachecks`` console script, or ``python -m kachecks`` where none is
    installed beside the interpreter (Debian's /usr/bin/python3 in a checkout)."""
    command = cli.command("kachecks")
    return command if Path(command[0]).exists() else [sys.executable, "-m", "kachecks"]


def without_usecs(output):
    """Verbose output with the response-time value (the one allowed difference) masked."""
    return _USECS.sub(rb"\1N\2", output)
