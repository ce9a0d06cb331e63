"""Every result carries its cause in HAProxy's words (docs/reference.md, "Cause codes").

Each code is provoked here by a real peer on loopback (or inside a namespace of
our own), and read from ``Result.cause`` as the agent, the doctor and the
metrics read it: run in-process, as the agent runs a [[check]] command.
"""

import hashlib
import os

import pytest

from harness.checks import MD5_SERVER1, SERVER1, VHOST, http, one_line
from harness.peers import cli
from harness.peers.netns import offline
from harness.peers.rawhttp import DroppingListener, RawHTTPServer, http_response
from kachecks.checks import registry
from kachecks.checks.contract import evaluate
from kachecks.checks.result import CODES, MEANINGS, Cause, Result

SERVED = http_response(SERVER1)


def cause(command):
    """The Cause of one run of ``command`` (a misc_path line, split as keepalived does)."""
    parsed = registry.parse_command(command)
    result = evaluate(parsed.check, parsed.target)
    return result.cause


def test_every_code_has_a_one_line_meaning():
    assert set(CODES) >= {"L4OK", "L4TOUT", "L4CON", "L6OK", "L6TOUT", "L6RSP", "L7OK", "L7TOUT",
                          "L7RSP", "L7STS", "DRAIN", "RESOLV", "INI"}
    assert all(MEANINGS[code] and "\n" not in MEANINGS[code] for code in CODES)


def test_a_result_is_immutable_and_defaults_to_the_plain_codes():
    result = Result(False, reason="boom")
    assert result.cause == Cause("UNK") and Result(True).cause == Cause("L7OK")
    assert Result(True, drain=True).cause.code == "DRAIN"
    with pytest.raises(AttributeError):
        result.cause = Cause("L7OK")
    with pytest.raises(AttributeError):
        result.cause.code = "L7OK"


# --- healthy: the OK code of the deepest layer checked --------------------------------

def test_healthy_runs_carry_the_ok_code_of_the_deepest_layer(pki):
    cert, key = pki["self_signed"]
    with RawHTTPServer(SERVED) as plain, RawHTTPServer(SERVED, tls=(str(cert), str(key))) as tls:
        assert cause(f"kachecks-tcp {plain.address}") == Cause("L4OK")
        assert cause(f"kachecks-tcp {tls.address} --tls") == Cause("L6OK")
        assert cause(f"kachecks-tcp {plain.address} --send 'GET /\\r\\n\\r\\n'"
                     " --expect '^HTTP/1.[01] 200'") == Cause("L7OK")
        assert cause(f"kachecks-http --url {plain.url} --digest {MD5_SERVER1}") == Cause("L7OK")
        assert cause(f"kachecks-http --url {tls.url}") == Cause("L7OK")


# --- layer 4 ---------------------------------------------------------------------------

def test_a_refused_connection_is_l4con(unused_port):
    assert cause(f"kachecks-tcp 127.0.0.1:{unused_port}") == Cause("L4CON", "connect", "refused")
    got = cause(f"kachecks-http --url http://127.0.0.1:{unused_port}/service.txt")
    assert got == Cause("L4CON", "connect", "refused")


def test_a_connection_reset_before_the_answer_is_l4con():
    with RawHTTPServer(b"", reset=True) as server:
        got = cause(f"kachecks-http --url {server.url} --timeout 3")
    assert (got.code, got.phase, got.reason) == ("L4CON", "wait", "error")


@pytest.mark.slow
def test_a_connect_that_times_out_is_l4tout():
    with DroppingListener() as hole:
        for command in (f"kachecks-tcp 127.0.0.1:{hole.port} --timeout 0.5",
                        f"kachecks-http --url http://127.0.0.1:{hole.port}/ --timeout 0.5"):
            assert cause(command) == Cause("L4TOUT", "connect", "timeout"), command


# --- layer 6 ---------------------------------------------------------------------------

def test_a_failed_tls_handshake_is_l6rsp(pki):
    with RawHTTPServer(SERVED, read_request="once") as plain:  # answers a ClientHello in HTTP
        got = cause(f"kachecks-http --url https://{plain.address}/service.txt --timeout 3")
    assert (got.code, got.phase, got.reason) == ("L6RSP", "tls", "handshake")
    cert, key = pki["wrong_name"]
    with RawHTTPServer(SERVED, tls=(str(cert), str(key))) as tls:
        got = cause(f"kachecks-tcp {tls.address} --tls --ca-file {pki['ca']} --sni-name {VHOST}")
    assert (got.code, got.phase, got.reason) == ("L6RSP", "tls", "verify")


def test_a_tls_handshake_that_times_out_is_l6tout():
    with RawHTTPServer(hang=True) as mute:  # accepts, never answers the ClientHello
        got = cause(f"kachecks-http --url https://{mute.address}/ --timeout 0.5")
    assert got == Cause("L6TOUT", "tls", "timeout")


# --- layer 7 ---------------------------------------------------------------------------

@pytest.mark.slow
def test_no_answer_in_time_is_l7tout():
    with RawHTTPServer(hang=True) as mute:
        assert cause(f"kachecks-http --url {mute.url} --timeout 0.5") == Cause(
            "L7TOUT", "wait", "timeout")
        assert cause(f"kachecks-tcp {mute.address} --expect ready --timeout 0.5") == Cause(
            "L7TOUT", "read", "timeout")
    with RawHTTPServer(SERVED, drip=0.2) as dripping:  # an answer that never ends in time
        assert cause(f"kachecks-http --url {dripping.url} --timeout 0.5") == Cause(
            "L7TOUT", "read", "timeout")


def test_a_wrong_status_is_l7sts():
    with RawHTTPServer(http_response(b"gone\n", status=b"404 Not Found")) as server:
        assert cause(f"kachecks-http --url {server.url}") == Cause("L7STS", "status")


def test_a_wrong_answer_is_l7rsp():
    with RawHTTPServer(http_response(b"hello from Server 1, but not the same\n")) as server:
        assert cause(f"kachecks-http --url {server.url} --digest {MD5_SERVER1}") == Cause(
            "L7RSP", "digest")
        assert cause(f"kachecks-http --url {server.url} --regex 'Server 2'") == Cause(
            "L7RSP", "regex")
        assert cause(f"kachecks-tcp {server.address} --send 'GET /\\r\\n\\r\\n'"
                     " --expect '^SSH-'") == Cause("L7RSP", "expect")
    with RawHTTPServer(b"HTTP/1.0 200 OK\r\nno end of header") as broken:
        assert cause(f"kachecks-http --url {broken.url}") == Cause("L7RSP", "header")


def test_a_reply_slower_than_max_latency_is_a_timeout_of_its_layer():
    with RawHTTPServer([b"HTTP/1.0 200 OK\r\n\r\n", SERVER1], pause=0.2) as slow:
        assert cause(f"kachecks-http --url {slow.url} --max-latency 0.05") == Cause(
            "L7TOUT", "latency", "latency")


def test_an_agent_that_says_down_is_l7sts_and_drain_is_drain():
    with RawHTTPServer(b"down\n", read_request=False) as down:
        assert cause(f"kachecks-tcp {down.address} --agent") == Cause("L7STS", "agent", "down")
    with RawHTTPServer(b"drain\n", read_request=False) as draining:
        assert cause(f"kachecks-tcp {draining.address} --agent --dynamic") == Cause(
            "DRAIN", "agent", "drain")
    with RawHTTPServer(b"up 50%\n", read_request=False) as up:
        assert cause(f"kachecks-tcp {up.address} --agent --dynamic --weight 10") == Cause("L7OK")


def test_a_drain_file_is_drain_whatever_the_server(tmp_path, unused_port):
    drain = tmp_path / "drain-web1"
    drain.touch()
    got = cause(f"kachecks-http --url http://127.0.0.1:{unused_port}/ --drain-file {drain}")
    assert got == Cause("DRAIN", "drain", "drain-file")


# --- resolution, and what a person sees ------------------------------------------------

@pytest.fixture
def isolated(tmp_path):
    """A namespace whose lookups cannot leave it (harness/peers/netns.py ``offline``), so
    a name that is not in /etc/hosts fails to resolve, and nothing reaches the network."""
    with offline(f"kcck-cause-{os.getpid()}", tmp_path) as ns:
        yield ns


@pytest.mark.netns
def test_a_name_that_does_not_resolve_is_resolv_and_verbose_says_so(isolated):
    done = isolated.run([*cli.command("kachecks-http"), "--url", "http://web1.mysite.invalid/",
                         "--timeout", "3", "--verbose"], env=dict(os.environ))
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stdout + done.stderr
    assert lines[0].startswith("HTTP FAIL - cannot resolve web1.mysite.invalid")
    assert lines[1] == f"cause: RESOLV at resolve: {MEANINGS['RESOLV']}"


def test_verbose_shows_the_cause_of_a_failure_and_of_a_success():
    with RawHTTPServer(http_response(b"gone\n", status=b"404 Not Found")) as server:
        failed = http("--url", server.url, "--verbose")
    assert failed.returncode == 1
    assert failed.stdout.splitlines()[1] == f"cause: L7STS at status: {MEANINGS['L7STS']}"
    with RawHTTPServer(SERVED) as server:
        healthy = http("--url", server.url, "--digest", hashlib.md5(SERVER1).hexdigest(), "-v")
        quiet = http("--url", server.url)
    assert healthy.stdout.splitlines()[1] == f"cause: L7OK: {MEANINGS['L7OK']}"
    assert "cause" not in one_line(quiet)
