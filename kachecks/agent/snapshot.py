"""The agent's published state at one instant, in plain values nobody else changes.

Taken under ``stats.LOCK`` by the agent's main loop whenever it rewrites the status
document (kachecks.agent.daemon: at most once a second, when something changed), and
incrementally: a check that did not change since the last
snapshot keeps its view (views are never changed, so two snapshots may share
them), so a snapshot of 10,000 checks of which 30 changed copies 30 checks and a
list. Everything that shows the agent's state renders from the last snapshot, in
its own thread and its own time, without the lock: the status document,
``/metrics`` (and whatever the endpoint serves next). So however slow a render and
however many scrapers, the schedule and the probe threads never wait for them.
"""

import itertools

from kachecks.agent import history as histories
from kachecks.agent import stats

_NUMBERS = itertools.count(1)


class CheckView:
    """One check as it stood (kachecks.agent.schedule.Check, copied), its history with it
    (kachecks.agent.history). Under the lock only copies are made; what is derived from
    them (the cause's code, the health, "going down", the ring as text) is worked out
    when a reader asks, outside it."""

    __slots__ = ("name", "file", "target", "state", "up", "value", "since", "latency",
                 "lateness", "reason", "runs", "failures", "transitions", "duration", "error",
                 "results", "downtime", "downs", "flapping", "state_change", "rise", "fall",
                 "_cause", "_counts", "_ring")

    def __init__(self, check):
        spec, health, result, stats = check.spec, check.health, check.result, check.stats
        self.name, self.file, self.target = spec.name, spec.file, spec.target.identity
        self.state = health.display  # UP, DRAIN, DOWN; None before the first result
        self.up = bool(health.up)
        self.value = health.value
        self.since = health.since
        self.latency = check.latency
        self.lateness = check.lateness
        self.reason = (result.summary if result.ok else result.reason) if result else None
        self.runs = stats.runs
        self.failures = stats.failures
        self.transitions = stats.transitions
        self.duration = stats.duration.copy()
        self.error = check.error
        record = check.history
        self.results = record.results.copy()  # {cause code: runs}
        self.downtime, self.downs = record.downtime, record.downs
        self.flapping, self.state_change = record.flapping, record.state_change
        self.rise, self.fall = spec.rise, spec.fall
        self._cause = record.cause
        self._counts = (health.up, health.successes, health.failures)
        self._ring = record.ring()

    @property
    def cause(self):
        """The last result's cause code (L7OK, L4CON…), or None before the first."""
        return self._cause.code if self._cause is not None else None

    @property
    def health(self):
        return histories.position(self._health(), self.rise, self.fall)

    @property
    def going(self):
        """"down" while up but failing, "up" while down but passing, else None."""
        going = histories.going(self._health(), self.rise, self.fall)
        return going[0] if going else None

    @property
    def latencies(self):
        return histories.text(self._ring)

    def _health(self):
        up, successes, failures = self._counts
        return histories.Counts(up, successes, failures)


class Snapshot:
    """``checks`` (CheckView, configuration order), the schedule's ``lateness`` histogram,
    every track ``file`` the agent wrote or manages, when it was ``taken`` (Unix time), and
    ``vrrp``: the pair as the [vrrp] watch last saw it (kachecks.agent.pair.PairView, plain
    values already; None before the agent starts).

    ``number`` tells snapshots apart; ``base`` is the number of the one it was made
    from and ``fresh`` the positions in ``checks`` whose view is new since (every one
    when ``base`` is None): what a renderer that rendered ``base`` has to render again."""

    __slots__ = ("checks", "lateness", "files", "taken", "vrrp", "number", "base", "fresh",
                 "_of", "_position")

    def __init__(self, checks, lateness, files, taken, vrrp=None, base=None, fresh=None):
        self.checks = checks
        self.lateness = lateness
        self.files = files
        self.taken = taken
        self.vrrp = vrrp
        self.number = next(_NUMBERS)
        self.base = base
        self.fresh = range(len(checks)) if fresh is None else fresh
        self._of = ()  # the schedule's checks tuple the views are of
        self._position = {}  # schedule Check -> index


def take(checks, lateness, files, now, vrrp=None, previous=None, changed=None):
    """A Snapshot of schedule ``checks`` and ``lateness`` (and the pair's view ``vrrp``);
    the caller holds stats.LOCK.

    With ``previous`` (a snapshot of the same ``checks`` tuple) and ``changed`` (the
    checks that may differ since), only those are copied anew: the others keep
    ``previous``'s views. ``files``: every track file; ``previous.files`` itself is
    taken as it is (sorted already)."""
    taking = Taking(checks, previous, changed)
    taking.step()
    return taking.finish(lateness, files, now, vrrp)


class Taking:
    """A snapshot taken a slice of checks at a time (``take``, spread over calls): the
    agent's loop copies, say, 250 views, runs what is due, copies the next 250, so a
    snapshot of 10,000 changed checks never holds the loop (and the runs due meanwhile)
    for the whole copy. Each view is copied under stats.LOCK (the caller holds it for
    each call); the snapshot is of the instants its slices were copied at."""

    __slots__ = ("checks", "previous", "views", "fresh", "position", "_next", "changed")

    def __init__(self, checks, previous=None, changed=None):
        self.checks = checks
        self.changed = changed  # what this snapshot was asked to copy (None: every check)
        fresh: list[int] | range
        if previous is not None and changed is not None and checks is previous._of:
            self.previous = previous
            self.views = list(previous.checks)
            self.position = previous._position
            fresh = sorted({self.position[check] for check in changed
                            if check in self.position})
        else:
            self.previous = None
            self.views = [None] * len(checks)
            self.position = {check: index for index, check in enumerate(checks)}
            fresh = range(len(checks))
        self.fresh = fresh
        self._next = 0  # into ``fresh``: the next view to copy

    @property
    def done(self):
        return self._next >= len(self.fresh)

    def step(self, limit=None):
        """Copy the next ``limit`` views (every one left: None); the positions copied."""
        end = len(self.fresh) if limit is None else min(len(self.fresh), self._next + limit)
        indexes = self.fresh[self._next:end]
        views, checks = self.views, self.checks
        for index in indexes:
            views[index] = CheckView(checks[index])
        self._next = end
        return indexes

    def finish(self, lateness, files, now, vrrp=None):
        """The Snapshot, once ``done``: the schedule's ``lateness`` copied now."""
        previous = self.previous
        listed = files if previous is not None and files is previous.files else \
            tuple(sorted(files))
        if previous is not None:
            snapshot = Snapshot(tuple(self.views), lateness.copy(), listed, now, vrrp,
                                previous.number, self.fresh)
        else:
            snapshot = Snapshot(tuple(self.views), lateness.copy(), listed, now, vrrp)
        snapshot._of, snapshot._position = self.checks, self.position
        return snapshot


EMPTY = Snapshot((), stats.Histogram(stats.LATENESS_BUCKETS), (), 0.0)  # before the first
