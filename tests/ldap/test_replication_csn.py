"""contextCSN parsing and the per-SID comparison, on values as slapd writes them."""

import calendar
import time

import pytest

from harness.peers.slapd import csn
from kachecks.checks import registry, replication
from kachecks.checks.result import Result
from kachecks.errors import ProbeFailure

PROVIDER = "ldap://127.0.0.1:10"
SEARCH = Result(True, summary="1 entry, o=mysite.mydmn.org in 0.004 s",
                perfdata=(("time", 0.004, "s"),))
BASE = "dc=mysite,dc=mydmn,dc=org"


def target(*extra):
    return registry.load("ldap").parse(["--uri", "ldap://127.0.0.1:9", "--base", BASE,
                                        "--provider", PROVIDER, *extra])


def judge(mine, theirs, now, *extra):
    checked = target(*extra)
    return replication.judge(checked, SEARCH, (BASE, mine), [(checked.providers[0], theirs)],
                             now)


def lag(result):
    return dict((label, value) for label, value, _ in result.perfdata)["lag"]


def test_a_csn_is_read_to_the_microsecond():
    parsed = replication.parse_csn("20261130162402.555476Z#00000a#001#000000")
    assert parsed.time == calendar.timegm((2026, 11, 30, 16, 24, 2)) * 1_000_000 + 555476
    assert (parsed.count, parsed.sid, parsed.mod) == (10, "001", 0)


@pytest.mark.parametrize("text, seconds", [
    ("19700101000000.000001Z#000000#000#000000", 0.000001),
    ("20000229235959.999999Z#000000#001#000000",
     calendar.timegm((2000, 2, 29, 23, 59, 59)) + 0.999999),
    ("20040302120000Z#000001#00#000000", calendar.timegm((2004, 3, 2, 12, 0, 0))),  # OpenLDAP 2.3
])
def test_csn_times_are_utc(text, seconds):
    assert replication.parse_csn(text).seconds() == pytest.approx(seconds, abs=1e-6)


@pytest.mark.parametrize("text", [
    "", "garbage", "20261130162402.555476#000000#001#000000",
    "2026113016240.555476Z#000000#001#000000", "20261130162402.5554761Z#000000#001#000000",
    "20261130162402.555476Z#000000#001", "20261130162402.555476Z#00000g#001#000000",
    "20261330162402.555476Z#000000#001#000000", "20261130162402.555476Z#000000##000000",
])
def test_anything_else_is_not_a_csn(text):
    with pytest.raises(ValueError):
        replication.parse_csn(text)


def test_the_newest_value_of_each_server_id_counts():
    values = [csn(100, sid=1), csn(200, sid=2), csn(150, sid=1, count=3), csn(150, sid=1)]
    newest = replication.by_sid(values)
    assert {sid: c.text for sid, c in newest.items()} == {"001": csn(150, 1, 3),
                                                           "002": csn(200, 2)}


def test_one_microsecond_behind_is_behind_and_the_same_csn_is_in_sync():
    now = int(time.time())
    provider, consumer = csn(now - 2, count=0), csn(now - 2, count=0)
    provider = provider.replace(".000000Z", ".000002Z")
    consumer = consumer.replace(".000000Z", ".000001Z")
    assert judge([consumer], (BASE, [provider]), now).summary.endswith(
        f"; 2.0 s behind {PROVIDER} on SID 001 (max 60 s)")
    assert judge([provider], (BASE, [provider]), now).summary.endswith(
        f"; in sync with {PROVIDER} (SID 001)")


def test_the_change_counter_orders_changes_within_one_microsecond():
    now = time.time()
    behind = judge([csn(now - 5, count=1)], (BASE, [csn(now - 5, count=2)]), now)
    ahead = judge([csn(now - 5, count=3)], (BASE, [csn(now - 5, count=2)]), now)
    assert lag(behind) == pytest.approx(5, abs=1e-3) and lag(ahead) == 0


def test_the_figure_is_the_age_of_the_missing_change_not_the_gap_between_csns():
    # A quiet day, then a write 0.1 s ago: LTB's provider-minus-consumer says 86400 s.
    now = time.time()
    result = judge([csn(now - 86400)], (BASE, [csn(now - 0.1)]), now)
    assert result.ok and lag(result) == pytest.approx(0.1, abs=1e-3)


def test_a_change_older_than_max_lag_fails_naming_sid_and_provider():
    now = time.time()
    result = judge([csn(now - 100, sid=2), csn(now - 90)],
                   (BASE, [csn(now - 61), csn(now - 100, sid=2)]), now)
    assert not result.ok
    assert result.reason == f"behind by 61.0 s on SID 001 of {PROVIDER} (max 60 s)"
    assert lag(result) == pytest.approx(61, abs=1e-3)


def test_the_oldest_missing_change_is_the_one_reported():
    now = time.time()
    result = judge([csn(now - 300), csn(now - 300, sid=2)],
                   (BASE, [csn(now - 10), csn(now - 70, sid=2)]), now)
    assert result.reason == f"behind by 70.0 s on SID 002 of {PROVIDER} (max 60 s)"


def test_a_missing_server_id_fails_with_its_own_message_once_older_than_max_lag():
    now = time.time()
    provider = (BASE, [csn(now - 100), csn(now - 90, sid=2)])
    result = judge([csn(now - 100)], provider, now)
    assert result.reason == (f"SID 002 missing: {PROVIDER} holds changes of SID 002 this server"
                             " never received, for 90.0 s (max 60 s)")
    young = judge([csn(now - 100)], (BASE, [csn(now - 100), csn(now - 2, sid=2)]), now)
    assert young.ok and young.summary.endswith(f"; SID 002 of {PROVIDER} not here yet, for 2.0 s"
                                               " (max 60 s)")


def freshness(mine, theirs, now, *extra):
    checked = target(*extra)
    return checked, replication.Freshness(checked, (BASE, mine), [(checked.providers[0], theirs)],
                                          now)


def test_a_young_change_over_an_old_csn_asks_for_the_changes_in_between():
    # The server's newest change of SID 001 is an hour old, the provider's 5 s:
    # a quiet hour (fresh) or an hour without replication (stale); the CSNs cannot say.
    now = 1_800_000_000.25
    checked, judged = freshness([csn(now - 3600)], (BASE, [csn(now - 5)]), now)
    assert judged.windows() == [(checked.providers[0], BASE, csn(now - 3600),
                                 "20270115075900.250000Z#ffffff#fff#ffffff")]
    quiet = judged.judge(SEARCH)
    assert quiet.ok and lag(quiet) == pytest.approx(5)


def test_a_change_older_than_max_lag_in_the_window_makes_the_server_stale():
    now = time.time()
    lost, other_sid, had = csn(now - 1800), csn(now - 1700, sid=2), csn(now - 3600)
    result = replication.judge(target(), SEARCH, (BASE, [had, csn(now - 1600, sid=2)]),
                               [(target().providers[0], (BASE, [csn(now - 5),
                                                                csn(now - 1600, sid=2)]))],
                               now, [(target().providers[0], [had, other_sid, lost])])
    assert result.reason == f"behind by 1800.0 s on SID 001 of {PROVIDER} (max 60 s)"


def test_no_window_is_searched_when_the_csns_decide():
    now = time.time()
    for mine, theirs in (([csn(now - 30)], [csn(now - 5)]),  # own CSN younger than max-lag
                         ([csn(now - 3600)], [csn(now - 3600)]),  # in sync
                         ([csn(now - 3600)], [csn(now - 61)]),  # already failing
                         ([csn(now - 3600)], [csn(now - 3600), csn(now - 5, sid=2)])):  # missing
        assert freshness(mine, (BASE, theirs), now)[1].windows() == [], (mine, theirs)


def test_server_ids_only_the_checked_server_has_are_listed_not_judged():
    now = time.time()
    result = judge([csn(now - 5), csn(now - 1, sid=3)], (BASE, [csn(now - 5)]), now, "--verbose")
    assert result.ok and lag(result) == 0
    assert "SID 003: on this server only" in result.details


def test_a_provider_clock_ahead_of_ours_counts_as_no_lag():
    now = time.time()
    result = judge([csn(now - 5)], (BASE, [csn(now + 3)]), now)
    assert result.ok and lag(result) == 0


def test_no_context_csn_on_the_checked_server_is_not_a_replica():
    result = judge([], (BASE, [csn(time.time())]), time.time())
    assert result.reason == (f"not a replica: no contextCSN on {BASE} (no syncrepl or syncprov"
                             " there, or not readable by this bind)")


def test_a_malformed_context_csn_fails_naming_it():
    result = judge(["20261130162402Z"], (BASE, [csn(time.time())]), time.time())
    assert result.reason == f"malformed contextCSN on {BASE}: not a CSN: '20261130162402Z'"


@pytest.mark.parametrize("outcome, message", [
    (ProbeFailure("server down: connection refused", "connect", "unreachable"),
     f"provider {PROVIDER} unreachable: server down: connection refused"),
    (ProbeFailure("invalid credentials for cn=monitor", "bind"),
     f"provider {PROVIDER} failed: invalid credentials for cn=monitor"),
    ((BASE, []), f"provider {PROVIDER} has no contextCSN on {BASE}"),
])
def test_a_provider_that_cannot_be_compared_is_skipped_or_fails(outcome, message):
    now = time.time()
    skipped = judge([csn(now)], outcome, now)
    failed = judge([csn(now)], outcome, now, "--provider-down", "fail")
    assert skipped.ok and skipped.warning == f"{message}; replication freshness not checked"
    assert skipped.summary == SEARCH.summary and skipped.figure_value() is None
    assert not failed.ok and failed.reason == message


@pytest.mark.parametrize("base, contexts, found", [
    ("ou=people,dc=mysite,dc=mydmn,dc=org", ["dc=mysite,dc=mydmn,dc=org", "cn=config"],
     "dc=mysite,dc=mydmn,dc=org"),
    ("OU=People, DC=MySite,DC=mydmn, dc=org", ["dc=mydmn,dc=org", "dc=mysite,dc=mydmn,dc=org"],
     "dc=mysite,dc=mydmn,dc=org"),
    ("cn=a\\,b,dc=mysite,dc=mydmn,dc=org", ["cn=b,dc=mysite,dc=mydmn,dc=org",
                                           "dc=mysite,dc=mydmn,dc=org"],
     "dc=mysite,dc=mydmn,dc=org"),
    ("", ["dc=mysite,dc=mydmn,dc=org"], "dc=mysite,dc=mydmn,dc=org"),
    ("", ["dc=mysite,dc=mydmn,dc=org", "dc=other"], None),
    ("dc=elsewhere", ["dc=mysite,dc=mydmn,dc=org"], None),
])
def test_the_naming_context_holding_the_base_is_the_longest_suffix(base, contexts, found):
    assert replication.naming_context(base, contexts) == found
