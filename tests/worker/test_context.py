"""A check run by the worker runs in its caller's context, or in the caller itself.

The worker's child takes the caller's uid, gid and supplementary groups and
joins the caller's network, mount, UTS, IPC and cgroup namespaces; a caller
in another user, PID or time namespace is declined and runs the check
in-process. Either way the check sees what it would have seen alone.
"""

import base64
import os
import pwd
import socket
import subprocess

import pytest

from harness.checks import MD5_SERVER1 as MD5
from harness.checks import SERVER1
from harness.peers import cli, netns
from harness.peers.rawhttp import RawHTTPServer, http_response
from harness.peers.worker import Worker

RUN_BY = "(run by kachecks worker "
GROUP = 4242  # a supplementary group no one else has; it needs no /etc/group entry


@pytest.fixture
def namespace():
    netns.cleanup_stale("kcw")
    prefix = netns.run_prefix("kcw")
    yield netns.create_namespace(f"{prefix}-a")
    netns.cleanup(prefix)


def http_check(*args):
    return cli.command("kachecks-http") + [str(a) for a in args]


def basic_auth(user, password):
    return b"Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode())


@pytest.mark.netns
def test_a_check_started_in_a_network_namespace_runs_there(worker, namespace, tls_pair):
    server = netns.made_in(namespace.name,
                           lambda: RawHTTPServer(http_response(SERVER1), tls=tls_pair))
    with server, socket.create_server(("127.0.0.1", server.port)) as decoy:
        # the same address and port outside the namespace: where the worker itself is
        done = namespace.run(http_check("--url", server.url, "--digest", MD5, "--verbose"))
        decoy.setblocking(False)
        with pytest.raises(BlockingIOError):
            decoy.accept()  # nothing connected from the worker's namespace
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("HTTP OK - 200 OK")
    assert f"{RUN_BY}{worker.pid})" in done.stdout
    assert len(server.requests) == 1


def test_a_check_started_in_a_mount_namespace_reads_its_files_there(worker, open_dir, https):
    private = open_dir / "private"
    private.mkdir()
    mount_and_run = ('mount -t tmpfs -o mode=0755 kachecks-test "$0" && umask 077'
                     ' && echo pw-only-here > "$0/password" && exec "$@"')
    done = subprocess.run(
        ["unshare", "--mount", "--", "sh", "-c", mount_and_run, str(private),
         *http_check("--url", https.url, "--user", "monitor",
                     "--password-file", private / "password", "--verbose")],
        capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{RUN_BY}{worker.pid})" in done.stdout
    assert basic_auth("monitor", "pw-only-here") in https.requests[0]
    assert not (private / "password").exists()  # it never existed outside


@pytest.mark.parametrize("unshare", [["--uts"], ["--ipc"], ["--cgroup"]])
def test_a_check_in_other_namespaces_the_worker_can_join_is_run_there(worker, https, unshare):
    done = subprocess.run(["unshare", *unshare, "--", *http_check("--url", https.url, "--digest",
                                                                  MD5, "--verbose")],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{RUN_BY}{worker.pid})" in done.stdout


@pytest.mark.parametrize("unshare,kind", [
    (["unshare", "--pid", "--fork"], "pid"),
    (["unshare", "--time", "--fork"], "time"),
    (["unshare", "--user", "--map-root-user"], "user"),
])
def test_a_check_in_a_namespace_the_worker_cannot_enter_runs_in_process(worker, https, unshare,
                                                                        kind):
    if kind == "user" and subprocess.run([*unshare, "true"]).returncode != 0:
        # unshare(2): EPERM for a chrooted process, as the tests are in another Debian's root
        pytest.skip("the kernel refuses user namespaces here: no caller can be in another")
    done = subprocess.run([*unshare, "--", *http_check("--url", https.url, "--digest", MD5,
                                                       "--verbose")],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("HTTP OK - 200 OK")
    assert RUN_BY not in done.stdout
    assert f"(kachecks worker declined: the caller is in another {kind} namespace)" in \
        done.stdout.splitlines()
    assert len(https.requests) == 1


@pytest.fixture
def as_nobody(worker, open_dir, other_user):
    """(nobody's passwd entry, a state directory of nobody's): the worker's socket open to
    nobody, whose checks run from a copy nobody can run."""
    nobody = pwd.getpwnam("nobody")
    os.chmod(os.environ["KACHECKS_WORKER_SOCKET"], 0o666)
    state = open_dir / "state"
    state.mkdir()
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    return nobody, state


def test_a_password_file_readable_through_a_supplementary_group_works_in_the_worker(
        worker, open_dir, https, as_nobody):
    nobody, state = as_nobody
    password = open_dir / "password"
    password.write_text("group-secret\n")
    os.chown(password, 0, GROUP)
    password.chmod(0o640)
    as_nobody = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": [GROUP]}
    args = http_check("--url", https.url, "--user", "monitor", "--password-file", password,
                      "--verbose")
    env = dict(os.environ, KACHECKS_STATE_DIR=str(state))
    local = subprocess.run(args, capture_output=True, text=True, timeout=30, **as_nobody,
                           env=dict(env, KACHECKS_WORKER_SOCKET="/nonexistent/worker.sock"))
    delegated = subprocess.run(args, capture_output=True, text=True, timeout=30, **as_nobody,
                               env=env)
    assert local.returncode == 0, local.stdout + local.stderr
    assert delegated.returncode == 0, delegated.stdout + delegated.stderr
    assert f"{RUN_BY}{worker.pid})" in delegated.stdout
    assert [basic_auth("monitor", "group-secret") in r for r in https.requests] == [True, True]


def test_a_worker_sandboxed_in_a_mount_namespace_reads_the_callers_files(open_dir, https,
                                                                          monkeypatch):
    # As systemd's ProtectSystem= runs kachecks-worker.service: a mount namespace of
    # its own, here one where the caller's password directory is hidden by a tmpfs.
    secrets = open_dir / "secrets"
    secrets.mkdir()
    (secrets / "password").write_text("host-secret\n")
    (secrets / "password").chmod(0o600)
    sandboxed = 'mount -t tmpfs -o mode=0755 kachecks-test "$0" && exec "$@"'
    in_sandbox = lambda argv: ["unshare", "--mount", "--", "sh", "-c", sandboxed,  # noqa: E731
                               str(secrets), *argv]
    with Worker(cli.command("kachecks"), open_dir / "worker.sock", launch=in_sandbox) as worker:
        monkeypatch.setenv("KACHECKS_WORKER_SOCKET", str(worker.socket))
        done = subprocess.run(http_check("--url", https.url, "--user", "monitor",
                                         "--password-file", secrets / "password", "--verbose"),
                              capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert RUN_BY in done.stdout
    assert basic_auth("monitor", "host-secret") in https.requests[0]


def test_a_check_started_where_its_user_cannot_open_the_directory_says_why_it_ran_itself(
        worker, open_dir, https, as_nobody):
    # As `sudo -u nobody kachecks-http …` typed in root's 0700 home: the working directory
    # cannot be handed over, so the check runs in-process, and --verbose says so.
    nobody, state = as_nobody
    roots_home = open_dir / "root-home"
    roots_home.mkdir(mode=0o700)
    done = subprocess.run(http_check("--url", https.url, "--digest", MD5, "--verbose"),
                          capture_output=True, text=True, timeout=30, cwd=roots_home,
                          user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[],
                          env=dict(os.environ, KACHECKS_STATE_DIR=str(state)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("HTTP OK - 200 OK"), done.stdout
    assert RUN_BY not in done.stdout
    assert ("(kachecks worker not used: the working directory cannot be opened:"
            " Permission denied)") in done.stdout.splitlines(), done.stdout
    assert len(https.requests) == 1
