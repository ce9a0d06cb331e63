"""Each check's history (kachecks.agent.history) on a controlled clock: flapping by Nagios'
rule, going up / going down between rise and fall, downtime, causes, the latency ring."""

import random

import pytest

from kachecks.agent import config, history, snapshot, status
from kachecks.agent.health import DOWN, DRAIN, UP
from kachecks.agent.schedule import GRACE, Schedule
from kachecks.checks.result import L4CON, L7OK, L7STS, L7TOUT, Cause, Result

COMMAND = "kachecks-http --url http://192.168.8.101/service.txt"
START = 1000.0


def nagios_percent(states):
    """Nagios' own loop (base/flapping.c, check_for_service_flapping) over a 21-entry history
    first filled with the first state: the reference the incremental sum must equal."""
    slots = [states[0]] * 21
    for state in states[1:]:
        slots = slots[1:] + [state]
    low, high, changes = 0.75, 1.25, 0.0
    for x in range(1, 21):
        if slots[x] != slots[x - 1]:
            changes += (x - 1) * (high - low) / 19 + low
    return changes * 100.0 / 20


def fed(states):
    record = history.History()
    for state in states:
        record.observe(state, None, state, Cause(L7OK), 0.001, 0.0)
    return record


def test_the_percent_state_change_is_nagios_weighted_sum_over_the_last_21_results():
    rng = random.Random(23)
    for _ in range(300):
        states = [rng.choice((UP, UP, UP, DOWN, DRAIN)) for _ in range(rng.randint(1, 60))]
        assert fed(states).state_change == pytest.approx(nagios_percent(states)), states


def test_the_newest_change_weighs_1_25_and_the_oldest_0_75():
    newest = fed([UP] * 20 + [DOWN])
    assert newest.state_change == pytest.approx(1.25 * 100 / 20)
    oldest = fed([UP, DOWN] + [DOWN] * 19)
    assert oldest.state_change == pytest.approx(0.75 * 100 / 20)
    gone = fed([UP, DOWN] + [DOWN] * 20)  # 22 results: that change left the window
    assert gone.state_change == 0


def test_flapping_starts_above_50_percent_and_stops_only_below_25():
    record = fed([UP, DOWN] * 6)  # 11 changes, the newest ones: 11 × ~1.0 of 20 > 50 %
    assert record.state_change > history.FLAP_HIGH and record.flapping
    band = 0
    while record.state_change >= history.FLAP_LOW:  # steady: the changes age and leave
        record.observe(UP, None, UP, Cause(L7OK), 0.001, 0.0)
        if record.state_change >= history.FLAP_LOW:
            assert record.flapping  # still above the low threshold: still flapping
            band += record.state_change <= history.FLAP_HIGH
    assert band and not record.flapping  # it passed through the band, stopped only below
    rising = fed([UP] * 10 + [UP, DOWN] * 4)  # 8 recent changes: ~46 %, not above 50
    assert history.FLAP_LOW < rising.state_change < history.FLAP_HIGH
    assert not rising.flapping  # from not flapping, the band keeps it not flapping


def test_the_ring_keeps_the_last_60_latencies_in_microseconds_oldest_first():
    record = history.History()
    for i in range(75):
        record.observe(UP, UP, UP, Cause(L7OK), (i + 1) / 1e4, float(i))
    assert record.latencies().split() == [str(100 * (i + 1)) for i in range(15, 75)]
    assert history.History().latencies() == ""


# --------------------------------------------------------------- through the schedule


class Runs(list):
    """The executor: keeps the runs it is handed (a probe that never returns)."""

    submit = list.append


def schedule_of(rise=1, fall=1, interval=2, timeout=1):
    data = {"agent": {"track_dir": "/run/kachecks/track", "metrics": ""},
            "check": [{"name": "web1", "command": COMMAND, "interval": interval,
                       "timeout": timeout, "rise": rise, "fall": fall}]}
    runs = Runs()
    schedule = Schedule(config.parse(data, "kachecks.toml").checks, START, rng=random.Random(7),
                        executor=runs, publisher=lambda path, value: None,
                        wallclock=lambda: 1.7e9)
    return schedule, runs


def run_once(schedule, runs, result, at, took=0.002):
    """Tick at ``at`` and answer the run it starts with ``result`` after ``took`` s."""
    check = schedule.check("web1")
    check.due = at  # the next regular run, now (no jitter to reason about)
    schedule._schedule(check, at)
    schedule.tick(at)
    return schedule.complete(runs[-1], result, at, at + took)


OK = Result(True, summary="200 OK")
REFUSED = Result(False, reason="connection refused", cause=Cause(L4CON, "connect", "refused"))
STATUS = Result(False, reason="HTTP 503", cause=Cause(L7STS, "status"))


def entry(schedule):
    """web1's entry in the status document, as the agent writes it (from a snapshot)."""
    taken = snapshot.take(schedule.checks, schedule.lateness, schedule.files, 1.7e9)
    return status.document("running", 1, 1.7e9, 1.7e9, "kachecks.toml", "/run/kachecks/track",
                           taken)["checks"][0]


def test_between_fall_thresholds_a_check_reads_up_going_down_with_haproxy_health():
    schedule, runs = schedule_of(rise=2, fall=3)
    run_once(schedule, runs, OK, START)
    assert entry(schedule)["health"] == 4 and entry(schedule)["going"] is None  # rise+fall-1
    run_once(schedule, runs, REFUSED, START + 2)
    first = entry(schedule)
    assert (first["state"], first["going"], first["health"]) == ("UP", "down", 3)
    run_once(schedule, runs, STATUS, START + 4)
    assert (entry(schedule)["going"], entry(schedule)["health"]) == ("down", 2)
    run_once(schedule, runs, STATUS, START + 6)
    down = entry(schedule)
    assert (down["state"], down["going"], down["health"], down["downs"]) == ("DOWN", None, 0, 1)
    run_once(schedule, runs, OK, START + 8)
    rising = entry(schedule)
    assert (rising["state"], rising["going"], rising["health"]) == ("DOWN", "up", 1)
    run_once(schedule, runs, OK, START + 10)
    assert (entry(schedule)["state"], entry(schedule)["health"]) == ("UP", 4)


def test_downtime_counts_the_time_published_down_and_each_fall_once():
    schedule, runs = schedule_of()
    run_once(schedule, runs, OK, START)
    run_once(schedule, runs, REFUSED, START + 2)  # DOWN from START + 2.002
    run_once(schedule, runs, REFUSED, START + 4)
    run_once(schedule, runs, OK, START + 6)  # UP again at START + 6.002: 4 s down
    run_once(schedule, runs, OK, START + 8)
    run_once(schedule, runs, STATUS, START + 10)
    run_once(schedule, runs, OK, START + 12.5)
    record = schedule.check("web1").history
    assert record.downtime == pytest.approx(4.0 + 2.5)
    assert record.downs == 2
    assert record.results == {L7OK: 4, L4CON: 2, L7STS: 1}
    assert entry(schedule)["cause"] == L7OK


def test_a_check_that_starts_down_has_downtime_but_no_fall():
    schedule, runs = schedule_of()
    run_once(schedule, runs, REFUSED, START)
    run_once(schedule, runs, REFUSED, START + 2)
    assert (entry(schedule)["downtime"], entry(schedule)["downs"]) == (2.0, 0)


def test_flapping_is_judged_on_raw_results_before_rise_and_fall():
    schedule, runs = schedule_of(rise=3, fall=3)
    for i in range(14):  # alternating: the published state never moves from UP
        run_once(schedule, runs, OK if i % 2 == 0 else REFUSED, START + 2 * i)
    flapping = entry(schedule)
    assert flapping["state"] == "UP" and flapping["downs"] == 0
    assert flapping["flapping"] is True and flapping["state_change"] > history.FLAP_HIGH


def test_a_run_stuck_past_its_deadline_fails_with_l7tout():
    schedule, runs = schedule_of(interval=5, timeout=1)
    schedule.tick(START)  # never answered
    schedule.tick(START + 1 + GRACE)
    check = schedule.check("web1")
    assert check.result.cause == Cause(L7TOUT, "", "timeout")
    assert entry(schedule)["cause"] == L7TOUT and check.health.display == DOWN
