"""Tests of the installed Debian package; collected only with KACHECKS_DEB_TESTS=1.

Two runners set it. autopkgtest runs packaging/debian/tests/control (every test
here but the life cycle) against the package it installed, as Debian's CI
does; scripts/test-deb runs that through ``autopkgtest … -- null`` with
KACHECKS_DEB (the .deb it built), then the life cycle test itself with
KACHECKS_DEB_NEXT (the same package one version up) too. Without
KACHECKS_DEB_TESTS=1 nothing here is collected (the dev suite must not touch
the system's packages); with it, a package that is not installed is a
failure, never a skip.
"""

import os
from pathlib import Path

import pytest

from harness.debian import PACKAGE, deb_version, installed_version

if os.environ.get("KACHECKS_DEB_TESTS") != "1":
    collect_ignore_glob = ["test_*.py"]


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
def installed(monkeypatch):
    """The package is installed (at the built version, when KACHECKS_DEB names the
    .deb); executables come from /usr/bin."""
    version = installed_version()
    assert version, f"{PACKAGE} must be installed (autopkgtest or scripts/test-deb installs it)"
    if os.environ.get("KACHECKS_DEB"):
        built = deb_version(_deb_from_env("KACHECKS_DEB"))
        assert version == built, f"{PACKAGE} {built} must be installed, found {version}"
    monkeypatch.setenv("KACHECKS_BIN_DIR", "/usr/bin")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    return version
