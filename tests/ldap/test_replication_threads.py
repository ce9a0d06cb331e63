"""--provider off the main thread (kachecks agent runs checks so): bounded, thread-safe."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.checks import REFERENCE
from kachecks.checks import registry
from kachecks.checks.contract import evaluate

pytestmark = pytest.mark.slow

SLACK = 1.0


@pytest.fixture(autouse=True, scope="module")
def ldap3_loaded():
    """These tests time a stopped provider, not ldap3's first import (a cold cache compiles
    it, over a second on a loaded machine): a resident agent pays that once, so do we."""
    import ldap3  # noqa: F401


def target_for(repl, *extra):
    check = registry.load("ldap")
    return check, check.parse(["--uri", repl.consumer.url, *REFERENCE,
                               "--provider", repl.providers[0].url, *extra])


def readers():
    return [t for t in threading.enumerate() if t.name == "kachecks contextCSN"]


def test_a_stopped_provider_is_bounded_by_the_timeout_off_the_main_thread(replication,
                                                                          in_thread):
    check, target = target_for(replication, "--timeout", "1")
    replication.providers[0].pause()
    result, took = in_thread(lambda: evaluate(check, target))
    assert took < 1 + SLACK
    assert result.ok, result
    assert result.warning.startswith(f"provider {replication.providers[0].url} unreachable: TCP"
                                     " connection accepted but no LDAP answer within 1 s")
    assert readers() == []  # the reader threads ended with the deadline


def test_a_stopped_provider_with_provider_down_fail_is_a_failure_off_the_main_thread(
        replication, in_thread):
    check, target = target_for(replication, "--timeout", "1", "--provider-down", "fail")
    replication.providers[0].pause()
    result, took = in_thread(lambda: evaluate(check, target))
    assert took < 1 + SLACK
    assert not result.ok
    assert result.reason.startswith(f"provider {replication.providers[0].url} unreachable")


def test_one_target_judged_from_several_threads_at_once(replication):
    replication.write()
    time.sleep(1.2)
    check, fresh = target_for(replication)
    _, stale = target_for(replication, "--max-lag", "1")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda t: evaluate(check, t), [fresh, stale] * 3, timeout=60))
    assert [r.ok for r in results] == [True, False] * 3, results
    assert all(" behind " in r.summary for r in results[::2])
    assert all(r.reason.startswith("behind by ") for r in results[1::2])
    assert readers() == []
