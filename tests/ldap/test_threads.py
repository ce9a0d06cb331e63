"""The LDAP probe off the main thread: no SIGALRM there, still bounded by its deadline."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.checks import REFERENCE
from harness.peers import slapd as ldap_peer
from kachecks.checks import registry
from kachecks.checks.contract import evaluate
from kachecks.deadline import Deadline
from kachecks.errors import ProbeFailure

pytestmark = pytest.mark.slow

SLACK = 1.0


def probe(in_thread, args, timeout="1"):
    check = registry.load("ldap")
    target = check.parse([*args, "--timeout", timeout])
    return in_thread(lambda: check.probe(target, Deadline(target.timeout)))


def test_a_listener_that_never_speaks_fails_inside_the_timeout(silent_listener, in_thread):
    outcome, took = probe(in_thread, ["--uri", silent_listener, *REFERENCE])
    assert isinstance(outcome, ProbeFailure)
    assert str(outcome) == "TCP connection accepted but no LDAP answer within 1 s (during search)"
    assert took < 1 + SLACK


@pytest.mark.parametrize("extra, phase", [
    ([], "search"),
    (["--starttls"], "starttls"),
    (["--ldaps"], "tls"),
    (["--bind-dn", ldap_peer.BIND_DN], "bind"),
])
def test_paused_slapd_fails_inside_the_timeout_naming_the_phase(own_slapd, monkeypatch,
                                                                 in_thread, extra, phase):
    monkeypatch.setenv("KACHECKS_LDAP_PASSWORD", ldap_peer.BIND_PASSWORD)
    url = own_slapd.ldaps_url if extra == ["--ldaps"] else own_slapd.url
    extra = [] if extra == ["--ldaps"] else extra
    own_slapd.pause()
    outcome, took = probe(in_thread, ["--uri", url, *REFERENCE, *extra])
    assert isinstance(outcome, ProbeFailure), outcome
    assert str(outcome) == f"TCP connection accepted but no LDAP answer within 1 s (during {phase})"
    assert took < 1 + SLACK


def test_a_server_dripping_its_answer_is_cut_at_the_deadline(dripping_server, in_thread):
    outcome, took = probe(in_thread, ["--uri", dripping_server, "--min-entries", "0"])
    assert isinstance(outcome, ProbeFailure)
    assert "within 1 s (during search)" in str(outcome)
    assert took < 1 + SLACK


def test_reference_check_from_several_threads_at_once(slapd):
    check = registry.load("ldap")
    target = check.parse(["--uri", slapd.url, *REFERENCE])
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: evaluate(check, target), range(4), timeout=30))
    assert len(results) == 4 and all(r.ok for r in results), results
    assert all(f"o={ldap_peer.ORGANIZATION}" in r.summary for r in results)
