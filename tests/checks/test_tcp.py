"""kachecks-tcp against real local servers: connect, send/expect, agent, PROXY
(docs/reference.md, "kachecks-tcp")."""

import socket

import pytest

from harness.checks import one_line, tcp
from harness.peers.rawhttp import RawHTTPServer
from kachecks.checks import escapes
from kachecks.errors import UsageError


def banner_server(reply, **kw):
    """A server that answers at once, without waiting for a request."""
    return RawHTTPServer(reply, read_request=False, **kw)


def test_connect_only_sends_nothing_and_exits_0():
    with RawHTTPServer(b"", request_end=b"never") as srv:
        proc = tcp(f"127.0.0.1:{srv.port}", "--timeout", "2")
    assert proc.returncode == 0
    assert one_line(proc).startswith(f"TCP OK - 127.0.0.1:{srv.port} connected in ")


def test_host_and_port_options_equal_host_colon_port():
    with banner_server(b"") as srv:
        assert tcp("--host", "127.0.0.1", "--port", srv.port).returncode == 0
        assert tcp("-H", "localhost", "-p", srv.port).returncode == 0


def test_closed_port_is_refused(unused_port):
    proc = tcp("--host", "127.0.0.1", "--port", unused_port)
    assert proc.returncode == 1 and one_line(proc) == "TCP FAIL - connection refused"


def test_send_with_c_escapes_then_expect_matches():
    def echo(request):
        yield b"+PONG\r\n" if request == b"PING\r\n\x00" else b"-ERR\r\n"

    with RawHTTPServer(echo, request_end=b"\x00") as srv:
        proc = tcp(f"127.0.0.1:{srv.port}", "--send", r"PING\r\n\x00", "--expect", r"^\+PONG")
    assert srv.requests == [b"PING\r\n\x00"]
    assert proc.returncode == 0 and "expect '^\\+PONG' matched" in proc.stdout


def test_expect_not_found_before_eof_fails_showing_what_came():
    with banner_server(b"SSH-2.0-OpenSSH_9.2\r\n") as srv:
        proc = tcp(f"127.0.0.1:{srv.port}", "--expect", "^220 ")
    assert proc.returncode == 1
    assert one_line(proc) == (f"TCP FAIL - 127.0.0.1:{srv.port}: expect '^220 ' not found in "
                              "'SSH-2.0-OpenSSH_9.2\\r\\n'")


def test_expect_reads_until_match_across_segments_without_waiting_for_eof():
    with RawHTTPServer([b"220 lvs", b"1 ESMTP ready\r\n"], read_request=False, close=False) as srv:
        proc = tcp(f"127.0.0.1:{srv.port}", "--expect", "ESMTP", "--timeout", "3")
    assert proc.returncode == 0, proc.stdout


def test_expect_gives_up_at_max_bytes():
    with banner_server(b"x" * 5000 + b"OK", close=False) as srv:
        proc = tcp(f"127.0.0.1:{srv.port}", "--expect", "OK", "--max-bytes", "1000",
                   "--timeout", "3")
    assert proc.returncode == 1 and "not found in" in proc.stdout


@pytest.mark.parametrize("reply, extra, code", [
    (b"up\n", [], 12), (b"up 50%\n", [], 7), (b"ready,75%\n", [], 9), (b"100%\n", [], 12),
    (b"drain\n", [], 2), (b"up 0%\n", [], 2), (b"down\n", [], 1), (b"maint\n", [], 1),
    (b"drain\n", ["--no-dynamic"], 1), (b"bogus\n", [], 1), (b"", [], 1),
])
def test_haproxy_agent_replies_become_exit_codes(reply, extra, code):
    dynamic = [] if extra == ["--no-dynamic"] else ["--dynamic"]
    with banner_server(reply) as srv:
        proc = tcp(f"127.0.0.1:{srv.port}", "--agent", "--weight", "10", *dynamic)
    assert proc.returncode == code, proc.stdout


def test_agent_reply_messages_say_why():
    with banner_server(b"maint\n") as srv:
        down = tcp(f"127.0.0.1:{srv.port}", "--agent", "--dynamic")
    with banner_server(b"up 50%\n", close=False) as srv:  # the line is enough: no wait for EOF
        up = tcp(f"127.0.0.1:{srv.port}", "--agent", "--dynamic", "--weight", "10")
    assert one_line(down) == "TCP FAIL - agent reports maint"
    assert up.returncode == 7 and one_line(up).endswith("agent 'up 50%', weight 5")


def test_weight_regex_reads_the_banner():
    with banner_server(b"220 lvs1 ready weight=33\r\n") as srv:
        assert tcp(f"127.0.0.1:{srv.port}", "--dynamic",
                   "--weight-regex", r"weight=(\d+)").returncode == 35
        proc = tcp(f"127.0.0.1:{srv.port}", "--dynamic", "--weight-regex", r"load=(\d+)")
    assert proc.returncode == 1 and "found no weight" in proc.stdout


def test_proxy_v1_header_arrives_first():
    with RawHTTPServer(b"", request_end=b"HELLO\n") as srv:
        proc = tcp(f"127.0.0.1:{srv.port}", "--proxy-v1", "--send", r"HELLO\n")
    assert proc.returncode == 0
    header, _, rest = srv.requests[0].partition(b"\r\n")
    words = header.split(b" ")
    assert words[:4] == [b"PROXY", b"TCP4", b"127.0.0.1", b"127.0.0.1"]
    assert int(words[5]) == srv.port and 1024 <= int(words[4]) <= 65535
    assert rest == b"HELLO\n"


def test_proxy_v2_header_is_binary_with_addresses_and_ports():
    with RawHTTPServer(b"", host="::1", request_end=b"HELLO\n") as srv:
        proc = tcp(f"[::1]:{srv.port}", "--proxy-v2", "--send", r"HELLO\n")
    assert proc.returncode == 0
    data = srv.requests[0]
    assert data[:12] == b"\r\n\r\n\x00\r\nQUIT\n"
    assert data[12:14] == b"\x21\x21"  # v2 PROXY, TCP over IPv6
    assert int.from_bytes(data[14:16], "big") == 36
    assert data[16:32] == data[32:48] == socket.inet_pton(socket.AF_INET6, "::1")
    assert int.from_bytes(data[50:52], "big") == srv.port
    assert data[52:] == b"HELLO\n"


def test_ipv4_proxy_v2_family_byte():
    with RawHTTPServer(b"", request_end=b"X") as srv:
        assert tcp(f"127.0.0.1:{srv.port}", "--proxy-v2", "--send", "X").returncode == 0
    assert srv.requests[0][12:16] == b"\x21\x11\x00\x0c"


def test_max_latency_over_limit_fails():
    with RawHTTPServer([b"slow", b" banner\n"], read_request=False, pause=0.3) as srv:
        proc = tcp(f"127.0.0.1:{srv.port}", "--expect", "banner", "--max-latency", "0.1")
    assert proc.returncode == 1 and "latency 0.3" in proc.stdout


def test_nagios_perfdata_and_drain_file(tmp_path):
    with banner_server(b"220 ready\r\n") as srv:
        proc = tcp(f"127.0.0.1:{srv.port}", "--expect", "ready", "--nagios")
        drain = tmp_path / "drain"
        drain.touch()
        drained = tcp(f"127.0.0.1:{srv.port}", "--dynamic", "--drain-file", drain)
    assert proc.returncode == 0 and " | time=" in proc.stdout and "size=11B" in proc.stdout
    assert drained.returncode == 2


@pytest.mark.parametrize("args, message", [
    ([], "no target"),
    (["127.0.0.1"], "has no port"),
    (["127.0.0.1:80", "--host", "x"], "not both"),
    (["127.0.0.1:99999"], "port must be 1-65535"),
    (["127.0.0.1:80", "--proxy-v1", "--proxy-v2"], "exclude each other"),
    (["127.0.0.1:80", "--ca-file", "/etc/hostname"], "TLS options need --tls"),
    (["127.0.0.1:80", "--client-key", "/etc/hostname"], "TLS options need --tls"),
    (["127.0.0.1:80", "--expect", "("], "bad regular expression"),
    (["127.0.0.1:80", "--weight-regex", "w=\\d+"], "needs a capture group"),
    (["127.0.0.1:80", "--send", "bad\\q"], "unknown escape"),
    (["a:1", "b:2"], "Unexpected argument"),
])
def test_bad_arguments_exit_1_with_one_line(args, message):
    proc = tcp(*args)
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and message in proc.stderr, proc.stderr


@pytest.mark.parametrize("text, data", [
    (r"a\r\n", b"a\r\n"), (r"\x00\x7f\xff", b"\x00\x7f\xff"), (r"\0\101\1012", b"\x00AA2"),
    (r"\\ \t\e", b"\\ \t\x1b"), ("é", "é".encode()),
])
def test_c_escapes(text, data):
    assert escapes.decode(text) == data


@pytest.mark.parametrize("text", ["\\", r"\xzz", r"\400", r"\q"])
def test_bad_c_escapes_are_usage_errors(text):
    with pytest.raises(UsageError):
        escapes.decode(text)


def test_kachecks_check_tcp_is_the_same_check():
    from harness.peers import cli

    with banner_server(b"up 50%\n") as srv:
        proc = cli.run("kachecks", "check", "tcp", f"127.0.0.1:{srv.port}", "--agent",
                       "--dynamic", "--weight", "10")
    assert proc.returncode == 7 and proc.stdout.startswith("TCP OK - ")


def test_a_request_sent_before_the_server_thread_ran_is_still_recorded():
    """The peer, not the check: a check that sends and closes can finish before the test
    server's accept thread is scheduled (seen under load on Debian 13); stop() serves it."""
    srv = RawHTTPServer(b"", request_end=b"X")
    srv._listener.listen(8)  # listening, its accept thread not started
    with socket.create_connection(("127.0.0.1", srv.port)) as client:
        client.sendall(b"hello X")
    srv.stop()
    assert srv.requests == [b"hello X"]
