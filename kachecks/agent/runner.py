"""The agent's executor: probes written as steps run on the event loop, the others in threads.

The schedule hands each due run to ``submit`` (the seam of kachecks.agent.schedule).
A check whose probe is steps (``Check.steps``: HTTP, TCP, TLS over either —
kachecks.net.steps) runs on the agent's one event loop (kachecks.agent.loop):
its socket is watched, its generator resumed when the socket is ready, its
deadline thrown in when it ends. No thread, no hand-over, no wake-up of another
thread: the result is counted and its track file written in the loop's thread,
when the last byte arrives. This is how HAProxy and Envoy check thousands of
servers from one thread each.

A probe that blocks inside a library (ldap3's LDAP client: ``Check.steps`` None)
runs in a pool thread (``Threads``, kachecks.agent.pool: runs handed out together
go back to back on one thread, another takes a run a busy one would make late),
start to finish, and answers from there; so does a step a probe offloads (getaddrinfo for a name),
whose value the loop's thread takes back.

Either way a hung peer holds only its own socket (or thread), up to its deadline.
"""

import heapq
from collections import deque

from kachecks.agent.pool import Pool
from kachecks.checks import contract
from kachecks.checks.result import Result, cause_of
from kachecks.deadline import Deadline
from kachecks.errors import DeadlineExceeded


class Threads:
    """Runs in pool threads, start to finish, each result handed to
    ``answer(run, result, started, finished)`` from that thread."""

    def __init__(self, clock, answer, pool=None):
        self.clock = clock
        self.answer = answer
        self.pool = pool or Pool(clock=clock)

    def submit(self, run):
        self.pool.submit(self._probe, run, due=run.due)

    def _probe(self, run):
        started = self.clock()
        try:
            result = contract.evaluate(run.spec.check, run.spec.target)
        except BaseException as exc:  # noqa: BLE001 - never leave the run unanswered
            result = _internal_error(exc)
        self.answer(run, result, started, self.clock())

    def close(self):
        self.pool.close()


class Flight:
    """One run on the loop: its steps, deadline, the socket watched, what it waits for."""

    __slots__ = ("run", "steps", "deadline", "started", "sock", "fd", "events", "offload",
                 "done")

    def __init__(self, run, steps, deadline, started):
        self.run = run
        self.steps = steps
        self.deadline = deadline
        self.started = started
        self.sock = None  # the socket the loop watches for it
        self.fd = -1  # its descriptor (a closed socket no longer says)
        self.events = 0  # what the loop watches it for
        self.offload = None  # the Offload it waits for, if any
        self.done = False


class Runner:
    """The executor: ``submit(run)`` from the schedule; ``step(now)`` after each tick of
    the loop; ``next_wake()`` for the loop's wait. Results go to
    ``answer(run, result, started, finished)`` (in the loop's thread for runs on the
    loop, in a pool thread for the others)."""

    def __init__(self, loop, clock, answer, threads=None):
        self.loop = loop
        self.clock = clock
        self.answer = answer
        self.threads = threads or Threads(clock, answer)
        self._starting = []  # runs submitted, started at the next step()
        self._paused = deque()  # flights that let others go first
        self._deadlines = []  # (expires, sequence, flight)
        self._sequence = 0
        self._flights = set()
        self._closed = False

    @property
    def in_flight(self):
        """Runs on the loop now."""
        return len(self._flights)

    def submit(self, run):
        """Start ``run``: in a thread now if its probe blocks, else on the loop at the next
        ``step`` (never inside the schedule's call: its result can never come back into
        the schedule while it is handing runs out)."""
        if run.spec.check.steps is None:
            self.threads.submit(run)
        else:
            self._starting.append(run)

    def next_wake(self):
        """When ``step`` must run next (monotonic), or None."""
        if self._starting or self._paused:
            return float("-inf")
        deadlines = self._deadlines
        while deadlines and deadlines[0][2].done:
            heapq.heappop(deadlines)  # that run ended: no need to wake for its deadline
        return deadlines[0][0] if deadlines else None

    def step(self, now):
        """Start the runs submitted, resume the paused ones, end the ones out of time."""
        if self._starting:
            starting, self._starting = self._starting, []
            for run in starting:
                self._start(run)
        for _ in range(len(self._paused)):
            flight = self._paused.popleft()
            if not flight.done:
                self._advance(flight)
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            flight = heapq.heappop(deadlines)[2]
            if not flight.done:
                self._expire(flight)

    def _start(self, run):
        spec = run.spec
        deadline = Deadline(spec.timeout)
        flight = Flight(run, contract.evaluation(spec.check, spec.target, deadline), deadline,
                        self.clock())
        self._flights.add(flight)
        self._advance(flight)
        if not flight.done:  # it waits (a run done at once, a loopback TCP one, needs none)
            self._sequence += 1
            heapq.heappush(self._deadlines, (deadline.expires, self._sequence, flight))

    def _resume(self, flight):
        """The loop's callback: the watched socket is ready (or failed)."""
        if not flight.done and flight.offload is None:
            self._advance(flight)

    def _advance(self, flight, value=None, error=None):
        """Run ``flight``'s steps until they wait again, or end."""
        try:
            if error is None:
                wanted = flight.steps.send(value)
            else:
                wanted = flight.steps.throw(error)
        except StopIteration as end:
            self._finish(flight, end.value)
            return
        except BaseException as exc:  # noqa: BLE001 - a bug: the run still ends, said so
            self._finish(flight, _internal_error(exc))
            return
        try:
            if type(wanted) is tuple:
                sock, events = wanted
                if sock is not flight.sock:
                    flight.sock, flight.events = sock, events
                    flight.fd = self.loop.watch(sock, events, self._resume, flight)
                elif events != flight.events:
                    flight.events = events
                    self.loop.rewatch(flight.fd, events)
            elif wanted is None:
                self._paused.append(flight)
            else:
                flight.offload = wanted
                self.threads.pool.submit(self._offloaded, flight, wanted)
        except (OSError, RuntimeError, MemoryError) as exc:
            # no epoll entry, no thread: the run cannot go on, and fails (fail-closed)
            flight.offload = None
            flight.steps.close()
            self._finish(flight, Result(False, reason=f"the run could not go on: {exc}"))

    def _offloaded(self, flight, offload):
        """In a pool thread: the offloaded call, its outcome handed back to the loop."""
        try:
            value, error = offload.call(*offload.args), None
        except Exception as exc:  # noqa: BLE001 - thrown into the steps
            value, error = None, exc
        self.loop.call_soon_threadsafe(self._taken_back, flight, offload, value, error)

    def _taken_back(self, flight, offload, value, error):
        if flight.done or flight.offload is not offload:
            return  # out of time meanwhile: what it found is of no use now
        flight.offload = None
        self._advance(flight, value, error)

    def _expire(self, flight):
        """The deadline ended: thrown in, where the steps wait (they say which phase)."""
        flight.offload = None
        self._advance(flight, error=TimeoutError())
        if not flight.done:  # steps that go on past their deadline: a bug, ended here
            flight.steps.close()
            failure = DeadlineExceeded("probe", flight.deadline.timeout)
            self._finish(flight, Result(False, reason=str(failure), cause=cause_of(failure)))

    def _finish(self, flight, result):
        flight.done = True
        self._flights.discard(flight)
        if flight.sock is not None:
            self.loop.forget(flight.fd, flight)
        if self._closed:
            return
        self.answer(flight.run, result, flight.started, self.clock())

    def close(self):
        """Abandon every run on the loop (their sockets closed now); pool threads end when
        their run does."""
        self._closed = True
        for flight in list(self._flights):
            flight.done = True
            flight.steps.close()
        self._flights.clear()
        self._starting.clear()
        self._paused.clear()
        self.threads.close()


def _internal_error(exc):
    return Result(False, reason=f"internal error: {type(exc).__name__}: {exc}")
