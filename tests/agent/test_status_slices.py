"""The status document rewritten a slice of checks at a time, in the agent's own loop.

A rewrite copies each changed check's view under the schedule's lock and renders its
entry; with thousands of changed checks that is hundreds of milliseconds, during which
no run due would start. So the agent copies and renders ``STATUS_SLICE`` checks per
turn of its loop and writes the document after the last slice. Driven here without a
thread or a socket: a schedule whose executor only records runs, results posted as the
loop posts them, the agent's turns taken one by one; the document must be, byte for
byte, what the whole of the snapshot renders to.
"""

import json
import math
import random

import pytest

from kachecks.agent import config, daemon, status
from kachecks.agent.schedule import Schedule
from kachecks.checks.result import Result

START = 1000.0
COUNT = 2 * daemon.STATUS_SLICE + 100  # three slices


class Runs:
    """The executor: takes runs and never runs them."""

    def __init__(self):
        self.runs = []

    def submit(self, run):
        self.runs.append(run)

    def next_wake(self):
        return None

    def close(self):
        pass


class Tracks:
    """The publisher: track files in a dict."""

    def __init__(self):
        self.values = {}
        self.written = set()

    def __call__(self, path, value):
        self.values[path] = value
        self.written.add(path)
        return None

    def blind(self):
        return None


@pytest.fixture
def agent():
    data = {"agent": {"track_dir": "/run/kachecks/track", "metrics": ""},
            "check": [{"name": f"c{i}", "command": "kachecks-tcp --host 192.168.8.101 --port 80",
                       "interval": "2s", "timeout": "1s"} for i in range(COUNT)]}
    cfg = config.parse(data, "/etc/kachecks/kachecks.toml")
    documents = []
    runs, tracks = Runs(), Tracks()
    agent = daemon.Agent(cfg, log=lambda *args: None, runner=runs, tracks=tracks,
                         status_writer=lambda path, pieces: documents.append(b"".join(pieces)),
                         post=lambda event: None, clock=lambda: START)
    agent.schedule = Schedule(cfg.checks, START, rng=random.Random(7), executor=runs,
                              publisher=tracks, wallclock=lambda: 1.7e9)
    agent.runs, agent.documents = runs, documents
    yield agent
    agent.loop.close()


def run_all(agent, now, ok=True):
    """Every check due by ``now`` started and answered; how many."""
    before = len(agent.runs.runs)
    agent.schedule.tick(now)
    started = agent.runs.runs[before:]
    for run in started:
        answer(agent, run, ok)
    return len(started)


def answer(agent, run, ok=True):
    result = Result(True, summary="connected") if ok else Result(False, reason="refused")
    agent.schedule.complete(run, result, run.due, run.due + 0.001)


def due(agent):
    """What the loop does when results came in (these did without it): the document is
    to be rewritten, and its period is over."""
    agent.status_dirty = agent.status_urgent = True
    agent.status_due = 0.0


def whole(agent, state="running"):
    """The document of the agent's last snapshot, rendered whole at once."""
    return status._json(agent._document_of(agent.snapshot, state))


def turns_until_written(agent, now):
    """The agent's turns (housekeeping) until it wrote a document."""
    before = len(agent.documents)
    for turn in range(1, 100):
        agent._housekeeping(now)
        if len(agent.documents) > before:
            return turn
    raise AssertionError("no document written in 100 turns")


def test_a_rewrite_of_many_changed_checks_is_spread_over_turns_of_the_loop(agent):
    agent._write_status()  # the first document: every check pending
    assert run_all(agent, START + 2.5) == COUNT
    due(agent)
    assert turns_until_written(agent, START + 2.5) == math.ceil(COUNT / daemon.STATUS_SLICE)
    assert agent.documents[-1] == whole(agent)
    assert [c["runs"] for c in json.loads(agent.documents[-1])["checks"]] == [1] * COUNT


def test_a_check_answering_during_a_rewrite_is_in_it_or_in_the_next(agent):
    agent._write_status()
    run_all(agent, START + 2.5)
    due(agent)
    agent._housekeeping(START + 2.5)  # the first slice copied: c0 among it
    first, last = agent.schedule.check("c0"), agent.schedule.check(f"c{COUNT - 1}")
    for check in (first, last):  # both answer again before the rewrite is done
        agent.schedule.tick(check.due)
        answer(agent, next(r for r in agent.runs.runs if r.check is check and r.due > START + 2),
               ok=False)
    while agent.taking is not None:
        agent._housekeeping(START + 2.5)
    runs = {c["name"]: c["runs"] for c in json.loads(agent.documents[-1])["checks"]}
    assert (runs[first.spec.name], runs[last.spec.name]) == (1, 2)  # c0 copied before
    assert agent.documents[-1] == whole(agent)
    due(agent)
    turns_until_written(agent, START + 2.5)
    runs = {c["name"]: c["runs"] for c in json.loads(agent.documents[-1])["checks"]}
    assert runs[first.spec.name] == 2
    assert agent.documents[-1] == whole(agent)


def test_a_whole_rewrite_during_a_sliced_one_drops_it_and_loses_no_check(agent):
    agent._write_status()
    run_all(agent, START + 2.5)
    due(agent)
    agent._housekeeping(START + 2.5)  # one slice of three
    agent._write_status(state="stopped")  # a reload or the stop: written now, whole
    assert agent.taking is None
    document = json.loads(agent.documents[-1])
    assert document["state"] == "stopped" and agent.documents[-1] == whole(agent, "stopped")
    assert [c["runs"] for c in document["checks"]] == [1] * COUNT
    run_all(agent, START + 5)
    due(agent)
    turns_until_written(agent, START + 5)
    assert agent.documents[-1] == whole(agent)
    assert [c["runs"] for c in json.loads(agent.documents[-1])["checks"]] == [2] * COUNT
