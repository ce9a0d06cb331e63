"""The schedule on a controlled clock: spread, jitter, deadlines, reloads — no thread, no file.

kachecks.agent.schedule is pure: time comes in as an argument, the executor and the
publisher are handed in. Here the executor is a recorder that never runs anything
(exactly what a probe that never returns looks like to the schedule), the publisher a
dict of track files, and results are posted the way a probe thread posts them:
``schedule.complete(run, result, started, finished)``.
"""

import hashlib
import random

import pytest

from kachecks.agent import config, health, snapshot, status
from kachecks.agent.schedule import GRACE, JITTER, SLACK, SLACK_SHARE, Schedule, diff
from kachecks.checks.result import Result

DIGEST = "5f2b4547f41470dc3e293e7267461575"
GOOD = f"kachecks-http --url http://192.168.8.101/service.txt --digest {DIGEST}"
SHA256 = hashlib.sha256(b"a new page").hexdigest()  # a deploy: another digest
START = 1000.0


def specs(checks, **agent):
    """Validated CheckSpecs, as a kachecks.toml with these [[check]] tables gives them."""
    data = {"agent": {"track_dir": "/run/kachecks/track", "metrics": "", **agent},
            "check": [{"command": GOOD, **check} for check in checks]}
    return config.parse(data, "kachecks.toml").checks


def named(*names, **keys):
    return specs([{"name": name, **keys} for name in names])


class Recorder:
    """The executor: takes runs and never runs them."""

    def __init__(self):
        self.runs = []

    def submit(self, run):
        self.runs.append(run)

    def of(self, name):
        return [run for run in self.runs if run.check.spec.name == name]


class Files:
    """The publisher: track files in a dict; ``failing`` paths cannot be written."""

    def __init__(self):
        self.values = {}
        self.writes = []
        self.failing = {}

    def __call__(self, path, value):
        if path in self.failing:
            return self.failing[path]
        self.values[path] = value
        self.writes.append((path, value))
        return None

    def of(self, name):
        return self.values.get(f"/run/kachecks/track/{name}")


@pytest.fixture
def make():
    def make(checks, now=START):
        executor, files = Recorder(), Files()
        schedule = Schedule(checks, now, rng=random.Random(7), executor=executor,
                            publisher=files, wallclock=lambda: 1.7e9)
        return schedule, executor, files

    return make


def post(schedule, run, ok=True, started=None, finished=None):
    """What the probe thread does when its run ends."""
    result = Result(ok, summary="200 OK") if ok else Result(False, reason="md5 mismatch")
    started = run.due if started is None else started
    return schedule.complete(run, result, started, started + 0.001 if finished is None
                             else finished)


def due_now(schedule, name):
    """Tick at the check's next due time; the time ticked."""
    now = schedule.check(name).due
    schedule.tick(now)
    return now


def test_first_runs_are_spread_evenly_over_the_interval(make):
    schedule, executor, _ = make(named(*(f"web{i}" for i in range(1, 9)), interval=4, timeout=1))
    assert [check.due - START for check in schedule.checks] == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]
    assert schedule.next_wake() == START  # when the first is due, never before
    schedule.tick(START)
    assert [run.check.spec.name for run in executor.runs] == ["web1"]


def test_next_runs_keep_the_interval_within_5_percent_jitter_and_do_not_drift(make):
    schedule, executor, _ = make(named("web1", interval=2, timeout=1))
    for _ in range(400):
        due_now(schedule, "web1")
        post(schedule, executor.runs[-1])
    starts = [run.due for run in executor.runs]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= 2 * (1 - JITTER) and max(gaps) <= 2 * (1 + JITTER)
    assert max(gaps) - min(gaps) > 0.1  # it does jitter
    assert abs(sum(gaps) / len(gaps) - 2) < 0.02  # and keeps the cadence on average


def test_runs_due_within_the_slack_start_on_one_tick(make):
    schedule, executor, _ = make(named(*(f"web{i}" for i in range(200)), interval=1,
                                       timeout=0.5))  # one every 5 ms
    assert schedule.slack == pytest.approx(0.01)  # 1 % of the interval
    schedule.tick(START)
    assert len(executor.runs) == 3  # due at 0, 5 and 10 ms
    assert schedule.next_wake() == pytest.approx(START + 0.015)  # the next batch's first
    schedule.tick(START + 0.015)
    assert [run.due - START for run in executor.runs[3:]] == pytest.approx([0.015, 0.02, 0.025])


def test_the_slack_is_a_percent_of_the_shortest_interval_and_at_most_50_ms(make):
    schedule, _, _ = make([*named("slow", interval=30, timeout=1),
                           *named("fast", interval=2, timeout=1)])
    assert schedule.slack == pytest.approx(SLACK_SHARE * 2)
    assert make(named("slow", interval=30, timeout=1))[0].slack == SLACK == 0.05
    schedule.reload(named("slow", interval=30, timeout=1), START)
    assert schedule.slack == SLACK  # the fast check left


def test_a_probe_that_never_returns_fails_at_its_deadline_and_is_never_overlapped(make):
    schedule, executor, files = make(named("web1", interval=2, timeout=1))
    web1 = schedule.check("web1")
    due_now(schedule, "web1")
    outcome = post(schedule, executor.runs[0])  # healthy first
    assert (outcome.counted, outcome.changed, outcome.lines) == (True, True, [])
    assert files.of("web1") == 1
    hung_at = due_now(schedule, "web1")  # this one hangs
    assert len(executor.runs) == 2
    assert schedule.next_wake() == hung_at + 1 + GRACE  # its deadline comes before the next run
    outcome = schedule.tick(hung_at + 1 + GRACE - 0.01)
    assert not outcome.counted and files.of("web1") == 1  # still within its timeout + grace
    outcome = schedule.tick(hung_at + 1 + GRACE)
    assert outcome.changed and files.of("web1") == 0
    assert outcome.lines == [("check web1: [192.168.8.101]:80 DOWN: timeout after 1 s: the probe"
                              f" has not returned ({1 + GRACE:.1f} s)", 4)]  # LOG_WARNING
    for _ in range(3):  # due again while stuck: no second run, one more failure each time
        outcome = schedule.tick(web1.due)
        assert outcome.counted and not outcome.changed
    assert len(executor.runs) == 2
    assert (web1.stats.runs, web1.stats.failures) == (5, 4)
    assert not post(schedule, executor.runs[1]).counted  # the late answer is void…
    assert files.of("web1") == 0 and web1.stats.runs == 5
    due_now(schedule, "web1")  # …and the next run starts afresh
    assert len(executor.runs) == 3
    outcome = post(schedule, executor.runs[2])
    assert files.of("web1") == 1
    assert outcome.lines == [("check web1: [192.168.8.101]:80 UP: 200 OK", 5)]  # LOG_NOTICE


def test_a_scheduler_far_behind_respreads_instead_of_bursting(make):
    schedule, executor, _ = make(named("web1", "web2", "web3", "web4", interval=2, timeout=1))
    now = START + 60  # the agent was stopped (SIGSTOP, a frozen VM) for a minute
    schedule.tick(now)
    assert len(executor.runs) == 4  # each check once, now
    for run in executor.runs:
        post(schedule, run, started=now)
    assert all(0 <= check.due - now <= 2 * (1 + JITTER) for check in schedule.checks)
    schedule.tick(now)
    assert len(executor.runs) == 4


def test_a_run_still_within_its_deadline_when_the_next_is_due_is_left_alone(make):
    schedule, executor, _ = make(named("web1", interval=1, timeout=0.9))
    web1 = schedule.check("web1")
    due_now(schedule, "web1")
    first = executor.runs[0]
    now = due_now(schedule, "web1")  # due again after ~1 s; the run may take 0.9 s + 0.5 s
    assert len(executor.runs) == 1 and web1.stats.runs == 0  # skipped, not failed
    post(schedule, first, finished=now)  # its own result is the one that counts
    assert web1.stats.runs == 1 and web1.health.display == health.UP
    due_now(schedule, "web1")
    assert len(executor.runs) == 2


def test_a_track_file_that_cannot_be_written_is_said_once_and_again_when_it_can(make):
    schedule, executor, files = make(named("web1", interval=1, timeout=0.5))
    files.failing["/run/kachecks/track/web1"] = "Read-only file system"
    lines = []
    for _ in range(3):
        due_now(schedule, "web1")
        lines += post(schedule, executor.runs[-1]).lines
    assert schedule.check("web1").error == "Read-only file system"
    del files.failing["/run/kachecks/track/web1"]
    due_now(schedule, "web1")
    lines += post(schedule, executor.runs[-1]).lines
    assert [message for message, _ in lines] == [
        "check web1: cannot write /run/kachecks/track/web1: Read-only file system",
        "check web1: /run/kachecks/track/web1 written again"]
    assert schedule.check("web1").error is None and files.of("web1") == 1


def test_after_stop_no_result_is_published_and_every_check_reads_down(make):
    schedule, executor, files = make(named("web1", interval=1, timeout=0.5))
    due_now(schedule, "web1")
    post(schedule, executor.runs[0])
    due_now(schedule, "web1")
    schedule.stop()
    assert not post(schedule, executor.runs[1]).counted
    assert len(files.writes) == 1
    assert (schedule.check("web1").health.value, schedule.check("web1").health.up) == (0, False)


# ---------------------------------------------------------------------- reloads


def test_the_reload_diff_is_by_name_and_file_and_tells_a_changed_command_from_a_kept_one():
    old = specs([{"name": "web1"}, {"name": "web2"}, {"name": "ldap1"}, {"name": "moved"},
                 {"name": "gone"}, {"name": "tuned"}])
    new = specs([{"name": "tuned", "interval": 9, "rise": 3, "fall": 2},  # reordered too
                 {"name": "web1", "command": f"{GOOD} --timeout 1.5"},
                 {"name": "web2", "command": GOOD.replace(DIGEST, SHA256)},
                 {"name": "ldap1"},
                 {"name": "moved", "file": "/run/kachecks/track/elsewhere"},
                 {"name": "fresh"}])
    change = diff(old, new)
    names = {key: [spec.name for spec in getattr(change, key)]
             for key in ("added", "changed", "removed", "kept")}
    assert names == {"added": ["moved", "fresh"], "changed": ["web1", "web2"],
                     "removed": ["moved", "gone"], "kept": ["tuned", "ldap1"]}
    assert change.removed[0].file == "/run/kachecks/track/moved"  # the old spec: its file
    assert change.added[0].file == "/run/kachecks/track/elsewhere"
    assert [spec.name for spec in diff(old, old[::-1]).kept] == [s.name for s in old[::-1]]
    default_timeout = diff(specs([{"name": "web1"}]), specs([{"name": "web1"}], timeout=1))
    assert [spec.name for spec in default_timeout.changed] == ["web1"]  # it runs otherwise


def test_a_changed_command_keeps_the_value_and_state_and_runs_at_once(make):
    schedule, executor, files = make(named("web1", "web2", interval=4, timeout=2, fall=2))
    schedule.tick(START)
    post(schedule, executor.runs[0])
    schedule.tick(START + 2)
    old_web2 = executor.runs[1]  # web2's run of its old command, still in flight
    web1, web2 = schedule.check("web1"), schedule.check("web2")
    since, due = web1.health.since, (web1.due, web2.due)
    writes = len(files.writes)
    now = START + 2.5
    change = schedule.reload(specs([{"name": "web1", "command": f"{GOOD} --timeout 1.5"},
                                    {"name": "web2", "command": GOOD.replace(DIGEST, SHA256)}],
                                   interval=4, timeout=2, fall=2), now)
    assert [s.name for s in change.changed] == ["web1", "web2"] and not change.removed
    assert len(files.writes) == writes  # nothing written: web1 still reads 1
    assert schedule.check("web1") is web1 and web1.health.since == since
    started = executor.runs[2:]
    assert [(run.check, run.due) for run in started] == [(web1, now), (web2, now)]  # at once
    assert started[0].spec.timeout == 1.5 and started[1].spec.argv[-1] == SHA256
    assert (web1.due, web2.due) == due  # the spread of the regular runs is kept
    assert not post(schedule, old_web2, ok=False).counted  # the old command's answer is void
    assert files.of("web2") is None
    post(schedule, started[1])
    assert files.of("web2") == 1
    # rise/fall go on counting across the change: fall 2, one failure keeps web1 up
    assert not post(schedule, started[0], ok=False).changed
    assert files.of("web1") == 1 and web1.health.display == health.UP
    due_now(schedule, "web1")
    assert post(schedule, executor.runs[-1], ok=False).changed and files.of("web1") == 0


def test_a_reordered_configuration_changes_nothing(make):
    checks = named("web1", "web2", "ldap1", interval=3, timeout=1)
    schedule, executor, files = make(checks)
    schedule.tick(START)
    post(schedule, executor.runs[0])
    dues = {check.spec.name: check.due for check in schedule.checks}
    change = schedule.reload(checks[::-1], START + 0.5)
    assert [s.name for s in change.kept] == ["ldap1", "web2", "web1"]
    assert not (change.added or change.changed or change.removed)
    assert len(executor.runs) == 1 and len(files.writes) == 1  # nothing run, nothing written
    assert [check.spec.name for check in schedule.checks] == ["ldap1", "web2", "web1"]
    assert schedule.check("web1").health.display == health.UP
    for due in sorted(dues.values()):  # each check's next run where it was before
        schedule.tick(due)
    assert sorted((run.check.spec.name, run.due) for run in executor.runs[1:]) == sorted(
        dues.items())


def test_removed_checks_stop_counting_and_added_ones_start_pending_and_spread(make):
    schedule, executor, files = make(named("web1", "gone", interval=2, timeout=1))
    schedule.tick(START)
    schedule.tick(START + 1)
    web1_run, gone_run = executor.runs
    now = START + 1.5
    change = schedule.reload(named("web1", "new1", "new2", interval=2, timeout=1), now)
    assert [s.file for s in change.removed] == ["/run/kachecks/track/gone"]
    assert [s.name for s in change.added] == ["new1", "new2"]
    assert not post(schedule, gone_run).counted and files.of("gone") is None
    assert post(schedule, web1_run).counted
    new1, new2 = schedule.check("new1"), schedule.check("new2")
    assert new1.health.display is None and new1.result is None
    assert (new1.due, new2.due) == (now, now + 1)
    with pytest.raises(KeyError):
        schedule.check("gone")


def test_a_check_that_changes_file_is_a_new_check(make):
    schedule, executor, files = make(named("web1", interval=2, timeout=1))
    schedule.tick(START)
    post(schedule, executor.runs[0])
    change = schedule.reload(specs([{"name": "web1", "file": "web1-new"}], interval=2,
                                   timeout=1), START + 0.5)
    assert [s.file for s in change.removed] == ["/run/kachecks/track/web1"]
    assert [s.file for s in change.added] == ["/run/kachecks/track/web1-new"]
    web1 = schedule.check("web1")
    assert web1.health.display is None and web1.stats.runs == 0
    schedule.tick(START + 0.5)
    post(schedule, executor.runs[-1])
    assert files.of("web1-new") == 1


def test_a_new_interval_applies_from_the_next_run_or_sooner(make):
    schedule, executor, _ = make(named("web1", interval=10, timeout=1))
    schedule.tick(START)
    post(schedule, executor.runs[0])
    assert schedule.check("web1").due > START + 9
    change = schedule.reload(named("web1", interval=2, timeout=1), START + 1)
    assert [s.name for s in change.kept] == ["web1"] and len(executor.runs) == 1
    assert schedule.check("web1").due == START + 3
    assert schedule.check("web1").spec.interval == 2


def test_the_status_document_carries_each_checks_published_state_from_a_snapshot(make):
    schedule, executor, _ = make(named("web1", "web2", interval=2, timeout=1))
    schedule.tick(START + 1)  # web1 was due at START: it starts 1 s late
    post(schedule, executor.runs[0], started=START + 1)
    post(schedule, executor.runs[1], ok=False)
    taken = snapshot.take(schedule.checks, schedule.lateness,
                          {"/run/kachecks/track/old", *schedule.files}, 1.7e9)
    document = status.document(state="running", pid=911, started=1.7e9 - 60, written=1.7e9,
                               config="/etc/kachecks/kachecks.toml",
                               track_dir="/run/kachecks/track", snapshot=taken)
    assert sorted(document) == ["checks", "config", "files", "pid", "started", "state",
                                "track_dir", "version", "vrrp", "written"]
    assert document["vrrp"] is None  # no [vrrp] table
    assert document["files"] == ["/run/kachecks/track/old", "/run/kachecks/track/web1",
                                 "/run/kachecks/track/web2"]
    web1, web2 = document["checks"]
    assert web1 == {"name": "web1", "file": "/run/kachecks/track/web1",
                    "target": "[192.168.8.101]:80", "state": "UP", "up": True, "value": 1,
                    "since": 1.7e9, "latency": pytest.approx(0.001), "lateness": 1.0,
                    "reason": "200 OK", "runs": 1, "failed_runs": 0, "error": None,
                    "cause": "L7OK", "health": 1, "rise": 1, "fall": 1, "going": None,
                    "downtime": 0.0, "downs": 0, "flapping": False, "state_change": 0.0,
                    "latencies": "1000"}
    assert (web2["state"], web2["value"], web2["reason"]) == ("DOWN", 0, "md5 mismatch")
    lines = status.render(document, now=1.7e9 + 5)
    assert lines[0] == "kachecks agent (pid 911): 2 checks, 1 up"
    assert lines[2].split()[:3] == ["web1", "UP", "1"] and lines[2].endswith("200 OK")
    stopped = status.render(status.stopped(document), now=1.7e9 + 5, alive=False)
    assert [line.split()[1:3] for line in stopped[2:]] == [["STOPPED", "0"]] * 2


class Starved(Recorder):
    """An executor out of threads for the runs of ``starved`` checks (as under a task limit)."""

    def __init__(self, *starved):
        super().__init__()
        self.starved = set(starved)

    def submit(self, run):
        if run.check.spec.name in self.starved:
            raise RuntimeError("can't start new thread")
        super().submit(run)


def test_a_run_that_cannot_start_fails_that_run_and_the_schedule_goes_on():
    executor, files = Starved("web1"), Files()
    schedule = Schedule(named("web1", "web2", interval=2, timeout=1), START, rng=random.Random(7),
                        executor=executor, publisher=files, wallclock=lambda: 1.7e9)
    files.values["/run/kachecks/track/web1"] = 1  # up before the task limit was hit
    outcome = schedule.tick(START)
    assert outcome.counted and outcome.changed
    assert files.of("web1") == 0  # down at once: nothing checks it
    assert outcome.lines == [("check web1: [192.168.8.101]:80 DOWN: the run could not start:"
                              " can't start new thread", 4)]
    web1 = schedule.check("web1")
    assert web1.current is None and web1.stats.failures == 1
    schedule.tick(START + 1)
    post(schedule, executor.of("web2")[0])  # the other check runs on
    assert files.of("web2") == 1
    executor.starved.clear()  # threads again: the next run starts as due
    due_now(schedule, "web1")
    post(schedule, executor.of("web1")[0])
    assert files.of("web1") == 1 and web1.health.display == "UP"


def test_a_changed_command_that_cannot_start_on_reload_is_counted_at_the_next_tick():
    executor, files = Starved(), Files()
    schedule = Schedule(named("web1", interval=2, timeout=1), START, rng=random.Random(7),
                        executor=executor, publisher=files, wallclock=lambda: 1.7e9)
    schedule.tick(START)
    post(schedule, executor.runs[0])
    executor.starved.add("web1")
    schedule.reload(named("web1", interval=2, timeout=0.5), START + 0.5)  # changed: runs at once
    assert schedule.next_wake() < START + 0.5  # the failure is counted without waiting
    outcome = schedule.tick(START + 0.5)
    assert outcome.changed and files.of("web1") == 0


def test_a_snapshot_keeps_its_values_while_the_schedule_moves_on(make):
    schedule, executor, _ = make(named("web1", interval=2, timeout=1))
    due_now(schedule, "web1")
    post(schedule, executor.runs[0])
    taken = snapshot.take(schedule.checks, schedule.lateness, set(schedule.files), 1.7e9)
    due_now(schedule, "web1")
    post(schedule, executor.runs[1], ok=False)
    (view,) = taken.checks
    assert (view.state, view.value, view.runs, view.failures) == ("UP", 1, 1, 0)
    assert view.duration.count == 1 and taken.lateness.count == 1
    assert schedule.check("web1").stats.duration.count == 2 and schedule.lateness.count == 2
