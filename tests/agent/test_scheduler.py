"""The schedule on a controlled clock: spread, jitter, no overlap, a probe that never returns.

Time is the one thing a scheduler test must own, so these drive the agent's
main-loop steps by hand with a clock the test advances. The probe runs are
handed to a recorder instead of threads, which is exactly what a probe that
never returns looks like to the scheduler; results are then posted the way
a probe thread posts them.
"""

import random

import pytest

from harness.peers.agent import agent_toml
from kachecks.agent import config, daemon, trackfile
from kachecks.checks.result import Result

GOOD = "kachecks-http --url http://192.168.8.101/service.txt --digest 5f2b4547f41470dc3e293e7267461575"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Recorder:
    """Takes runs and never runs them."""

    def __init__(self):
        self.runs = []

    def submit(self, fn, *args):
        self.runs.append(args)  # (runner, run number, spec, due)

    def close(self):
        pass


@pytest.fixture
def make_agent(tmp_path):
    def make(count=1, **keys):
        checks = [{"name": f"web{i}", "command": GOOD, **keys} for i in range(1, count + 1)]
        path = tmp_path / "kachecks.toml"
        path.write_text(agent_toml(checks, tmp_path / "track"))
        cfg = config.load(str(path))
        trackfile.prepare(cfg.track_dir)
        lines = []
        clock = Clock()
        agent = daemon.Agent(cfg, log=lambda message, priority=0: lines.append(message),
                             rng=random.Random(7), clock=clock)
        agent.pool = Recorder()
        agent._install(cfg.checks)
        return agent, clock, lines

    return make


def post(agent, run, ok=True, started=None, finished=None):
    """What the probe thread does when its run ends."""
    runner, number, _, due = run
    result = Result(ok, summary="200 OK") if ok else Result(False, reason="md5 mismatch")
    agent.finish(runner, number, result, started or due, finished or due + 0.001, due)


def test_first_runs_are_spread_evenly_over_the_interval(make_agent):
    agent, clock, _ = make_agent(count=8, interval=4, timeout=1)
    dues = sorted(r.due - clock.now for r in agent.runners.values())
    assert dues == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]


def test_next_runs_keep_the_interval_within_5_percent_jitter_and_do_not_drift(make_agent):
    agent, clock, _ = make_agent(count=1, interval=2, timeout=1)
    (runner,) = agent.runners.values()
    starts = []
    for _ in range(400):
        clock.now = runner.due
        agent.tick(clock.now)
        run = agent.pool.runs[-1]
        starts.append(run[3])
        post(agent, run)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= 2 * 0.95 and max(gaps) <= 2 * 1.05
    assert max(gaps) - min(gaps) > 0.1  # it does jitter
    assert abs(sum(gaps) / len(gaps) - 2) < 0.02  # and keeps the cadence on average


def test_a_probe_that_never_returns_fails_at_its_deadline_and_is_never_overlapped(make_agent):
    agent, clock, lines = make_agent(count=1, interval=2, timeout=1)
    (runner,) = agent.runners.values()
    path = runner.spec.file
    clock.now = runner.due
    agent.tick(clock.now)
    post(agent, agent.pool.runs[0])  # healthy first
    assert open(path).read() == "1\n"
    clock.now = runner.due
    agent.tick(clock.now)  # this one hangs
    assert len(agent.pool.runs) == 2
    clock.now += 1 + daemon.GRACE - 0.01
    agent.tick(clock.now)
    assert open(path).read() == "1\n"  # still within its timeout + grace
    clock.now += 0.02
    agent.tick(clock.now)
    assert open(path).read() == "0\n"
    assert runner.result.reason.startswith("timeout after 1 s: the probe has not returned")
    for _ in range(3):  # due again while stuck: no second run, one more failure each time
        clock.now = runner.due
        agent.tick(clock.now)
    assert len(agent.pool.runs) == 2
    assert runner.stats.runs == 5 and runner.stats.failures == 4
    post(agent, agent.pool.runs[1])  # the late answer is void…
    assert open(path).read() == "0\n" and runner.stats.runs == 5
    clock.now = runner.due
    agent.tick(clock.now)  # …and the next run starts afresh
    assert len(agent.pool.runs) == 3
    post(agent, agent.pool.runs[2])
    assert open(path).read() == "1\n"
    assert [line for line in lines if "DOWN" in line or "UP" in line] == [
        "check web1: [192.168.8.101]:80 DOWN: timeout after 1 s: the probe has not returned"
        f" ({1 + daemon.GRACE:.1f} s)",
        "check web1: [192.168.8.101]:80 UP: 200 OK"]


def test_a_scheduler_far_behind_respreads_instead_of_bursting(make_agent):
    agent, clock, _ = make_agent(count=4, interval=2, timeout=1)
    clock.now += 60  # the agent was stopped (SIGSTOP, a frozen VM) for a minute
    agent.tick(clock.now)
    assert len(agent.pool.runs) == 4  # each check once, now
    for run in agent.pool.runs:
        post(agent, run, started=clock.now)
    dues = [r.due - clock.now for r in agent.runners.values()]
    assert all(0 <= d <= 2 * 1.05 for d in dues), dues
    agent.tick(clock.now)
    assert len(agent.pool.runs) == 4


def test_a_run_still_within_its_deadline_when_the_next_is_due_is_left_alone(make_agent):
    agent, clock, lines = make_agent(count=1, interval=1, timeout=0.9)
    (runner,) = agent.runners.values()
    clock.now = runner.due
    agent.tick(clock.now)
    first = agent.pool.runs[0]
    clock.now = runner.due  # due again after ~1 s; the run may take 0.9 s + 0.5 s grace
    agent.tick(clock.now)
    assert len(agent.pool.runs) == 1 and runner.stats.runs == 0  # skipped, not failed
    post(agent, first, finished=clock.now)  # its own result is the one that counts
    assert runner.stats.runs == 1 and runner.health.display == "UP"
    clock.now = runner.due
    agent.tick(clock.now)
    assert len(agent.pool.runs) == 2
