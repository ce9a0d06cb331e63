"""Package life cycle: an upgrade keeps the administrator's edits, purge leaves no trace.

Runs last (file name order): it upgrades and finally purges the package.
"""

import os
import stat
import subprocess
from pathlib import Path

from harness.debian import apt_get, deb_version, install, installed_version, purge
from harness.peers.ports import free_port

CONFFILE = Path("/etc/kachecks/kachecks.toml")
# dpkg's and apt's own records, caches and logs change with any install.
BOOKKEEPING = ("/var/lib/dpkg", "/var/lib/apt", "/var/cache", "/var/log", "/var/tmp",
               "/var/backups")
WATCHED = ("/etc", "/usr", "/var")
STATE_DIR = Path("/run/kachecks")


def describe(path):
    """(type, mode, uid, gid, link target or size of a file in /etc)."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        extra = os.readlink(path)
    elif stat.S_ISREG(st.st_mode) and path.startswith("/etc/"):
        extra = st.st_size
    else:
        extra = None
    return stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, extra


def snapshot():
    """path -> describe(path) for everything under WATCHED but dpkg's and apt's bookkeeping."""
    entries = {}
    for top in WATCHED:
        if os.path.lexists(top):
            entries[top] = describe(top)
        for root, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if os.path.join(root, d) not in BOOKKEEPING]
            for name in [*dirs, *files]:
                path = os.path.join(root, name)
                try:
                    entries[path] = describe(path)
                except FileNotFoundError:
                    pass  # a temporary file of some other process
    return entries


def difference(before, after):
    return {
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "changed": sorted(p for p in set(before) & set(after) if before[p] != after[p]),
    }


def test_upgrade_keeps_a_locally_edited_conffile(deb, next_deb):
    if installed_version() != deb_version(deb):
        install(deb)
    edited = CONFFILE.read_text() + "\n# local edit: mail the on-call alias\n"
    CONFFILE.write_text(edited)
    apt_get("install", str(next_deb.resolve()))
    assert installed_version() == deb_version(next_deb)
    assert CONFFILE.read_text() == edited
    st = CONFFILE.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o640)
    assert not Path(f"{CONFFILE}.dpkg-new").exists()
    assert not Path(f"{CONFFILE}.dpkg-dist").exists()


def test_purge_removes_what_the_package_created_and_nothing_else(deb):
    if installed_version() is not None:
        purge()  # the dependencies stay installed: they are part of "before"
    before = snapshot()
    install(deb)
    assert Path("/var/spool/kachecks").is_dir() and STATE_DIR.is_dir()
    # Use it as keepalived would: a check leaves its state, an event waits in the spool.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KACHECKS_")}
    subprocess.run(["/usr/bin/kachecks-tcp", "--host", "127.0.0.1", "--port", str(free_port()),
                    "--timeout", "1"], env=env, capture_output=True, timeout=30)
    state_files = list(STATE_DIR.iterdir())
    assert state_files, "the check left no state in /run/kachecks"
    Path("/var/spool/kachecks/undelivered-event").write_text("INSTANCE VI_1 MASTER 100\n")
    password = Path("/etc/kachecks/smtp-password")  # the administrator's, not the package's
    password.write_text("secret\n")
    password.chmod(0o600)
    try:
        purge()
        after = snapshot()
        assert difference(before, after) == {
            "added": ["/etc/kachecks", str(password)], "removed": [], "changed": []}
        # /run is not snapshotted: checks run by anything else may recreate the directory.
        assert not [f for f in state_files if f.exists()]
    finally:
        password.unlink(missing_ok=True)
        if Path("/etc/kachecks").is_dir():
            Path("/etc/kachecks").rmdir()
