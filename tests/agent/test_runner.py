"""The agent's executor on its event loop (kachecks.agent.runner): a run done within its
first step is answered there and leaves nothing to wake for; a run that waits is woken
for at its deadline and answered then."""

import socket
import time
from types import SimpleNamespace

from kachecks.agent.loop import Loop
from kachecks.agent.runner import Runner
from kachecks.checks.result import Result
from kachecks.net.steps import READ


def run_of(steps, timeout=0.2):
    """A Run (kachecks.agent.schedule.Run's fields the runner reads) of a check whose probe
    is ``steps(target, deadline)``."""
    check = SimpleNamespace(steps=steps)
    target = SimpleNamespace(drain_file=None, timeout=timeout)
    return SimpleNamespace(spec=SimpleNamespace(check=check, target=target, timeout=timeout))


def test_a_run_done_within_its_first_step_is_answered_at_once_with_no_deadline_left():
    answers = []
    loop = Loop()
    runner = Runner(loop, time.monotonic, lambda run, result, *_: answers.append(result))
    try:

        def done_at_once(target, deadline):
            return Result(True, summary="connected")
            yield  # a generator that never waits

        runner.submit(run_of(done_at_once))
        runner.step(time.monotonic())
        assert [a.summary for a in answers] == ["connected"]
        assert runner.in_flight == 0
        assert runner.next_wake() is None  # no deadline to wake the loop for
    finally:
        runner.close()
        loop.close()


def test_a_run_that_waits_is_woken_for_at_its_deadline_and_answered_then():
    answers = []
    loop = Loop()
    runner = Runner(loop, time.monotonic, lambda run, result, *_: answers.append(result))
    quiet, other = socket.socketpair()
    try:

        def waits_for_nothing(target, deadline):
            try:
                yield (quiet, READ)  # nothing ever arrives
            except TimeoutError:
                return Result(False, reason="timed out")
            return Result(True, summary="read")

        started = time.monotonic()
        runner.submit(run_of(waits_for_nothing, timeout=0.2))
        runner.step(started)
        assert answers == [] and runner.in_flight == 1
        wake = runner.next_wake()
        assert started < wake <= time.monotonic() + 0.2
        runner.step(wake)
        assert [a.reason for a in answers] == ["timed out"]
        assert runner.in_flight == 0 and runner.next_wake() is None
    finally:
        runner.close()
        loop.close()
        quiet.close()
        other.close()
