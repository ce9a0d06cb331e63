"""kachecks-ldap's results carry their cause (docs/reference.md, "Cause codes"): an LDAP
result code is L7STS, an answer without the entry or value asked for is L7RSP, a server
that accepts TCP and never answers LDAP is L7TOUT; against a real slapd."""

import time

from harness.checks import BASE, REFERENCE
from harness.peers import slapd as ldap_peer
from harness.peers.rawhttp import RawHTTPServer, http_response
from harness.peers.slapd import csn
from kachecks.checks import registry, replication
from kachecks.checks.contract import evaluate
from kachecks.checks.result import Cause, Result


def cause(*args):
    parsed = registry.parse_command(["kachecks-ldap", *map(str, args)])
    return evaluate(parsed.check, parsed.target).cause


def test_the_reference_search_is_l7ok(slapd):
    assert cause("--uri", slapd.url, *REFERENCE) == Cause("L7OK")
    assert cause("--uri", slapd.ldaps_url, *REFERENCE) == Cause("L7OK")


def test_no_entry_or_no_value_is_l7rsp(slapd):
    assert cause("--uri", slapd.url, "--base", BASE, "--filter", "(dc=elsewhere)") == Cause(
        "L7RSP", "search", "too-few-entries")
    assert cause("--uri", slapd.url, "--base", BASE, "--filter", "(dc=mysite)",
                 "--expect", "o=another.org") == Cause("L7RSP", "expect")


def test_an_ldap_result_code_is_l7sts(slapd, password_file):
    assert cause("--uri", slapd.url, "--base", f"ou=nowhere,{BASE}") == Cause(
        "L7STS", "search", "no-such-object")
    assert cause("--uri", slapd.url, *REFERENCE, "--bind-dn", ldap_peer.BIND_DN,
                 "--password-file", password_file("not the password")) == Cause(
        "L7STS", "bind", "invalid-credentials")


def test_a_server_that_never_answers_ldap_is_l7tout(silent_listener):
    assert cause("--uri", silent_listener, *REFERENCE, "--timeout", "0.5") == Cause(
        "L7TOUT", "search", "timeout")


def test_a_server_that_is_down_or_drops_packets_is_l4(unused_port, dropping_listener):
    assert cause("--uri", f"ldap://127.0.0.1:{unused_port}", *REFERENCE) == Cause(
        "L4CON", "connect", "refused")
    assert cause("--uri", dropping_listener, *REFERENCE, "--timeout", "0.5") == Cause(
        "L4TOUT", "connect", "timeout")


def test_an_http_server_on_the_ldap_port_is_l7rsp_not_ldap():
    with RawHTTPServer(http_response(b"", status=b"400 Bad Request"), read_request="once") as web:
        assert cause("--uri", f"ldap://{web.address}", *REFERENCE, "--timeout", "2") == Cause(
            "L7RSP", "search", "not-ldap")


def test_ldaps_to_a_plain_ldap_port_is_l6rsp(slapd):
    got = cause("--uri", slapd.url.replace("ldap://", "ldaps://"), *REFERENCE, "--timeout", "3")
    assert (got.code, got.phase) == ("L6RSP", "tls")


def test_a_stale_replica_is_l7rsp_and_a_fresh_one_keeps_the_search_s_cause():
    checked = registry.load("ldap").parse(["--uri", "ldap://127.0.0.1:9", "--base", BASE,
                                           "--provider", "ldap://127.0.0.1:10"])
    search = Result(True, summary="1 entry", perfdata=(("time", 0.004, "s"),), cause=Cause("L7OK"))
    now = time.time()
    stale = replication.judge(checked, search, (BASE, [csn(now - 3600)]),
                              [(checked.providers[0], (BASE, [csn(now - 600)]))], now)
    fresh = replication.judge(checked, search, (BASE, [csn(now - 600)]),
                              [(checked.providers[0], (BASE, [csn(now - 600)]))], now)
    assert (stale.ok, stale.cause) == (False, Cause("L7RSP", "replication", "stale"))
    assert (fresh.ok, fresh.cause) == (True, Cause("L7OK"))
