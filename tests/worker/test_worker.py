"""`kachecks worker`: same output and exit codes as in-process, or a fallback."""

import os
import pwd
import re
import signal
import socket
import subprocess
import time

import pytest

from harness import signalled
from harness.checks import MD5_SERVER1 as MD5
from harness.peers import cli
from harness.wait import wait_for
from kachecks.worker import protocol, server
from kachecks.worker.protocol import Declined


def test_tls_check_runs_in_the_worker_with_the_same_result(worker, https):
    proc = cli.run("kachecks-http", "--url", https.url, "--digest", MD5, "--verbose")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("HTTP OK - 200 OK")
    assert f"(run by kachecks worker {worker.pid})" in proc.stdout


@pytest.mark.parametrize("args,code", [
    (["--digest", "0" * 32], 1),
    (["--digest", MD5, "--dynamic", "--weight", "7"], 9),
    (["--digest", "not-hex"], 1),
    (["--no-such-option"], 1),
])
def test_worker_and_in_process_exit_codes_agree(worker, https, args, code):
    delegated = cli.run("kachecks-http", "--url", https.url, *args)
    local = cli.run("kachecks-http", "--url", https.url, *args,
                    env={"KACHECKS_WORKER_SOCKET": "/nonexistent/worker.sock"})
    assert delegated.returncode == local.returncode == code
    assert timeless(delegated.stdout) == timeless(local.stdout)
    assert delegated.stderr == local.stderr


def timeless(text):
    return re.sub(r"\d+\.\d+ s\b", "N s", text)


def test_plain_checks_are_not_delegated(worker):
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        port = listener.getsockname()[1]
        proc = cli.run("kachecks-tcp", "--host", "127.0.0.1", "--port", port, "--verbose")
    finally:
        listener.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "run by kachecks worker" not in proc.stdout


def test_absent_worker_falls_back_to_in_process(https, tmp_path):
    stale = tmp_path / "stale.sock"
    stale.touch()  # a path that exists but is no socket
    proc = cli.run("kachecks-http", "--url", https.url, "--digest", MD5, "--verbose",
                   env={"KACHECKS_WORKER_SOCKET": str(stale)})
    assert proc.returncode == 0
    assert "run by kachecks worker" not in proc.stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_signal_to_a_delegated_check_exits_1_promptly(worker, hanging_https, signum):
    proc = subprocess.Popen(cli.command("kachecks-http") + ["--url", hanging_https.url,
                                                            "--timeout", "20", "--verbose"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ))
    wait_for(lambda: hanging_https.peers, 10, what="the worker's child to connect")
    sent = time.monotonic()
    done = signalled.stop(proc, signum, 5)
    elapsed = time.monotonic() - sent
    out, err = done.stdout, done.stderr
    assert proc.returncode == 1, out + err
    assert elapsed < 0.5
    # the worker's child reports it, as the check in-process would
    assert out.startswith(f"HTTP FAIL - terminated by {signal.Signals(signum).name}\n"), out
    assert f"(run by kachecks worker {worker.pid})" in out
    assert err == ""


def test_worker_runs_the_check_as_the_calling_user(worker, https, open_dir, other_user):
    nobody = pwd.getpwnam("nobody")
    os.chmod(os.environ["KACHECKS_WORKER_SOCKET"], 0o666)
    state = open_dir / "nobody-state"
    state.mkdir()
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    # a client process of another user, as keepalived_script would be
    done = subprocess.run(cli.command("kachecks-http") + ["--url", https.url, "--verbose"],
                          capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, KACHECKS_STATE_DIR=str(state)),
                          user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("HTTP OK")
    assert f"(run by kachecks worker {worker.pid})" in done.stdout
    files = list(state.iterdir())
    assert files and all(f.stat().st_uid == nobody.pw_uid for f in files)


def test_requests_naming_anything_but_a_registered_check_are_declined():
    with pytest.raises(Declined, match="not a check"):
        protocol.read_request(protocol.request("os", "x", ["--help"], {}), server.checks())
    with pytest.raises(Declined, match="version"):
        protocol.read_request(b"GET / HTTP/1.0\0\0\0\0\0", server.checks())


def test_request_round_trip_keeps_argv_bytes_and_environment():
    environ = {b"KACHECKS_LDAP_PASSWORD": b"pw=with=equals", b"LANG": b"C"}
    argv = ["--filter", "(dc=mysite)", "caf\udce9"]
    name, prog, env, decoded = protocol.read_request(
        protocol.request("kachecks-ldap", "kachecks check ldap", argv, environ), server.checks())
    assert (name, prog) == ("ldap", "kachecks check ldap")
    assert decoded == argv
    assert env == environ
