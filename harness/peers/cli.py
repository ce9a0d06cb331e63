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


def script_word(path):
    """``path`` as one word of a keepalived script line (``misc_path "…"``, ``script "…"``,
    ``notify "…"``): keepalived splits the line at blanks and groups '…', so a path with
    a blank (a checkout in "/srv/my checkout") goes in single quotes. A quote or a
    backslash cannot be carried the same way by keepalived 2.2.7 and 2.3.3: ValueError,
    which says so."""
    text = str(path)
    if any(c in text for c in "'\"\\"):
        raise ValueError(f"{text}: a path with a quote or a backslash cannot be written in a"
                         " keepalived script line: run the tests from a checkout without one")
    return f"'{text}'" if any(c in text for c in " \t") else text


def script_command(name):
    """Executable ``name`` as the first word of a keepalived script line (script_word)."""
    return script_word(bin_dir() / name)


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
