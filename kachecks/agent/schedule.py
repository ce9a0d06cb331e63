"""The agent's schedule: when each check runs, what its results mean, what a reload keeps.

Pure: no clock, no thread, no file, no socket. Time comes in as ``now`` (monotonic
seconds) on every call; the random generator, the wall clock, the executor that runs
probes and the publisher that writes a check's value where keepalived reads it are
handed in. The daemon (kachecks.agent.daemon) drives a Schedule from its main loop
and its probe threads, under one lock; tests drive it with a fake clock and a
recorder, with no thread at all.

Scheduling follows HAProxy and Envoy: first runs spread evenly over the interval,
each next run ``interval`` ±5 % after the previous one was due (no slow drift, no
lock-step with other periodic work), never two runs of one check at once. A run
that has not returned ``GRACE`` seconds after its deadline is counted as a failure
at once, and the check stays down while that probe is stuck; its late result is
thrown away. The schedule wakes when the first run is due and hands out every run due
within the ``slack`` after it on that one wake-up (timer slack, as the kernel
coalesces timers): 1 % of the shortest interval, at most ``SLACK`` (50 ms), so no run
starts more than that early, well inside the jitter, and none late for it. An agent
is woken once per batch of runs instead of once per run: on a busy machine a
process that slept pays for cold caches at each wake-up (more than a whole TCP probe
costs), so that is what it saves.

The two seams (what an event-loop executor plugs into instead of threads):

- ``executor.submit(run)`` starts a ``Run``; whoever runs it answers, once, with
  ``schedule.complete(run, result, started, finished)`` ("a result arrives"). An
  executor that cannot start it (no thread, no descriptor, no memory) raises
  OSError, RuntimeError or MemoryError: that run is counted as a failure at once,
  and the schedule goes on;
- ``publisher(path, value)`` is called for every counted result ("publish"): it
  writes the check's value and returns None, or the text of why it could not.

A reload is ``diff(old, new)``: a check is the same check while its name and its
file stay (see ``diff``).
"""

import heapq

from kachecks import syslogger
from kachecks.agent import health as healths
from kachecks.agent import history as histories
from kachecks.agent import stats
from kachecks.checks import contract, verdict
from kachecks.checks.result import L7TOUT, Cause, Result

JITTER = 0.05  # +-5 % of the interval on each run
SLACK = 0.05  # seconds at most: runs due this close after the first start on one wake-up
SLACK_SHARE = 0.01  # ... and at most this share of the shortest interval
GRACE = 0.5  # seconds past a run's timeout before the schedule stops waiting for it


class Diff:
    """What a reload does to each check: the new specs of ``added``, ``changed`` and
    ``kept``, the old specs of ``removed``; each in its configuration's order."""

    __slots__ = ("added", "changed", "removed", "kept")

    def __init__(self, added=(), changed=(), removed=(), kept=()):
        self.added, self.changed = tuple(added), tuple(changed)
        self.removed, self.kept = tuple(removed), tuple(kept)

    def __repr__(self):
        return "Diff(%s)" % ", ".join(f"{key}={[s.name for s in getattr(self, key)]}"
                                      for key in self.__slots__)


def diff(old, new):
    """Compare two configurations' checks (sequences of CheckSpec) by identity.

    A check is the same check while its ``name`` and its ``file`` stay: it keeps its
    state. Its command (the argv and the timeout it runs with) either stayed (kept)
    or changed (changed: run at once). A check whose name or file is new is added; one
    whose name or file went away is removed. Order does not matter.
    """
    before = {(spec.name, spec.file): spec for spec in old}
    added, changed, kept = [], [], []
    for spec in new:
        previous = before.pop((spec.name, spec.file), None)
        if previous is None:
            added.append(spec)
        elif (previous.argv, previous.timeout) != (spec.argv, spec.timeout):
            changed.append(spec)
        else:
            kept.append(spec)
    return Diff(added, changed, before.values(), kept)


class Run:
    """One run handed to the executor: which check, with which spec, due when."""

    __slots__ = ("check", "spec", "due", "dispatched")

    def __init__(self, check, spec, due, dispatched):
        self.check = check
        self.spec = spec
        self.due = due
        self.dispatched = dispatched  # when the schedule handed it out (monotonic)


class Check:
    """One configured check: its spec, published state and counters (read by the status
    document and the metrics), and where it stands in the schedule."""

    __slots__ = ("spec", "health", "stats", "history", "result", "latency", "lateness", "error",
                 "due", "current", "stuck", "removed", "_slot")

    def __init__(self, spec):
        self.spec = spec
        self.health = healths.Health()
        self.stats = stats.CheckStats()
        self.history = histories.History()  # causes, downtime, latencies, flapping
        self.result = None  # the last counted Result
        self.latency = None  # seconds the last counted run took
        self.lateness = None  # seconds the last run started after it was due
        self.error = None  # why the track file could not be written, or None
        self.due = None  # when the next regular run is due (monotonic)
        self.current = None  # the Run in flight, or None
        self.stuck = False  # that run outlived its deadline and was already counted
        self.removed = False  # a reload removed it: nothing it still returns counts
        self._slot = 0  # bumps on each (re)schedule: older heap entries are void


class Outcome:
    """What a call did: ``counted`` results, whether a published state ``changed``,
    and the ``lines`` to log ((message, syslog priority)) once the caller's lock is
    released (a slow syslog must never hold up another check)."""

    __slots__ = ("counted", "changed", "lines")

    def __init__(self, counted=False, changed=False, lines=()):
        self.counted = counted
        self.changed = changed
        self.lines = lines


NOTHING = Outcome()


class Schedule:
    """Every configured check's schedule, runs in flight and published state.

    Not thread-safe: the caller serialises every call (the daemon holds one lock).
    """

    def __init__(self, specs, now, *, rng, executor, publisher, wallclock):
        self.rng = rng
        self.executor = executor
        self.publisher = publisher
        self.wallclock = wallclock  # time.time: when a state changed, for people
        self.lateness = stats.Histogram(stats.LATENESS_BUCKETS)
        self.stopping = False
        self._checks = {}  # name -> Check, in configuration order
        self._ordered = None  # tuple(self._checks.values()), made again after a reload
        self.generation = 0  # bumps when the set of checks changes (a reload)
        self.changed = set()  # checks whose published state changed since the caller took it
        self.news = False  # a published state changed, other than a first result UP (the
        # expected one), since the caller took it: what a status document shows at once
        self._heap = []  # (due, sequence, check, check._slot when scheduled)
        self._deadlines = []  # (deadline, sequence, run)
        self._unstarted = []  # (check, why): runs the executor could not start, to count
        self._sequence = 0
        self.slack = SLACK
        self._install(specs, now)
        self._fit_slack()

    # ------------------------------------------------------------------ reading

    @property
    def checks(self):
        """Every check, in configuration order (the same tuple until a reload)."""
        if self._ordered is None:
            self._ordered = tuple(self._checks.values())
        return self._ordered

    def take_changed(self):
        """The checks whose published state changed since the last call (a set)."""
        changed, self.changed = self.changed, set()
        return changed

    def take_news(self):
        """Whether a check's published state changed since the last call, other than a
        first result being UP: a check went DOWN, came back, drained (``news``)."""
        news, self.news = self.news, False
        return news

    def check(self, name):
        return self._checks[name]

    @property
    def files(self):
        return [check.spec.file for check in self._checks.values()]

    def next_wake(self):
        """When the caller must call ``tick`` next (monotonic), or None: nothing scheduled."""
        if self._unstarted:
            return float("-inf")  # at once: runs that could not start are to be counted
        deadlines = self._deadlines
        while deadlines and deadlines[0][2] is not deadlines[0][2].check.current:
            heapq.heappop(deadlines)  # that run ended: no need to wake for it
        wake = self._heap[0][0] if self._heap else None
        if deadlines and (wake is None or deadlines[0][0] < wake):
            wake = deadlines[0][0]
        return wake

    # ------------------------------------------------------------------ configuration

    def _install(self, specs, now):
        """Checks for ``specs``, their first runs spread evenly over their interval."""
        for index, spec in enumerate(specs):
            check = Check(spec)
            self._checks[spec.name] = check
            self._schedule(check, now + spec.interval * index / max(1, len(specs)))
        self._ordered = None
        self.generation += 1

    def _fit_slack(self):
        intervals = [check.spec.interval for check in self._checks.values()]
        self.slack = min(SLACK, SLACK_SHARE * min(intervals)) if intervals else SLACK

    def reload(self, specs, now):
        """Apply a new configuration's checks; return the Diff.

        Removed checks stop counting (their files are the caller's to zero); added
        ones start down, first runs spread over the interval; kept and changed ones
        keep their state and schedule (a new interval applies from the next run, or
        sooner); a changed one also runs its new command at once, and a run of its
        old command still in flight no longer counts.
        """
        change = diff([check.spec for check in self._checks.values()], specs)
        for spec in change.removed:
            self._checks.pop(spec.name).removed = True
        for spec in (*change.kept, *change.changed):
            check = self._checks[spec.name]
            if spec.interval != check.spec.interval:
                self._schedule(check, min(check.due, now + spec.interval))
            check.spec = spec
        self._install(change.added, now)
        self._checks = {spec.name: self._checks[spec.name] for spec in specs}
        self._ordered = None
        self.changed.update(self._checks.values())  # new specs, new files: every entry anew
        self._fit_slack()
        for spec in change.changed:
            self._start(self._checks[spec.name], now, now)
        return change

    def stop(self):
        """No result counts from now on and every check reads down (the caller zeroes
        the files)."""
        self.stopping = True
        for check in self._checks.values():
            check.health.up, check.health.value = False, 0
        self.changed.update(self._checks.values())

    # ------------------------------------------------------------------ scheduling

    def _schedule(self, check, due):
        check.due = due
        check._slot += 1
        self._sequence += 1
        heapq.heappush(self._heap, (due, self._sequence, check, check._slot))

    def _next_due(self, check, now):
        step = check.spec.interval * (1 + self.rng.uniform(-JITTER, JITTER))
        due = check.due + step
        if due <= now:  # far behind (stopped, suspended): re-spread, do not burst
            due = now + step * self.rng.random()
        return due

    def _start(self, check, now, due):
        run = Run(check, check.spec, due, now)
        check.current = run
        check.stuck = False
        try:
            self.executor.submit(run)
        except (OSError, RuntimeError, MemoryError) as exc:
            check.current = None  # never started: the next tick counts it as failed
            self._unstarted.append((check, f"the run could not start: {exc}"))
            return
        self._sequence += 1
        heapq.heappush(self._deadlines, (now + run.spec.timeout + GRACE, self._sequence, run))

    def tick(self, now):
        """Start the runs due by ``now`` (+ the slack); fail the ones stuck past their deadline
        and the ones that could not start (here or in ``reload``)."""
        lines: list[tuple[str, int]] = []
        counted = changed = False
        heap = self._heap
        while heap and heap[0][0] <= now + self.slack:
            due, _, check, slot = heapq.heappop(heap)
            if check.removed or slot != check._slot:
                continue  # rescheduled or removed since
            self._schedule(check, self._next_due(check, now))
            if check.current is None:
                self._start(check, now, due)
            elif check.stuck:  # past its deadline: one more failure, the file rewritten
                counted = True
                changed |= self._count(check, self._stuck(check, now), check.current.dispatched,
                                       now, lines)
            # else slow but within its deadline: its own result will count
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            run = heapq.heappop(deadlines)[2]
            check = run.check
            if check.removed or run is not check.current or check.stuck:
                continue
            check.stuck = True
            counted = True
            changed |= self._count(check, self._stuck(check, now), run.dispatched, now, lines)
        unstarted, self._unstarted = self._unstarted, []
        for check, why in unstarted:
            if not check.removed:
                counted = True
                changed |= self._count(check, Result(False, reason=why), now, now, lines)
        return Outcome(counted, changed, lines) if counted else NOTHING

    @staticmethod
    def _stuck(check, now):
        # no answer in time, as HAProxy says of a check that outlived its timeout
        return Result(False, reason=f"timeout after {check.spec.timeout:g} s: the probe has not"
                                    f" returned ({now - check.current.dispatched:.1f} s)",
                      cause=Cause(L7TOUT, reason="timeout"))

    # ------------------------------------------------------------------ results

    def complete(self, run, result, started, finished):
        """A run's result arrived (``started``/``finished``: monotonic); count it."""
        self.lateness.observe(max(0.0, started - run.due))
        check = run.check
        check.lateness = started - run.due
        self.changed.add(check)
        if run is not check.current:
            return NOTHING  # a changed command's old run: it says nothing of the new one
        check.current = None
        if check.stuck:
            check.stuck = False
            return NOTHING  # already counted as a timeout; its late result is void
        if check.removed or self.stopping:
            return NOTHING
        lines: list[tuple[str, int]] = []
        changed = self._count(check, result, started, finished, lines)
        return Outcome(True, changed, lines)

    def _count(self, check, result, started, finished, lines):
        """Count one result and publish it; True if the published state changed."""
        spec = check.spec
        self.changed.add(check)
        judged = verdict.judge(result, spec.target)
        changed, previous = check.health.observe(judged, spec.dynamic, spec.rise, spec.fall,
                                                 self.wallclock())
        check.stats.runs += 1
        check.stats.failures += not result.ok
        check.stats.duration.observe(finished - started)
        check.stats.transitions += changed and previous is not None
        check.result = result
        check.latency = finished - started
        check.history.observe(judged.state, previous, check.health.display, result.cause,
                              check.latency, finished)
        self._publish(check, lines)
        news = changed and not (previous is None and check.health.display == healths.UP)
        self.news |= news
        if news and not spec.target.quiet:
            # (--quiet, or the first result being the expected one: nothing to say)
            priority = syslogger.LOG_NOTICE if check.health.up else syslogger.LOG_WARNING
            message = contract.syslog_message(spec.check, spec.target, result, judged)
            lines.append((f"check {spec.name}: {message}", priority))
        return changed

    def _publish(self, check, lines):
        path = check.spec.file
        error = self.publisher(path, check.health.value)
        if error is not None:
            if check.error != error:
                lines.append((f"check {check.spec.name}: cannot write {path}: {error}",
                              syslogger.LOG_ERR))
        elif check.error is not None:
            lines.append((f"check {check.spec.name}: {path} written again", syslogger.LOG_NOTICE))
        check.error = error
