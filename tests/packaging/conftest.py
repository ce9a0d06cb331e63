"""Tests of the installed Debian package; collected only under scripts/test-deb.

scripts/test-deb builds the package, installs it and runs this directory
with KACHECKS_DEB_TESTS=1, KACHECKS_DEB (the .deb it installed) and
KACHECKS_DEB_NEXT (the same package one version up, for the upgrade test).
Without KACHECKS_DEB_TESTS=1 nothing here is collected (the dev suite must
not touch the system's packages); with it, a package that is not installed
is a failure, never a skip.
"""

import os
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "kachecks"

if os.environ.get("KACHECKS_DEB_TESTS") != "1":
    collect_ignore_glob = ["test_*.py"]


def executables():
    """Names pyproject.toml declares as console scripts: each must be in /usr/bin."""
    with open(REPO / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["scripts"])


def installed_version():
    """Version of the installed package, or None."""
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Status} ${Version}", PACKAGE],
        capture_output=True, text=True,
    )
    status, _, version = done.stdout.partition(" ")
    return version if done.returncode == 0 and status == "installed" else None


def deb_version(deb):
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True
    ).stdout.strip()


def apt_get(*args):
    """apt-get as a person runs it (no forced conffile answers); output kept for failures."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    done = subprocess.run(
        ["apt-get", "-y", "-q", *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, f"apt-get {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def install(deb):
    apt_get("install", "--allow-downgrades", str(Path(deb).resolve()))
    assert installed_version() == deb_version(deb)


def purge():
    apt_get("purge", PACKAGE)
    assert installed_version() is None


def _deb_from_env(name):
    value = os.environ.get(name)
    if not value or not Path(value).is_file():
        pytest.fail(f"${name} must name the built .deb (scripts/test-deb sets it), got {value!r}")
    return Path(value)


@pytest.fixture(scope="session")
def deb():
    """The package scripts/test-deb built and installed."""
    return _deb_from_env("KACHECKS_DEB")


@pytest.fixture(scope="session")
def next_deb():
    """The same package one version up."""
    return _deb_from_env("KACHECKS_DEB_NEXT")


@pytest.fixture
def installed(deb, monkeypatch):
    """The package is installed at the built version; executables come from /usr/bin."""
    version = installed_version()
    assert version == deb_version(deb), (
        f"{PACKAGE} {deb_version(deb)} must be installed (scripts/test-deb installs it), "
        f"found {version or 'none'}"
    )
    monkeypatch.setenv("KACHECKS_BIN_DIR", "/usr/bin")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    return version
