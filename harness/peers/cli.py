"""Run kachecks executables the way keepalived does: as separate processes.

By default the console scripts beside the running interpreter (the dev venv)
are used; ``KACHECKS_BIN_DIR=/usr/bin`` points the same tests at an installed
package.
"""

import os
import subprocess
import sys
from pathlib import Path


def bin_dir():
    return Path(os.environ.get("KACHECKS_BIN_DIR") or Path(sys.executable).parent)


def command(name):
    """argv prefix for executable ``name`` (``kachecks``, ``kachecks-http``…)."""
    return [str(bin_dir() / name)]


def run(name, *args, env=None, timeout=30, input=None):
    """Run ``name args…``; return CompletedProcess with text stdout/stderr."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(
        command(name) + [str(a) for a in args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        input=input,
    )
