"""kachecks genhash against keepalived's /usr/bin/genhash on the same servers.

Each test serves one reply, runs both tools, and demands identical stdout
(and identical -v output apart from the response-time value).
"""

import hashlib
import time

import pytest

from harness.peers.genhash import run_ours, without_usecs
from harness.peers.rawhttp import RawHTTPServer, body_stream, http_response

SERVER1 = b"hello from Server 1\n"
SERVER2 = b"Hello from Server2\n"


def both(keepalived_genhash, *args):
    ours, theirs = run_ours(*args), keepalived_genhash(*args)
    assert theirs.returncode == 0, theirs
    assert ours.returncode == 0, ours
    assert ours.stderr == b""
    return ours, theirs


def same_digest(keepalived_genhash, server, path="/", *extra):
    args = ["-s", server.host, "-p", server.port, "-u", path, *extra]
    ours, theirs = both(keepalived_genhash, *args)
    assert ours.stdout == theirs.stdout
    return ours.stdout.decode().strip()


def same_verbose(keepalived_genhash, server, path="/", *extra):
    args = ["-v", "-s", server.host, "-p", server.port, "-u", path, *extra]
    ours, theirs = both(keepalived_genhash, *args)
    assert b"Global response time for [%s] = " % path.encode() in ours.stdout
    assert without_usecs(ours.stdout) == without_usecs(theirs.stdout)
    return ours.stdout


def test_plain_body_from_pytest_httpserver(keepalived_genhash, httpserver):
    httpserver.expect_request("/plain").respond_with_data("hello world\n")
    args = ["-s", "127.0.0.1", "-p", httpserver.port, "-u", "/plain"]
    ours, theirs = both(keepalived_genhash, *args)
    assert ours.stdout == theirs.stdout == b"6f5902ac237024bdd0c176cb93063dc4\n"


@pytest.mark.parametrize("body, digest", [
    (SERVER1, "5f2b4547f41470dc3e293e7267461575"),
    (SERVER2, "fe020663a9ac3e61b71f6921d423251d"),
])
def test_reference_deployment_bodies(keepalived_genhash, httpserver, body, digest):
    httpserver.expect_request("/service.txt").respond_with_data(body, content_type="text/plain")
    args = ["-s", "127.0.0.1", "-p", httpserver.port, "-u", "/service.txt"]
    ours, theirs = both(keepalived_genhash, *args)
    assert ours.stdout == theirs.stdout == f"{digest}\n".encode()


@pytest.mark.parametrize("status", [404, 302])
def test_status_code_is_ignored_like_keepalived(keepalived_genhash, httpserver, status):
    headers = {"Location": "/elsewhere"} if status == 302 else None
    httpserver.expect_request("/page").respond_with_data(b"not here\n", status=status, headers=headers)
    args = ["-s", "127.0.0.1", "-p", httpserver.port, "-u", "/page"]
    ours, theirs = both(keepalived_genhash, *args)
    assert ours.stdout == theirs.stdout == (hashlib.md5(b"not here\n").hexdigest() + "\n").encode()


@pytest.mark.parametrize("name, response, hashed", [
    ("empty", http_response(b""), b""),
    ("binary-nuls", http_response(bytes(range(256)) * 3), bytes(range(256)) * 3),
    ("chunked-raw", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     b"5\r\nhello\r\n0\r\n\r\n"),
    ("cl-exact", b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
    ("cl-shorter", b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nhello", b"hel"),
    ("cl-longer", b"HTTP/1.0 200 OK\r\nContent-Length: 99\r\n\r\nhello", b"hello"),
    ("cl-lowercase", b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\nhello", b"hello"),
    ("cl-trailing-space", b"HTTP/1.0 200 OK\r\nContent-Length: 3 \r\n\r\nhello", b"hello"),
    ("cl-zero", b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\nhello", b""),
    ("cl-in-first-body-read", b"HTTP/1.0 200 OK\r\n\r\nxx\r\nContent-Length: 3\r\nyy", b"xx\r"),
    ("no-reason-phrase", b"HTTP/1.1 200\r\n\r\nbody", b"body"),
    ("header-with-nul", b"HTTP/1.0 200 OK\r\nX: a\0b\r\nContent-Length: 2\r\n\r\nbody", b"body"),
    # the interim reply is taken as the header; the real one's Content-Length
    # (found in the first read) then cuts the "body" to 2 bytes
    ("interim-100-continue", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
     b"HT"),
])
def test_body_rules_match_keepalived(keepalived_genhash, name, response, hashed):
    with RawHTTPServer(response) as server:
        digest = same_digest(keepalived_genhash, server, f"/{name}")
        same_verbose(keepalived_genhash, server, f"/{name}")
    assert digest == hashlib.md5(hashed).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("segments, body, header_reads", [
    ([b"HTTP/1.0 200 OK\r\nContent-Le", b"ngth: 12\r\n\r", b"\nhello ", b"world\n"], b"hello world\n", 3),
    ([b"HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\nhel", b"lo w", b"orld"], b"hello w", 1),
    ([b"HTTP/1.0 200 OK\r\n\r\n", b"first read ", b"second read\n"], b"first read second read\n", 1),
])
def test_segmented_replies_dump_per_read_like_keepalived(keepalived_genhash, segments, body, header_reads):
    with RawHTTPServer(segments, pause=0.3) as server:  # one read per segment, even on a busy CI
        out = same_verbose(keepalived_genhash, server, "/split")
        assert same_digest(keepalived_genhash, server, "/split") == hashlib.md5(body).hexdigest()
    assert out.count(b"[    HTTP Header Buffer    ]") == header_reads


def test_body_over_10_mb(keepalived_genhash):
    stream, digest = body_stream(12 * 1024 * 1024 + 7)
    with RawHTTPServer(stream) as server:
        assert same_digest(keepalived_genhash, server, "/big") == digest


@pytest.mark.parametrize("mode, line, connection", [
    ("1.0", b"GET /m HTTP/1.0\r\n", b""),
    ("1.0c", b"GET /m HTTP/1.0\r\n", b"Connection: close\r\n"),
    ("1.0C", b"GET /m HTTP/1.0\r\n", b"Connection: close\r\n"),
    ("1.1", b"GET /m HTTP/1.1\r\n", b"Connection: close\r\n"),
])
def test_request_bytes_per_protocol_mode(keepalived_genhash, mode, line, connection):
    with RawHTTPServer(http_response(SERVER1)) as server:
        same_digest(keepalived_genhash, server, "/m", "-P", mode)
    expected = (line + b"User-Agent: KeepAliveClient\r\n" + connection
                + b"Host: 127.0.0.1:%d\r\n\r\n" % server.port)
    assert server.requests == [expected, expected]


def test_empty_virtual_host_sends_an_empty_host_header(keepalived_genhash):
    with RawHTTPServer(http_response(SERVER1)) as server:
        same_digest(keepalived_genhash, server, "/", "-V", "")
    assert server.requests[0] == server.requests[1]
    assert server.requests[0].endswith(b"\r\nHost: \r\n\r\n")


def test_path_is_sent_verbatim_and_last_url_wins(keepalived_genhash):
    with RawHTTPServer(http_response(SERVER2)) as server:
        args = ["-s", "127.0.0.1", "-p", server.port, "-u", "/first", "-u", "/a b?c=%zz"]
        ours, theirs = both(keepalived_genhash, *args)
    assert ours.stdout == theirs.stdout
    assert server.requests[0] == server.requests[1]
    assert server.requests[0].startswith(b"GET /a b?c=%zz HTTP/1.0\r\n")


def test_ipv6_loopback_host_header(keepalived_genhash):
    with RawHTTPServer(http_response(SERVER1), host="::1") as server:
        assert same_digest(keepalived_genhash, server, "/v6") == "5f2b4547f41470dc3e293e7267461575"
    assert server.requests[0] == server.requests[1]
    assert b"Host: [::1]:%d\r\n" % server.port in server.requests[0]


@pytest.mark.parametrize("close_notify", [False, True])
def test_tls_self_signed(keepalived_genhash, tls_cert, close_notify):
    with RawHTTPServer(http_response(SERVER1), tls=tls_cert, close_notify=close_notify) as server:
        assert same_digest(keepalived_genhash, server, "/tls", "-S") == "5f2b4547f41470dc3e293e7267461575"
        verbose = same_verbose(keepalived_genhash, server, "/tls", "-S")
    assert server.sni == [None] * 4
    assert (b"[    HTML hash resulting    ]" in verbose) == close_notify


@pytest.mark.parametrize("use_sni", [False, True])
def test_virtual_host_and_sni(keepalived_genhash, tls_cert, use_sni):
    extra = ["-S", "-V", "www.mysite.mydmn.org"] + (["-I"] if use_sni else [])
    with RawHTTPServer(http_response(SERVER2), tls=tls_cert) as server:
        same_digest(keepalived_genhash, server, "/vhost", *extra)
    assert server.sni == (["www.mysite.mydmn.org"] * 2 if use_sni else [None, None])
    assert server.requests[0] == server.requests[1]
    assert b"\r\nHost: www.mysite.mydmn.org\r\n\r\n" in server.requests[0]


@pytest.mark.slow
def test_never_closing_server_times_out_with_t(keepalived_genhash):
    with RawHTTPServer(http_response(SERVER1), close=False) as server:
        args = ["-t", "1", "-s", "127.0.0.1", "-p", server.port, "-u", "/keepalive", "-P", "1.1"]
        theirs = keepalived_genhash(*args)
        started = time.monotonic()
        ours = run_ours(*args)
        elapsed = time.monotonic() - started
    assert (theirs.returncode, theirs.stdout) == (0, b"Timeout HTTP read\n")
    assert ours.returncode == 1 and ours.stdout == b""
    assert ours.stderr.startswith(b"Timeout HTTP read (") and ours.stderr.count(b"\n") == 1
    assert elapsed < 3


def test_verbose_escapes_a_peers_terminal_controls_and_keeps_keepalived_dump(keepalived_genhash):
    """A header carrying ESC and BEL (a terminal title, a screen clear): keepalived prints them
    raw; ours writes them escaped in the ASCII part, every other byte of -v as keepalived's."""
    evil = b"\x1b]0;owned\x07\x1b[2J\rX"
    reply = http_response(SERVER1, headers={"X-Evil": evil})
    with RawHTTPServer(reply) as server:
        args = ["-v", "-s", server.host, "-p", server.port, "-u", "/service.txt"]
        ours, theirs = both(keepalived_genhash, *args)
    assert evil in theirs.stdout  # the oracle: raw bytes to the terminal
    for control in (b"\x1b", b"\x07"):
        assert control not in ours.stdout
    assert b"X-Evil: \\x1b]0;owned\\x07\\x1b[2J\\rX\r\n" in ours.stdout
    assert (without_usecs(ours.stdout).replace(b"\\x1b]0;owned\\x07\\x1b[2J\\rX", evil)
            == without_usecs(theirs.stdout))  # the hex dump and the rest: byte for byte
