"""Package life cycle: an upgrade keeps the administrator's edits and a running agent and
restarts a running worker, the removal stops the agent with every track file at 0 and the
worker, purge leaves no trace.

Runs last (file name order): it upgrades and finally purges the package.
"""

import contextlib
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

from harness import signalled
from harness.checks import MD5_SERVER1, SERVER1
from harness.debian import (SystemdStandIn, apt_get, deb_version, install, installed_version,
                            purge)
from harness.peers import certs
from harness.peers.agent import ALIVE_FILE, STATUS_FILE, FilePoller
from harness.peers.ports import free_port
from harness.peers.rawhttp import RawHTTPServer, http_response
from harness.peers.responder import Responder
from harness.wait import wait_for

CONFFILE = Path("/etc/kachecks/kachecks.toml")
# dpkg's and apt's own records, caches and logs change with any install.
BOOKKEEPING = ("/var/lib/dpkg", "/var/lib/apt", "/var/cache", "/var/log", "/var/tmp",
               "/var/backups")
WATCHED = ("/etc", "/usr", "/var")
STATE_DIR = Path("/run/kachecks")
TRACK_DIR = STATE_DIR / "track"  # the agent's default
WORKER = "kachecks-worker.service"


def plain_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("KACHECKS_")}


@contextlib.contextmanager
def running_agent(web):
    """`/usr/bin/kachecks agent` as an administrator runs it from the conffile (no systemd
    here: started by hand, detached), its web1 check up; killed at the end if still there,
    and the conffile as it was (while the package still has one)."""
    original = CONFFILE.read_text()
    CONFFILE.write_text(original + (
        '\n[agent]\nmetrics = ""\ninterval = 0.5\ntimeout = 0.3\n\n[[check]]\nname = "web1"\n'
        f'command = "/usr/bin/kachecks-http --url http://{web.address}/service.txt'
        f' --digest {MD5_SERVER1}"\n'))
    log = open("/tmp/kachecks-lifecycle-agent.log", "ab")
    proc = subprocess.Popen(["/usr/bin/kachecks", "agent"], env=plain_env(), stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_for_file(TRACK_DIR / "web1", "1\n", proc)
        wait_for_file(TRACK_DIR / ALIVE_FILE, "1\n", proc)
        yield proc
    finally:
        log.close()
        signalled.stop(proc, signal.SIGKILL, 10, what="kachecks agent")
        if CONFFILE.exists():
            CONFFILE.write_text(original)


def wait_for_file(path, text, proc, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if path.read_text() == text:
                return
        except FileNotFoundError:
            pass
        assert proc.poll() is None, Path("/tmp/kachecks-lifecycle-agent.log").read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path}: never {text!r}")


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


def test_upgrade_keeps_a_locally_edited_conffile_and_the_running_agent(deb, next_deb):
    """The agent keeps running through an upgrade and its files never drop to 0: stopping
    it is a failover, which an upgrade must not cause (a restart is the administrator's,
    on the backup director first)."""
    if installed_version() != deb_version(deb):
        install(deb)
    with Responder(http_response(SERVER1)) as web, running_agent(web) as agent:
        edited = CONFFILE.read_text() + "\n# local edit: mail the on-call alias\n"
        CONFFILE.write_text(edited)
        with FilePoller([TRACK_DIR / "web1", TRACK_DIR / ALIVE_FILE]) as poller:
            apt_get("install", str(next_deb.resolve()))
            runs = web.served
            wait_for(lambda: web.served >= runs + 2, 10, what="two runs after the upgrade")
        assert installed_version() == deb_version(next_deb)
        assert agent.poll() is None  # the same process, never stopped
        assert poller.reads > 100 and poller.unexpected == [], poller.unexpected[:10]
        assert signalled.stop(agent, signal.SIGTERM, 10, what="kachecks agent").returncode == 0
        assert CONFFILE.read_text() == edited
        st = CONFFILE.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o640)
        assert not Path(f"{CONFFILE}.dpkg-new").exists()
        assert not Path(f"{CONFFILE}.dpkg-dist").exists()


def run_by_worker(https):
    """The pid of the installed worker that ran a TLS check (as keepalived would fork
    it, through the default socket), or None if the check ran in-process."""
    done = subprocess.run(["/usr/bin/kachecks-http", "--url", https.url, "--digest",
                           MD5_SERVER1, "--verbose"],
                          env=plain_env(), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    marker = "(run by kachecks worker "
    for line in done.stdout.splitlines():
        if line.startswith(marker):
            return int(line[len(marker):].rstrip(")"))
    return None


def test_where_systemd_runs_an_upgrade_restarts_a_running_worker_on_the_new_code(
        deb, next_deb, tmp_path):
    """Shipped --no-start, kachecks-worker got debhelper's stop before the upgrade and a
    start nowhere: every TLS and LDAP check ran in-process from then on, unnoticed. A
    worker running before the upgrade runs after it, restarted on the new code."""
    if installed_version() != deb_version(deb):
        install(deb)
    systemd = SystemdStandIn(tmp_path / "systemd")
    env = plain_env()
    with RawHTTPServer(http_response(SERVER1),
                       tls=certs.self_signed(tmp_path / "tls", alt_names=("127.0.0.1",))) as https:
        try:
            before = systemd.start(WORKER, env)
            wait_for(lambda: run_by_worker(https) == before, 15, what="the worker serving")
            apt_get("install", str(next_deb.resolve()), systemd=systemd, env=env)
            assert installed_version() == deb_version(next_deb)
            after = systemd.pid(WORKER)
            assert after is not None, f"no worker after the upgrade: {systemd.calls()}"
            assert after != before, "the worker was not restarted: it runs the old code"
            calls = [call for call in systemd.calls() if WORKER in call]
            assert calls == [f"deb-systemd-invoke start {WORKER}",  # ours, before
                             f"deb-systemd-invoke try-restart {WORKER}"], systemd.calls()
            wait_for(lambda: run_by_worker(https) == after, 15,
                     what="the restarted worker serving")
        finally:
            systemd.stop_all(env)


def maintainer_script_calls(name, *args, tmp_path):
    """The commands the installed maintainer script ``name`` runs with ``args`` where systemd
    runs: in a mount namespace of its own with /run/systemd/system, every command it could
    act through (deb-systemd-invoke, systemctl, kachecks, py3clean…) a stand-in that only
    records its arguments. Nothing on the machine changes."""
    bindir = tmp_path / "standins"
    bindir.mkdir(exist_ok=True)
    log = tmp_path / "calls"
    log.write_text("")
    for command in ("deb-systemd-invoke", "deb-systemd-helper", "systemctl", "kachecks",
                    "py3clean", "py3compile", "pypy3compile", "systemd-tmpfiles"):
        standin = bindir / command
        standin.write_text(f'#!/bin/sh\necho "{command} $*" >> {log}\n')
        standin.chmod(0o755)
    script = Path(f"/var/lib/dpkg/info/kachecks.{name}")
    if not script.exists():
        return []
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         'mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec sh "$@"', "sh",
         str(script), *args],
        env={**plain_env(), "PATH": f"{bindir}:/usr/sbin:/usr/bin:/sbin:/bin"},
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return log.read_text().splitlines()


def test_where_systemd_runs_an_upgrade_never_stops_the_agent_and_the_removal_does(
        deb, next_deb, tmp_path):
    """debhelper's default for a unit shipped --no-start stopped kachecks-agent before every
    upgrade and started it nowhere: a failover and a director without checks."""
    if installed_version() is None:
        install(deb)
    upgrade = maintainer_script_calls("preinst", "upgrade", deb_version(deb), tmp_path=tmp_path)
    assert not [call for call in upgrade if "kachecks-agent" in call], upgrade
    assert not [call for call in maintainer_script_calls(
        "prerm", "upgrade", deb_version(next_deb), tmp_path=tmp_path) if "agent" in call]
    removal = maintainer_script_calls("prerm", "remove", tmp_path=tmp_path)
    assert removal[:2] == ["deb-systemd-invoke stop kachecks-agent.service",
                           "kachecks agent stop"], removal


def test_where_systemd_runs_an_install_starts_no_worker_and_the_removal_stops_it(
        deb, next_deb, tmp_path):
    """The worker is the administrator's choice: a first install starts none, an upgrade
    restarts only a running one (systemd's try-restart), the removal stops it (left
    running, it would serve from removed files)."""
    if installed_version() is None:
        install(deb)
    first = maintainer_script_calls("postinst", "configure", tmp_path=tmp_path)
    assert not [call for call in first if "deb-systemd-invoke" in call and WORKER in call]
    upgrade = maintainer_script_calls("postinst", "configure", deb_version(deb),
                                      tmp_path=tmp_path)
    assert [call for call in upgrade if WORKER in call and "invoke" in call] == [
        f"deb-systemd-invoke try-restart {WORKER}"], upgrade
    removal = maintainer_script_calls("prerm", "remove", tmp_path=tmp_path)
    assert f"deb-systemd-invoke stop {WORKER}" in removal, removal


def test_removal_stops_the_running_agent_and_sets_its_files_to_0(deb):
    """After the removal nothing could zero the files (the unit and `kachecks agent zero`
    are gone) and keepalived would believe the last 1 for ever: the removal stops the agent
    (the prerm's `kachecks agent stop`, as no systemd runs here) while it still can."""
    if installed_version() is None:
        install(deb)
    try:
        with Responder(http_response(SERVER1)) as web, running_agent(web) as agent:
            apt_get("remove", "kachecks")
            assert installed_version() is None
            assert agent.wait(15) == 0  # SIGTERM: the agent's own fail-closed stop, not a kill
            assert (TRACK_DIR / "web1").read_text() == "0\n"
            assert (TRACK_DIR / ALIVE_FILE).read_text() == "0\n"
            assert '"state":"stopped"' in (TRACK_DIR / STATUS_FILE).read_text()
    finally:
        purge()  # not only removed: the next test starts from a machine without it


def test_purge_removes_what_the_package_created_and_nothing_else(deb):
    if installed_version() is not None:
        purge()  # the dependencies stay installed: they are part of "before"
    before = snapshot()
    install(deb)
    assert Path("/var/spool/kachecks").is_dir() and STATE_DIR.is_dir()
    # Use it as keepalived would: a check leaves its state, an event waits in the spool.
    subprocess.run(["/usr/bin/kachecks-tcp", "--host", "127.0.0.1", "--port", str(free_port()),
                    "--timeout", "1"], env=plain_env(), capture_output=True, timeout=30)
    state_files = list(STATE_DIR.iterdir())
    assert state_files, "the check left no state in /run/kachecks"
    Path("/var/spool/kachecks/undelivered-event").write_text("INSTANCE VI_1 MASTER 100\n")
    password = Path("/etc/kachecks/smtp-password")  # the administrator's, not the package's
    password.write_text("secret\n")
    password.chmod(0o600)
    try:
        with Responder(http_response(SERVER1)) as web, running_agent(web) as agent:
            purge()
            assert agent.wait(15) == 0  # stopped by the removal, not left without its unit
        after = snapshot()
        assert difference(before, after) == {
            "added": ["/etc/kachecks", str(password)], "removed": [], "changed": []}
        # /run is not snapshotted: checks run by anything else may recreate the directory.
        assert not [f for f in state_files if f.exists()]
    finally:
        password.unlink(missing_ok=True)
        if Path("/etc/kachecks").is_dir():
            Path("/etc/kachecks").rmdir()
