"""Each way an LDAP server can be unhealthy fails with exit 1, its own message, in time."""

import os
import signal
import time

import pytest

from harness import signalled
from harness.checks import BASE, REFERENCE, ldap_check, start_check, wait_for_unanswered_request
from harness.peers import cli
from harness.peers import slapd as ldap_peer
from harness.peers.netns import offline
from harness.peers.rawhttp import RawHTTPServer, http_response

# Deadline bound the issue asks for: a check with --timeout T ends within T + this.
SLACK = 1.0


def test_server_down_is_connection_refused(unused_port):
    done = ldap_check("--uri", f"ldap://127.0.0.1:{unused_port}", *REFERENCE)
    assert done.returncode == 1
    assert done.stdout == f"LDAP FAIL - server down: connection refused at [127.0.0.1]:{unused_port}\n"


def test_invalid_credentials(slapd, password_file):
    done = ldap_check("--uri", slapd.url, *REFERENCE, "--bind-dn", ldap_peer.BIND_DN,
                      "--password-file", password_file("not the password"))
    assert done.returncode == 1
    assert done.stdout == f"LDAP FAIL - invalid credentials for {ldap_peer.BIND_DN}\n"


def test_unknown_bind_dn_is_invalid_credentials_too(slapd, password_file):
    dn = f"uid=nobody,ou=people,{BASE}"
    done = ldap_check("--uri", slapd.url, *REFERENCE, "--bind-dn", dn,
                      "--password-file", password_file(ldap_peer.BIND_PASSWORD))
    assert done.stdout == f"LDAP FAIL - invalid credentials for {dn}\n"


def test_no_such_base_names_the_nearest_existing_entry(slapd):
    done = ldap_check("--uri", slapd.url, "--base", f"ou=nowhere,{BASE}")
    assert done.returncode == 1
    assert done.stdout == (f"LDAP FAIL - no such base ou=nowhere,{BASE}"
                           f" (nearest existing: {BASE})\n")


def test_referral_is_reported_not_followed(slapd):
    done = ldap_check("--uri", slapd.url, "--base", ldap_peer.REFERRAL_DN)
    assert done.returncode == 1
    assert done.stdout == (f"LDAP FAIL - referral for {ldap_peer.REFERRAL_DN} to {ldap_peer.REFERRAL_URL}??sub"
                           " (referrals are not followed)\n")


def test_size_limit_exceeded(slapd):
    done = ldap_check("--uri", slapd.url, "--base", ldap_peer.BULK_BASE)
    assert done.returncode == 1
    assert done.stdout.startswith(f"LDAP FAIL - size limit exceeded after {ldap_peer.SIZE_LIMIT} entries"
                                  f" under {ldap_peer.BULK_BASE}")


@pytest.mark.slow
def test_a_listener_that_never_speaks_fails_inside_the_timeout(silent_listener):
    started = time.monotonic()
    done = ldap_check("--uri", silent_listener, *REFERENCE, "--timeout", "1")
    assert time.monotonic() - started < 1 + SLACK
    assert done.returncode == 1
    assert done.stdout == ("LDAP FAIL - TCP connection accepted but no LDAP answer within 1 s"
                           " (during search)\n")


@pytest.mark.slow
def test_an_address_that_drops_packets_times_out_in_connect(dropping_listener):
    started = time.monotonic()
    done = ldap_check("--uri", dropping_listener, *REFERENCE, "--timeout", "1")
    assert time.monotonic() - started < 1 + SLACK
    assert done.returncode == 1
    assert done.stdout == "LDAP FAIL - timeout after 1 s during connect\n"


@pytest.mark.slow
def test_a_server_dripping_its_answer_is_cut_at_the_deadline(dripping_server):
    """Each byte comes well within any per-read timeout; the total deadline still holds."""
    started = time.monotonic()
    done = ldap_check("--uri", dripping_server, "--timeout", "1")
    assert time.monotonic() - started < 1 + SLACK
    assert done.returncode == 1
    assert "within 1 s (during search)" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("extra, phase", [
    ([], "search"),
    (["--starttls"], "starttls"),
    (["--ldaps"], "tls"),
    (["--bind-dn", ldap_peer.BIND_DN], "bind"),
])
def test_paused_slapd_fails_inside_the_timeout_naming_the_phase(own_slapd, extra, phase):
    url = own_slapd.ldaps_url if extra == ["--ldaps"] else own_slapd.url
    extra = [] if extra == ["--ldaps"] else extra
    env = {"KACHECKS_LDAP_PASSWORD": ldap_peer.BIND_PASSWORD}
    own_slapd.pause()
    started = time.monotonic()
    done = ldap_check("--uri", url, *REFERENCE, *extra, "--timeout", "1", env=env)
    assert time.monotonic() - started < 1 + SLACK
    assert done.returncode == 1
    assert done.stdout == ("LDAP FAIL - TCP connection accepted but no LDAP answer within 1 s"
                           f" (during {phase})\n")


def test_slapd_killed_mid_search_fails_at_once(own_slapd):
    own_slapd.pause()
    check = start_check("--uri", own_slapd.url, *REFERENCE, "--timeout", "10")
    wait_for_unanswered_request(own_slapd.port)
    own_slapd.kill()
    killed = time.monotonic()
    out, err = check.communicate(timeout=10 + SLACK)
    assert time.monotonic() - killed < SLACK
    assert check.returncode == 1
    assert out.startswith("LDAP FAIL - no LDAP answer, connection closed during search"), out + err


def test_sigterm_while_waiting_on_slapd_exits_one_promptly(own_slapd):
    own_slapd.pause()
    check = start_check("--uri", own_slapd.url, *REFERENCE, "--timeout", "10")
    wait_for_unanswered_request(own_slapd.port)
    sent = time.monotonic()
    done = signalled.stop(check, signal.SIGTERM, 10 + SLACK)
    out, err = done.stdout, done.stderr
    assert time.monotonic() - sent < SLACK
    assert check.returncode == 1
    assert out == "LDAP FAIL - terminated by SIGTERM\n", out + err


def test_slapd_stopped_for_good_then_refuses(own_slapd):
    url = own_slapd.url
    own_slapd.kill()
    done = ldap_check("--uri", url, *REFERENCE)
    assert done.returncode == 1
    assert done.stdout.startswith("LDAP FAIL - server down: connection refused")


@pytest.mark.netns
def test_unresolvable_host_fails_with_its_own_message(tmp_path):
    # In a namespace of our own whose lookups go nowhere: not to the machine's resolver.
    with offline(f"kcld-dns-{os.getpid()}", tmp_path) as ns:
        done = ns.run([*cli.command("kachecks-ldap"), "--uri", "ldap://no-such-host.invalid",
                       *REFERENCE, "--timeout", "3"])
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith("LDAP FAIL - cannot resolve no-such-host.invalid"), done.stdout
    assert done.stderr == ""


def test_an_http_server_on_the_ldap_port_is_not_an_ldap_server(password_file):
    """It answered with its 400 page, which ldap3's decoder read as a broken LDAP message:
    "malformed LDAP reply during search (KeyError: (1, 20))"."""
    page = http_response(b"<h1>Bad Request</h1>", status=b"400 Bad Request")
    with RawHTTPServer(page, read_request="once") as web:  # it answers what it cannot parse
        done = ldap_check("--uri", f"ldap://{web.address}", *REFERENCE)
        bound = ldap_check("--uri", f"ldap://{web.address}", *REFERENCE, "--bind-dn",
                           ldap_peer.BIND_DN, "--password-file", password_file("secret"))
    assert done.returncode == bound.returncode == 1
    assert done.stdout == ('LDAP FAIL - not an LDAP server (it answered the search with'
                           ' "HTTP/1.0 400 Bad Request…")\n')
    assert bound.stdout == ('LDAP FAIL - not an LDAP server (it answered the bind with'
                            ' "HTTP/1.0 400 Bad Request…")\n')


def test_a_binary_answer_that_is_not_ldap_is_said_in_one_printable_line():
    with RawHTTPServer(b"\x15\x03\x01\x00\x02\x02\x46\nmore", read_request="once") as peer:
        done = ldap_check("--uri", f"ldap://{peer.address}", *REFERENCE)
    assert done.stdout.startswith("LDAP FAIL - not an LDAP server (it answered the search with")
    assert done.stdout[:-1].isprintable() and "more" not in done.stdout
