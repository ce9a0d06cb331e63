"""The total deadline and SIGTERM: a check never outlives --timeout or misc_timeout
(docs/reference.md, "The check contract")."""

import os
import signal
import subprocess
import time

import pytest

from harness import signalled
from harness.checks import http, one_line, tcp
from harness.peers import cli
from harness.peers.netns import create_namespace
from harness.peers.rawhttp import RawHTTPServer, http_response
from harness.wait import blocked, wait_for

BLACK_HOLE = "198.51.100.7"  # routed inside the namespace into a link that drops every packet


def timed(run, *args):
    started = time.monotonic()
    proc = run(*args)
    return proc, time.monotonic() - started


@pytest.fixture(scope="module")
def black_hole():
    """A namespace where BLACK_HOLE leaves by a veth whose peer is down: silently dropped.

    No ARP on the sending end and no carrier on the other: no reply, no ICMP error,
    exactly what a dead real server behind a switch looks like.
    """
    ns = create_namespace(f"kcck-bh-{os.getpid()}")
    try:
        ns.ip("link", "add", "v0", "type", "veth", "peer", "name", "v1")
        ns.ip("link", "set", "v0", "arp", "off")
        ns.ip("link", "set", "v0", "up")
        ns.ip("route", "add", "198.51.100.0/24", "dev", "v0")
        ns.ip("-6", "route", "add", "2001:db8::/32", "dev", "v0")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns.name], check=False)


@pytest.mark.netns
@pytest.mark.parametrize("check, args", [
    ("kachecks-http", ["--url", f"http://{BLACK_HOLE}/service.txt"]),
    ("kachecks-http", ["--url", "http://[2001:db8::7]/service.txt"]),
    ("kachecks-tcp", [f"{BLACK_HOLE}:80"]),
    ("kachecks-http", ["--url", f"https://{BLACK_HOLE}/service.txt", "--tls-verify"]),
])
def test_black_hole_times_out_in_connect_within_1_5_s(black_hole, check, args):
    started = time.monotonic()
    proc = black_hole.run([*cli.command(check), *args, "--timeout", "1"], env=dict(os.environ))
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert one_line(proc).endswith("timeout after 1 s during connect")
    assert elapsed < 1.5


@pytest.mark.slow
def test_accept_and_never_answer_times_out_waiting():
    with RawHTTPServer(hang=True) as srv:
        proc, elapsed = timed(http, "--url", f"http://{srv.address}/", "--timeout", "1")
    assert proc.returncode == 1 and one_line(proc) == "HTTP FAIL - timeout after 1 s during wait"
    assert elapsed < 1.5


@pytest.mark.slow
def test_server_dripping_a_byte_a_second_times_out_reading():
    with RawHTTPServer(http_response(b"x" * 100), drip=1.0) as srv:
        proc, elapsed = timed(http, "--url", f"http://{srv.address}/", "--timeout", "1")
        tcp_proc, tcp_elapsed = timed(tcp, f"127.0.0.1:{srv.port}", "--send", r"GET /\r\n\r\n",
                                      "--expect", "never", "--timeout", "1")
    assert proc.returncode == 1 and "timeout after 1 s during" in proc.stdout
    assert elapsed < 1.5
    assert tcp_proc.returncode == 1 and "timeout after 1 s during read" in tcp_proc.stdout
    assert tcp_elapsed < 1.5


@pytest.mark.slow
def test_hanging_tls_handshake_times_out():
    with RawHTTPServer(hang=True) as srv:
        proc, elapsed = timed(tcp, f"127.0.0.1:{srv.port}", "--tls", "--timeout", "1")
    assert proc.returncode == 1 and one_line(proc) == "TCP FAIL - timeout after 1 s during tls"
    assert elapsed < 1.5


@pytest.mark.parametrize("check, args", [
    ("kachecks-http", ["--url", "http://{address}/service.txt"]),
    ("kachecks-tcp", ["{address}", "--expect", "never"]),
])
def test_sigterm_mid_request_exits_1_within_half_a_second(check, args):
    with RawHTTPServer(hang=True) as srv:
        argv = [*cli.command(check), *[a.format(address=srv.address) for a in args],
                "--timeout", "20"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: srv.peers and blocked(proc.pid), 10,
                     what="the check to wait for the answer")
            sent = time.monotonic()
            done = signalled.stop(proc, signal.SIGTERM, 5)
            elapsed = time.monotonic() - sent
            out, err = done.stdout, done.stderr
        finally:
            signalled.stop(proc, signal.SIGKILL, 5)
    assert proc.returncode == 1
    assert out.endswith("FAIL - terminated by SIGTERM\n"), out + err
    assert elapsed < 0.5


@pytest.mark.parametrize("args, message", [
    ([], "no target"),
    (["--url", "ftp://127.0.0.1/"], "no target"),
    (["--url", "http://127.0.0.1:0/"], "port must be 1-65535"),
    (["--url", "http://127.0.0.1/", "--status", "abc"], "bad status list"),
    (["--url", "http://127.0.0.1/", "--digest", "1234"], "is not an md5, sha1 or sha256"),
    (["--url", "http://127.0.0.1/", "--http-protocol", "2"], "expected 1.0, 1.0c or 1.1"),
    (["--url", "http://127.0.0.1/", "--regex", "("], "bad regular expression"),
    (["--url", "http://127.0.0.1/", "--regex-no-match"], "--regex-no-match needs --regex"),
    (["--url", "http://127.0.0.1/", "--header", "no colon"], "expected 'Name: value'"),
    (["--url", "https://127.0.0.1/", "--sni"], "give --virtualhost"),
    (["--url", "http://127.0.0.1/", "--user", "admin"], "needs --password-file"),
    (["--url", "http://127.0.0.1/", "--password-file", "/etc/hostname"], "needs --user"),
    (["--url", "http://127.0.0.1/", "--user", "a", "--password-file", "/nonexistent"],
     "cannot read password file /nonexistent"),
    (["--url", "http://127.0.0.1/", "--timeout", "0"], "positive number"),
    (["--url", "http://127.0.0.1/", "--bogus"], "Unknown option --bogus"),
])
def test_bad_arguments_exit_1_with_one_line_never_2(args, message):
    for extra in ([], ["--dynamic"]):
        proc = http(*args, *extra)
        assert proc.returncode == 1 and proc.stdout == "", proc.stdout
        assert len(proc.stderr.splitlines()) == 1 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


def test_password_file_readable_by_others_is_refused(password_file):
    path = password_file(mode=0o644)
    proc = http("--url", "http://127.0.0.1:9/", "--user", "admin", "--password-file", path,
                "--dynamic")
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1
    assert f"password file {path} has mode 0644" in proc.stderr


def test_group_readable_password_file_is_accepted(password_file):
    with RawHTTPServer(http_response(b"ok")) as srv:
        proc = http("--url", f"http://{srv.address}/", "--user", "admin",
                    "--password-file", password_file(mode=0o640))
    assert proc.returncode == 0, proc.stderr


def test_nagios_usage_error_is_unknown_3():
    proc = http("--url", "http://127.0.0.1/", "--status", "x", "--nagios")
    assert proc.returncode == 3 and proc.stdout.startswith("HTTP UNKNOWN: ")
