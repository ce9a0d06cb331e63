"""kachecks-http against real local servers: every test option, every failure
(docs/reference.md, "kachecks-http")."""

import hashlib
import subprocess

import pytest
from werkzeug import Response

from harness.checks import (MD5_SERVER1, MD5_SERVER2, SERVER1, SERVER2, VHOST, http,
                                   one_line)
from harness.peers import cli
from harness.peers.rawhttp import RawHTTPServer, body_stream, http_response


@pytest.fixture
def service(httpserver):
    """The reference real server: /service.txt says hello from Server 1."""
    httpserver.expect_request("/service.txt").respond_with_data(SERVER1, content_type="text/plain")
    return httpserver


def url(server, path="/service.txt"):
    return f"http://127.0.0.1:{server.port}{path}"


def test_digest_match_exits_0_with_summary(service):
    proc = http("--url", url(service), "--digest", MD5_SERVER1)
    assert proc.returncode == 0
    assert one_line(proc).startswith("HTTP OK - 200 OK, md5 5f2b…75 matches, 20 B in ")


def test_digest_mismatch_exits_1_naming_both_digests(service):
    proc = http("--url", url(service), "--digest", MD5_SERVER2)
    assert proc.returncode == 1
    assert one_line(proc) == f"HTTP FAIL - md5 mismatch (got {MD5_SERVER1}, want {MD5_SERVER2})"


def test_second_digest_matching_passes_for_rolling_deploys(service):
    proc = http("--url", url(service), "--digest", MD5_SERVER2, "--digest", MD5_SERVER1)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_sha_digests_are_chosen_by_length(service, algorithm):
    good = hashlib.new(algorithm, SERVER1).hexdigest()
    bad = hashlib.new(algorithm, SERVER2).hexdigest()
    assert http("--url", url(service), "--digest", good.upper()).returncode == 0
    proc = http("--url", url(service), "--digest", bad)
    assert proc.returncode == 1 and f"{algorithm} mismatch" in proc.stdout


def test_mixed_algorithms_fail_listing_each(service):
    sha1 = hashlib.sha1(SERVER2).hexdigest()
    proc = http("--url", url(service), "--digest", MD5_SERVER2, "--digest", sha1)
    assert proc.returncode == 1
    assert f"got md5 {MD5_SERVER1}, sha1 {hashlib.sha1(SERVER1).hexdigest()}" in proc.stdout


def test_digest_agrees_with_keepalived_genhash(service):
    genhash = subprocess.run(["/usr/bin/genhash", "-s", "127.0.0.1", "-p", str(service.port),
                              "-u", "/service.txt", "-t", "5"], capture_output=True, text=True,
                             timeout=20)
    digest = genhash.stdout.strip()
    assert digest == MD5_SERVER1
    assert http("-s", "127.0.0.1", "-p", service.port, "-u", "/service.txt",
                "--digest", digest).returncode == 0


def test_digest_follows_keepalived_content_length_cut_and_raw_chunks():
    body = b"5\r\nhello\r\n0\r\n\r\n"
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    with RawHTTPServer(raw) as srv:
        assert http("--url", f"http://{srv.address}/", "--digest",
                    hashlib.md5(body).hexdigest()).returncode == 0
    with RawHTTPServer(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabcdef") as srv:
        assert http("--url", f"http://{srv.address}/", "--digest",
                    hashlib.md5(b"abc").hexdigest()).returncode == 0


def test_wrong_status_exits_1(httpserver):
    httpserver.expect_request("/service.txt").respond_with_data("gone", status=404)
    proc = http("--url", url(httpserver))
    assert proc.returncode == 1
    assert one_line(proc) == "HTTP FAIL - status 404 NOT FOUND not in 200-299"


def test_status_list_accepts_codes_and_ranges_and_no_redirect_is_followed(httpserver):
    httpserver.expect_request("/old").respond_with_response(
        Response("moved", status=301, headers={"Location": "/service.txt"}))
    assert http("--url", url(httpserver, "/old")).returncode == 1
    proc = http("--url", url(httpserver, "/old"), "--status", "200-299,301")
    assert proc.returncode == 0 and "301 MOVED PERMANENTLY" in proc.stdout
    assert len(httpserver.log) == 2  # the Location was never fetched


def test_request_is_keepalived_bytes_with_vhost_protocol_and_extra_headers():
    with RawHTTPServer(http_response(b"ok")) as srv:
        assert http("--url", f"http://{srv.address}/a b?x=1").returncode == 0
        assert http("-s", srv.host, "-p", srv.port, "-u", "/p", "--virtualhost", VHOST,
                    "--http-protocol", "1.1", "--header", "X-Probe: lvs1",
                    "--header", "Accept: */*").returncode == 0
        assert http("-s", srv.host, "-p", srv.port, "-P", "1.0c").returncode == 0
    assert srv.requests[0] == (f"GET /a b?x=1 HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\n"
                               f"Host: {srv.address}\r\n\r\n").encode()
    assert srv.requests[1] == (f"GET /p HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\n"
                               f"Connection: close\r\nHost: {VHOST}\r\nX-Probe: lvs1\r\n"
                               f"Accept: */*\r\n\r\n").encode()
    assert srv.requests[2] == (f"GET / HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\n"
                               f"Connection: close\r\nHost: {srv.address}\r\n\r\n").encode()


def test_basic_auth_password_comes_from_file_or_environment(password_file):
    with RawHTTPServer(http_response(b"ok")) as srv:
        target = f"http://{srv.address}/"
        assert http("--url", target, "--user", "admin",
                    "--password-file", password_file("s3cret")).returncode == 0
        assert http("--url", target, "--user", "admin",
                    env={"KACHECKS_HTTP_PASSWORD": "from-env"}).returncode == 0
    assert b"Authorization: Basic YWRtaW46czNjcmV0\r\n" in srv.requests[0]  # admin:s3cret
    assert b"Authorization: Basic YWRtaW46ZnJvbS1lbnY=\r\n" in srv.requests[1]


def test_regex_match_and_no_match(service):
    assert http("--url", url(service), "--regex", r"from Server \d").returncode == 0
    proc = http("--url", url(service), "--regex", "Server2")
    assert proc.returncode == 1 and one_line(proc) == "HTTP FAIL - body does not match 'Server2'"
    assert http("--url", url(service), "--regex", "Server2", "--regex-no-match").returncode == 0
    proc = http("--url", url(service), "--regex", "Server", "--regex-no-match")
    assert proc.returncode == 1 and "matches 'Server' (--regex-no-match)" in proc.stdout


def test_regex_finds_text_far_into_a_big_streamed_body():
    stream, _ = body_stream(3 << 20)

    def with_marker(request):
        yield from stream(request)
        yield b"END-MARKER"

    with RawHTTPServer(with_marker) as srv:
        assert http("--url", f"http://{srv.address}/", "--regex", "END-MARK(ER)$").returncode == 0


def test_max_body_fails_a_larger_body_and_passes_a_smaller_one(service):
    assert http("--url", url(service), "--max-body", "20").returncode == 0
    proc = http("--url", url(service), "--max-body", "19")
    assert proc.returncode == 1 and "body larger than --max-body 19 B" in proc.stdout


@pytest.mark.slow
def test_latency_over_limit_fails():
    with RawHTTPServer([b"HTTP/1.0 200 OK\r\n\r\n", b"late"], pause=0.3) as srv:
        proc = http("--url", f"http://{srv.address}/", "--max-latency", "0.1")
        assert proc.returncode == 1 and "latency 0.3" in proc.stdout and "over 0.1 s" in proc.stdout
        assert http("--url", f"http://{srv.address}/", "--max-latency", "5").returncode == 0


def test_header_without_end_is_a_failure_not_a_hash():
    with RawHTTPServer(b"HTTP/1.0 200 OK\nContent-Length: 2\n\nok") as srv:
        proc = http("--url", f"http://{srv.address}/")
    assert proc.returncode == 1 and "no HTTP header end" in proc.stdout


def test_closed_port_is_refused(unused_port):
    proc = http("--url", f"http://127.0.0.1:{unused_port}/service.txt")
    assert proc.returncode == 1
    assert one_line(proc) == "HTTP FAIL - connection refused"


def test_ipv6_literal_url_and_genhash_spelling():
    with RawHTTPServer(http_response(SERVER1), host="::1") as srv:
        assert http("--url", f"http://[::1]:{srv.port}/service.txt",
                    "--digest", MD5_SERVER1).returncode == 0
        assert http("-s", "::1", "-p", srv.port, "-u", "/service.txt").returncode == 0
    assert f"Host: [::1]:{srv.port}\r\n".encode() in srv.requests[0]


def test_bind_source_address_and_fwmark_reach_the_socket():
    with RawHTTPServer(http_response(b"ok")) as srv:
        assert http("--url", f"http://{srv.address}/", "--bind", "127.0.0.1",
                    "--fwmark", "7").returncode == 0
        proc = http("--url", f"http://{srv.address}/", "--bind", "192.0.2.1")
    assert proc.returncode == 1 and "cannot bind to 192.0.2.1" in proc.stdout


@pytest.mark.parametrize("header, extra, code", [
    ("7", [], 9), ("50%", ["--weight", "10"], 7), ("0%", ["--weight", "10"], 2),
])
def test_weight_header_sets_the_dynamic_exit_code(header, extra, code):
    with RawHTTPServer(http_response(b"ok", headers={"X-Weight": header})) as srv:
        proc = http("--url", f"http://{srv.address}/", "--dynamic", "--weight-header", "x-weight",
                    *extra)
    assert proc.returncode == code, proc.stdout


def test_malformed_or_missing_weight_header_fails():
    with RawHTTPServer(http_response(b"ok", headers={"X-Weight": "lots"})) as srv:
        bad = http("--url", f"http://{srv.address}/", "--dynamic", "--weight-header", "X-Weight")
        missing = http("--url", f"http://{srv.address}/", "--dynamic", "--weight-header", "X-Other")
    assert bad.returncode == 1 and "malformed weight 'lots'" in bad.stdout
    assert missing.returncode == 1 and "no X-Other header" in missing.stdout


def test_weight_regex_takes_the_first_capture_group():
    with RawHTTPServer(http_response(b"status: ok\nweight=12\n")) as srv:
        target = f"http://{srv.address}/"
        assert http("--url", target, "--dynamic", "--weight-regex", r"weight=(\d+)").returncode == 14
        proc = http("--url", target, "--dynamic", "--weight-regex", r"load=(\d+)")
    assert proc.returncode == 1 and "found no weight" in proc.stdout


def test_drain_file_reports_drain_without_contacting_the_server(tmp_path, unused_port):
    drain = tmp_path / "drain"
    drain.touch()
    target = f"http://127.0.0.1:{unused_port}/service.txt"
    assert http("--url", target, "--drain-file", drain).returncode == 1
    proc = http("--url", target, "--drain-file", drain, "--dynamic", "--weight", "10")
    assert proc.returncode == 2 and one_line(proc) == f"HTTP DRAIN - drained by {drain}"


def test_nagios_mode_prints_perfdata_and_critical(service):
    proc = http("--url", url(service), "--nagios", "--digest", MD5_SERVER1)
    assert proc.returncode == 0
    assert one_line(proc).startswith("HTTP OK: 200 OK, md5 5f2b…75 matches")
    assert " | time=" in proc.stdout and proc.stdout.rstrip().endswith("s size=20B")
    proc = http("--url", url(service), "--nagios", "--digest", MD5_SERVER2)
    assert proc.returncode == 2 and proc.stdout.startswith("HTTP CRITICAL: md5 mismatch")


def test_verbose_prints_request_headers_and_digest(service):
    proc = http("--url", url(service), "-v")
    assert proc.returncode == 0
    assert f"md5: {MD5_SERVER1}" in proc.stdout and "request: b'GET /service.txt" in proc.stdout


def test_syslog_reason_on_transitions_only(service, syslog_socket):
    args = ("--url", url(service), "--digest", MD5_SERVER1)
    assert http(*args).returncode == 0
    first = syslog_socket()
    assert len(first) == 1 and f"[127.0.0.1]:{service.port} UP: 200 OK" in first[0]
    assert http(*args).returncode == 0
    assert syslog_socket() == []
    service.clear()
    service.expect_request("/service.txt").respond_with_data(SERVER2)
    assert http(*args).returncode == 1
    (down,) = syslog_socket()
    assert "kachecks-http" in down
    assert down.endswith(f"[127.0.0.1]:{service.port} DOWN: md5 mismatch (got {MD5_SERVER2}, "
                         f"want {MD5_SERVER1})")
    service.clear()
    service.expect_request("/service.txt").respond_with_data(SERVER1)
    assert http(*args, "--quiet").returncode == 0  # a transition, but --quiet
    assert syslog_socket() == []


def test_kachecks_check_http_is_the_same_check_and_resolves_names(service):
    proc = cli.run("kachecks", "check", "http", "--url", service.url_for("/service.txt"),
                   "--digest", MD5_SERVER1)
    assert proc.returncode == 0 and proc.stdout.startswith("HTTP OK - 200 OK")


@pytest.mark.parametrize("name", ["kachecks-http", "kachecks-tcp"])
def test_help_lists_every_option_and_reference_examples(name):
    from kachecks.checks import http as http_module, tcp as tcp_module

    check = (http_module if name == "kachecks-http" else tcp_module).CHECK
    proc = cli.run(name, "--help")
    assert proc.returncode == 0 and proc.stderr == ""
    for opt in check.opts:
        assert f"--{opt.long}" in proc.stdout
    assert "192.168.8.101" in proc.stdout and "MISC_CHECK" in proc.stdout
    assert "Exit codes" in proc.stdout
    if name == "kachecks-http":
        assert MD5_SERVER1 in proc.stdout and MD5_SERVER2 in proc.stdout
        assert "/service.txt" in proc.stdout and "vrrp_script" in proc.stdout


@pytest.mark.slow
def test_memory_stays_flat_on_a_large_body():
    size = 128 << 20
    stream, digest = body_stream(size)
    with RawHTTPServer(stream) as srv:
        proc = subprocess.run(["/usr/bin/time", "-f", "maxrss=%M", *cli.command("kachecks-http"),
                               "--url", f"http://{srv.address}/", "--digest", digest,
                               "--regex", "never-there", "--regex-no-match",
                               # the 5 s default is about the peer, not this test's memory bound:
                               # a loaded CI machine may need longer to stream 128 MiB
                               "--timeout", "40"],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{size} B in" in proc.stdout
    max_rss_kib = int(proc.stderr.rsplit("maxrss=", 1)[1])
    assert max_rss_kib < 64 * 1024  # the body is 128 MiB


def test_body_watch_finds_matches_across_reads_and_forgets_old_bytes():
    from kachecks.checks.bodywatch import WINDOW, BodyWatch
    from kachecks.checks.options import compile_option

    watch = BodyWatch(regex=compile_option("--regex", "split-here"),
                      weight_regex=compile_option("--weight-regex", r"w=(\d+);", needs_group=True))
    for chunk in (b"x" * 3 * WINDOW, b"...spl", b"it-here... w=4", b"2; w=7;"):
        watch.feed(chunk)
    assert watch.regex_found and watch.weight_text == "42"
    assert len(watch.window) <= WINDOW + 20


def test_a_body_nothing_looks_at_is_counted_to_eof_and_the_verdict_stays_keepalived(monkeypatch):
    """No --digest, --regex or --max-body: the body is only counted (the kernel drops it,
    tests/agent measure the cost), still to EOF: its size is reported, and a reply that
    never ends fails as keepalived's HTTP_GET fails it."""
    from kachecks.deadline import Deadline
    from kachecks.errors import DeadlineExceeded
    from kachecks.http import fetch as fetching
    from kachecks.net.connect import Stream

    copied = []
    monkeypatch.setattr(Stream, "recv_into", lambda self, view, size, phase="read": copied.append(
        size) or Stream._recv(self, phase, self.sock.recv_into, view, size) or 0)
    size = 20 << 20
    stream, _ = body_stream(size)
    with RawHTTPServer(stream) as srv:
        response = fetching.fetch("127.0.0.1", srv.port, "/", Deadline(20), algorithms=())
    assert response.body_length == size and response.status == 200 and response.clean_eof
    assert len(copied) <= 2  # the header's read (and maybe one more): no body copied out
    endless = http_response(b"partial", content_length=False)
    with RawHTTPServer(endless, close=False) as srv:
        with pytest.raises(DeadlineExceeded) as timeout:
            fetching.fetch("127.0.0.1", srv.port, "/", Deadline(0.5), algorithms=())
    assert timeout.value.phase == "read"
    with RawHTTPServer(stream) as srv:
        proc = http("--url", f"http://{srv.address}/", "--timeout", "20")
    assert proc.returncode == 0 and f"{size} B in" in one_line(proc), proc.stdout
