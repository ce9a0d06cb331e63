"""The kachecks Debian package on this machine: its version, installing and purging it."""

import os
import subprocess
from pathlib import Path

PACKAGE = "kachecks"


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
