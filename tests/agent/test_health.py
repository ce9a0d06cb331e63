"""Rise/fall and track-file values: keepalived's vrrp_script rules, the forked check's weights."""

import pytest

from kachecks.agent.health import DOWN, DRAIN, UP, Health
from kachecks.checks import registry, verdict
from kachecks.checks.result import Result

OK = Result(True, summary="200 OK")
FAIL = Result(False, reason="md5 mismatch")
DRAINED = Result(True, summary="drained by /etc/kachecks/drain-web1", drain=True, weight=0)


def target(*args):
    return registry.load("http").parse(["--url", "http://192.168.8.101/service.txt", *args])


def feed(results, rise=1, fall=1, dynamic=False, weight=1):
    """[(display, value)] after each result."""
    health = Health()
    seen = []
    options = target(*(["--dynamic"] if dynamic else []), "--weight", str(weight))
    for i, result in enumerate(results):
        judged = verdict.judge(result, options)
        health.observe(judged, dynamic, rise, fall, now=i)
        seen.append((health.display, health.value))
    return seen


def test_the_first_result_decides_whatever_rise_and_fall():
    assert feed([FAIL], rise=3, fall=3) == [(DOWN, 0)]
    assert feed([OK], rise=3, fall=3) == [(UP, 1)]


def test_fall_consecutive_failures_take_it_down_and_a_success_resets_the_count():
    assert feed([OK, FAIL, FAIL, OK, FAIL, FAIL, FAIL], fall=3) == [
        (UP, 1), (UP, 1), (UP, 1), (UP, 1), (UP, 1), (UP, 1), (DOWN, 0)]


def test_rise_consecutive_successes_bring_it_back():
    assert feed([FAIL, OK, FAIL, OK, OK], rise=2) == [
        (DOWN, 0), (DOWN, 0), (DOWN, 0), (DOWN, 0), (UP, 1)]


def test_dynamic_values_are_the_weight_the_forked_check_would_exit_with():
    weighted = Result(True, summary="ok", weight=40)
    assert feed([OK, weighted, FAIL, OK], dynamic=True, weight=10, fall=1) == [
        (UP, 10), (UP, 40), (DOWN, 0), (UP, 10)]
    assert feed([Result(True, weight=900)], dynamic=True) == [(UP, 253)]  # exit codes stop at 255


def test_a_weight_change_applies_at_once_but_a_failure_waits_for_fall():
    weighted = Result(True, summary="ok", weight=5)
    assert feed([OK, FAIL, weighted], dynamic=True, weight=10, fall=2) == [
        (UP, 10), (UP, 10), (UP, 5)]


def test_a_drain_is_an_operator_decision_and_ignores_fall():
    assert feed([OK, DRAINED, OK], fall=5) == [(UP, 1), (DRAIN, 0), (UP, 1)]
    assert feed([OK, DRAINED, OK], fall=5, rise=2) == [(UP, 1), (DRAIN, 0), (DRAIN, 0)]


def test_a_dynamic_drain_stays_up_with_weight_0():
    assert feed([OK, DRAINED, OK], dynamic=True, weight=7) == [(UP, 7), (DRAIN, 0), (UP, 7)]


@pytest.mark.parametrize("results, changes", [
    ([OK, OK, FAIL, FAIL], [(True, None), (False, UP), (True, UP), (False, DOWN)]),
    ([FAIL, OK], [(True, None), (True, DOWN)]),
])
def test_observe_reports_only_changes_of_what_is_published(results, changes):
    health = Health()
    got = [health.observe(verdict.judge(r, target()), False, 1, 1, now=i)
           for i, r in enumerate(results)]
    assert got == changes
    assert health.since == max(i for i, (changed, _) in enumerate(changes) if changed)
