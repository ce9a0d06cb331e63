"""Failures: one line, the documented exit code, never a traceback.

keepalived's genhash prints network errors on stdout and exits 0 (upstream
issue #766); kachecks genhash prints the same words on stderr and exits 1.
Both sides of that documented difference are pinned here.
"""

import os
import subprocess
import time

import pytest

from harness.peers.genhash import KEEPALIVED_GENHASH, ours_command, run_ours, without_usecs
from harness.peers.rawhttp import DroppingListener, RawHTTPServer


def one_line_failure(result):
    assert result.returncode == 1
    assert b"Traceback" not in result.stderr
    assert result.stderr.count(b"\n") == 1, result.stderr
    return result.stderr.decode()


def test_connection_refused(keepalived_genhash, unused_port):
    args = ["-s", "127.0.0.1", "-p", unused_port, "-u", "/service.txt"]
    theirs = keepalived_genhash(*args)
    assert (theirs.returncode, theirs.stdout) == (0, b"Connection failed\n")
    ours = run_ours(*args)
    assert ours.stdout == b""
    assert one_line_failure(ours) == f"Connection failed (127.0.0.1:{unused_port}: connection refused)\n"


@pytest.mark.slow
def test_server_that_accepts_and_never_answers(keepalived_genhash):
    with RawHTTPServer(hang=True) as server:
        args = ["-t", "1", "-s", "127.0.0.1", "-p", server.port, "-u", "/service.txt"]
        theirs = keepalived_genhash(*args)
        ours = run_ours(*args)
    assert (theirs.returncode, theirs.stdout) == (0, b"Timeout WEB read\n")
    assert ours.stdout == b""
    assert one_line_failure(ours).startswith("Timeout WEB read (127.0.0.1:")


@pytest.mark.slow
def test_dripping_server_is_bounded_by_the_total_deadline():
    with RawHTTPServer(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 100, drip=0.2) as server:
        ours = run_ours("-t", "1", "-s", "127.0.0.1", "-p", server.port, "-u", "/drip")
    assert one_line_failure(ours).startswith("Timeout HTTP read (127.0.0.1:")


def test_verbose_failure_still_prints_response_time(keepalived_genhash, unused_port):
    args = ["-v", "-s", "127.0.0.1", "-p", unused_port, "-u", "/x"]
    theirs = keepalived_genhash(*args)
    ours = run_ours(*args)
    assert theirs.stdout.startswith(b"Connection failed\n\nGlobal response time for [/x] = ")
    assert ours.stdout.startswith(b"\nGlobal response time for [/x] = ")
    assert one_line_failure(ours).startswith("Connection failed")


@pytest.mark.parametrize("name, response", [
    ("lf-only", b"HTTP/1.0 200 OK\nContent-Length: 2\n\nhi"),
    ("header-over-4095-bytes", b"HTTP/1.0 200 OK\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\nbody"),
])
def test_no_header_end_is_no_data(keepalived_genhash, name, response):
    with RawHTTPServer(response) as server:
        args = ["-s", "127.0.0.1", "-p", server.port, "-u", f"/{name}"]
        theirs = keepalived_genhash(*args)
        ours = run_ours(*args)
        verbose_theirs = keepalived_genhash("-v", *args)
        verbose_ours = run_ours("-v", *args)
    assert (theirs.returncode, theirs.stdout) == (0, b"")
    assert theirs.stderr == b"no data received from remote webserver\n"
    assert ours.stdout == b""
    assert one_line_failure(ours).startswith("no data received from remote webserver")
    assert b"[ HTML hash final resulting ]" in verbose_theirs.stdout
    assert without_usecs(verbose_ours.stdout) == without_usecs(verbose_theirs.stdout)


def test_tls_against_a_plain_http_server(keepalived_genhash):
    with RawHTTPServer(b"HTTP/1.0 400 Bad Request\r\n\r\n", read_request="once") as server:
        args = ["-S", "-t", "2", "-s", "127.0.0.1", "-p", server.port, "-u", "/"]
        theirs = keepalived_genhash(*args)
        ours = run_ours(*args)
    assert theirs.stdout == b"SSL handshake/communication error connecting to\n"
    assert one_line_failure(ours).startswith("SSL handshake/communication error connecting to (")


@pytest.mark.parametrize("args, message", [
    (["-s", "127.0.0.1", "-p", "0", "-u", "/"], "invalid port number '0'"),
    (["-s", "127.0.0.1", "-p", "80x", "-u", "/"], "invalid port number '80x'"),
    (["-s", "127.0.0.1", "-p", "65536", "-u", "/"], "invalid port number '65536'"),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "-P", "2.0"], "invalid HTTP protocol version '2.0'"),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "-t", "1.5"], "invalid timeout '1.5'"),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "-t", "-1"], "invalid timeout '-1'"),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "-x"], "Unknown option -x"),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "--frobnicate"], "Unknown option --frobnicate"),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "-t"], "Missing parameter for option -t"),
    (["-s", "127.0.0.1", "-p", "80", "-u", "/", "stray"], "Unexpected argument(s): stray"),
])
def test_usage_errors_use_keepalived_words(keepalived_genhash, args, message):
    theirs = keepalived_genhash(*args)
    assert theirs.returncode == 1
    assert theirs.stderr.decode().startswith(message + "\n")
    ours = run_ours(*args)
    assert ours.stdout == b""
    assert one_line_failure(ours) == message + "\n"


@pytest.mark.parametrize("missing", ["-s", "-p", "-u"])
def test_missing_mandatory_option(keepalived_genhash, missing):
    full = {"-s": "127.0.0.1", "-p": "80", "-u": "/service.txt"}
    args = [word for flag, value in full.items() if flag != missing for word in (flag, value)]
    assert keepalived_genhash(*args).returncode == 1
    assert one_line_failure(run_ours(*args)).startswith(f"missing {missing} ")


def test_invalid_hash_algorithm():
    ours = run_ours("-s", "127.0.0.1", "-p", "80", "-u", "/", "-H", "crc32")
    assert one_line_failure(ours).startswith("invalid hash algorithm 'crc32'")


def test_host_name_accepted_where_keepalived_refuses(keepalived_genhash):
    with RawHTTPServer(b"HTTP/1.0 200 OK\r\n\r\nhello from Server 1\n") as server:
        args = ["-s", "localhost", "-p", server.port, "-u", "/service.txt"]
        theirs = keepalived_genhash(*args)
        ours = run_ours(*args)
    assert theirs.returncode == 1
    assert theirs.stderr.startswith(b"server should be an IP, not localhost\n")
    assert (ours.returncode, ours.stdout) == (0, b"5f2b4547f41470dc3e293e7267461575\n")
    assert b"\r\nHost: 127.0.0.1:%d\r\n" % server.port in server.requests[0]


def test_reset_after_the_body_is_a_read_error_without_digest(keepalived_genhash):
    with RawHTTPServer(b"HTTP/1.0 200 OK\r\n\r\nhello", reset=True) as server:
        args = ["-v", "-s", "127.0.0.1", "-p", server.port, "-u", "/reset"]
        theirs = keepalived_genhash(*args)
        ours = run_ours(*args)
    assert theirs.returncode == 0 and b"Read error with\n" in theirs.stdout
    assert b"HTML hash resulting" not in theirs.stdout
    assert one_line_failure(ours).startswith("Read error with (127.0.0.1:")
    assert without_usecs(ours.stdout) == without_usecs(theirs.stdout.replace(b"Read error with\n", b""))


@pytest.mark.slow
def test_connect_to_a_black_hole_times_out(keepalived_genhash):
    with DroppingListener() as hole:
        args = ["-t", "1", "-s", "127.0.0.1", "-p", hole.port, "-u", "/service.txt"]
        theirs = keepalived_genhash(*args)
        started = time.monotonic()
        ours = run_ours(*args)
        elapsed = time.monotonic() - started
    assert (theirs.returncode, theirs.stdout) == (0, b"Timeout connecting\n")
    assert one_line_failure(ours) == f"Timeout connecting (127.0.0.1:{hole.port}: timeout after 1 s during connect)\n"
    assert elapsed < 2.5


@pytest.fixture
def empty_netns():
    """A network namespace with only lo up: every other address is unreachable (needs root,
    like every namespace test: without it this fails, it is not skipped)."""
    name = f"kcgh-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield ["ip", "netns", "exec", name]
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


@pytest.mark.netns
def test_network_unreachable_in_current_keepalived_words(empty_netns):
    """The same failure as the installed genhash reports, in one wording whatever keepalived
    is installed: today's (2.2.8 on, "HTTP/SSL_CHECK - …"; 2.2.7 said "HTTP_CHECK - …")."""
    args = ["-t", "2", "-s", "192.168.8.101", "-p", "80", "-u", "/service.txt"]
    theirs = subprocess.run(empty_netns + [KEEPALIVED_GENHASH, *args], capture_output=True, timeout=30)
    ours = subprocess.run(empty_netns + ours_command() + ["genhash", *args], capture_output=True, timeout=30)
    assert theirs.returncode == 0
    assert theirs.stdout.endswith(b"_CHECK - network unreachable\n"), theirs.stdout
    assert one_line_failure(ours) == "HTTP/SSL_CHECK - network unreachable (192.168.8.101:80: network unreachable)\n"
