"""Fixtures for ``kachecks doctor``: run it as an administrator does, read what it says."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from harness.peers import cli

CORPUS = Path(__file__).parent / "corpus"


class Run:
    """One ``kachecks doctor`` run: exit code, stdout, stderr and the findings as dicts."""

    def __init__(self, done, as_json):
        self.code = done.returncode
        self.stdout = done.stdout
        self.stderr = done.stderr
        self.findings = json.loads(done.stdout) if as_json and done.returncode in (0, 1) \
            and done.stdout.strip() else []

    def where(self):
        """{(file, line, severity, code)} of the findings."""
        return {(f["file"], f["line"], f["severity"], f["code"]) for f in self.findings}

    def __repr__(self):
        return f"Run(code={self.code}, stdout={self.stdout!r}, stderr={self.stderr!r})"


def run_doctor(*args, cwd=None, as_json=True, keepalived=False, timeout=120, prefix=(), command=None):
    """``kachecks doctor ARGS`` (``--json``, and ``--no-keepalived`` unless asked for).

    ``command``: how to start kachecks (default: the console script under test).
    """
    argv = [*prefix, *(command or cli.command("kachecks")), "doctor", *map(str, args)]
    if as_json:
        argv.append("--json")
    if not keepalived:
        argv.append("--no-keepalived")
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env=dict(os.environ, COLUMNS="100"))
    return Run(done, as_json)


@pytest.fixture
def doctor():
    """doctor(*args, cwd=None, as_json=True, keepalived=False, prefix=(), command=None) -> Run."""
    return run_doctor


@pytest.fixture
def corpus():
    """The directory of the configurations with planted problems."""
    return CORPUS


@pytest.fixture
def write(tmp_path):
    """write(name, text, mode=0o644) -> Path under the test's directory."""
    def make(name, text, mode=0o644):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.chmod(path, mode)
        return path

    return make
