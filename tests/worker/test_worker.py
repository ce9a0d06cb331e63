"""`kachecks worker`: same output and exit codes as in-process, or a fallback."""

import os
import pwd
import re
import signal
import socket
import subprocess
import time

import pytest

from harness.peers import certs, cli
from harness.peers.rawhttp import RawHTTPServer, http_response
from kachecks.worker.client import MAGIC, delegate, encode_request
from kachecks.worker.server import decode_request

BODY = b"hello from Server 1\n"
MD5 = "5f2b4547f41470dc3e293e7267461575"


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory):
    return certs.self_signed(tmp_path_factory.mktemp("tls"), "www.mysite.mydmn.org",
                             alt_names=("127.0.0.1",))


def https_server(tls_pair, body=BODY, **kw):
    return RawHTTPServer(http_response(body), tls=tls_pair, **kw)


def test_tls_check_runs_in_the_worker_with_the_same_result(worker, tls_pair):
    with https_server(tls_pair) as server:
        url = f"https://127.0.0.1:{server.port}/service.txt"
        proc = cli.run("kachecks-http", "--url", url, "--digest", MD5, "--verbose")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("HTTP OK - 200 OK")
    assert f"(run by kachecks worker {worker.pid})" in proc.stdout


@pytest.mark.parametrize("args,code", [
    (["--digest", "0" * 32], 1),
    (["--digest", MD5, "--dynamic", "--weight", "7"], 9),
    (["--digest", "not-hex"], 1),
    (["--no-such-option"], 1),
])
def test_worker_and_in_process_exit_codes_agree(worker, tls_pair, args, code):
    with https_server(tls_pair) as server:
        url = f"https://127.0.0.1:{server.port}/service.txt"
        delegated = cli.run("kachecks-http", "--url", url, *args)
        local = cli.run("kachecks-http", "--url", url, *args,
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


def test_absent_worker_falls_back_to_in_process(tls_pair, tmp_path):
    stale = tmp_path / "stale.sock"
    stale.touch()  # a path that exists but is no socket
    with https_server(tls_pair) as server:
        url = f"https://127.0.0.1:{server.port}/service.txt"
        proc = cli.run("kachecks-http", "--url", url, "--digest", MD5, "--verbose",
                       env={"KACHECKS_WORKER_SOCKET": str(stale)})
    assert proc.returncode == 0
    assert "run by kachecks worker" not in proc.stdout


def test_sigterm_to_a_delegated_check_exits_1_promptly(worker, tls_pair):
    with https_server(tls_pair, hang=True) as server:
        url = f"https://127.0.0.1:{server.port}/service.txt"
        proc = subprocess.Popen(cli.command("kachecks-http") + ["--url", url, "--timeout", "20"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ))
        time.sleep(1.0)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=5)
        elapsed = time.monotonic() - sent
    assert proc.returncode == 1, out + err
    assert elapsed < 0.5
    assert "terminated by SIGTERM" in out


def test_worker_runs_the_check_as_the_calling_user(worker, tls_pair, open_dir, monkeypatch):
    nobody = pwd.getpwnam("nobody")
    os.chmod(os.environ["KACHECKS_WORKER_SOCKET"], 0o666)
    state = open_dir / "nobody-state"
    state.mkdir()
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    monkeypatch.setenv("KACHECKS_STATE_DIR", str(state))
    with https_server(tls_pair) as server:
        url = f"https://127.0.0.1:{server.port}/service.txt"
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # a client process of another user, as keepalived_script would be
            code = 99
            try:
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                os.dup2(write_end, 1)
                os.dup2(write_end, 2)
                code = delegate("kachecks.checks.http", "kachecks-http", ["--url", url])
            finally:
                os._exit(99 if code is None else code)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            out = pipe.read()
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    assert out.startswith("HTTP OK")
    files = list(state.iterdir())
    assert files and all(f.stat().st_uid == nobody.pw_uid for f in files)


def test_requests_naming_other_modules_are_refused():
    payload = encode_request("os", "x", ["--help"])
    with pytest.raises(ValueError, match="not a check"):
        decode_request(payload)
    with pytest.raises(ValueError):
        decode_request(b"GET / HTTP/1.0\0\0\0\0\0")


def test_request_round_trip_keeps_argv_bytes_and_environment(monkeypatch):
    monkeypatch.setenv("KACHECKS_LDAP_PASSWORD", "pw=with=equals")
    argv = ["--filter", "(dc=mysite)", "caf\udce9"]
    module, prog, cwd, env, decoded = decode_request(
        encode_request("kachecks.checks.ldap", "kachecks-ldap", argv))
    assert (module, prog, cwd) == ("kachecks.checks.ldap", "kachecks-ldap", os.getcwd())
    assert decoded == argv
    assert env[b"KACHECKS_LDAP_PASSWORD"] == b"pw=with=equals"
    assert MAGIC == b"KAW1"
