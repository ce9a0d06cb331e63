"""One check's history, as HAProxy's stats page shows a server's and Nagios judges flapping.

What a person asks when a real server misbehaves: why did its last run fail (the
cause code and the reason), how long has it been down in total and how often did it
go down, how slow has it been lately (the last ``RING`` latencies) and is it
flapping. Kept per check by the schedule on every counted result, in O(1) work and
memory per result (a ring, counters, a bit mask): the agent pays nothing per run
for a page that nobody is reading; whoever shows it renders it when asked.

Flapping is Nagios' rule (its "percent state change"), on the raw results (UP,
DRAIN, DOWN as each run judged them, before ``rise``/``fall``): of the last
``FLAP_WINDOW`` results, each change between two consecutive ones counts, the
newest change weighing 1.25 and the oldest 0.75 (linearly between); the sum over the
20 possible changes is a percentage. A check starts flapping above ``FLAP_HIGH`` %
and stops below ``FLAP_LOW`` %; in between it stays as it was.
"""

from array import array

from kachecks.agent import health as healths

RING = 60  # latencies kept per check
# In an array of 32-bit microseconds (240 bytes a check), not a list of numbers or texts
# (60 objects, ~3.6 kB a check: 36 MiB with 10,000 checks once their rings are full).
_RING_TYPE = "I"
_RING_MAX = 0xFFFFFFFF  # µs: 71 minutes, above any timeout
FLAP_WINDOW = 21  # results Nagios looks at: 20 possible changes
FLAP_HIGH = 50.0  # percent state change above which a check is flapping
FLAP_LOW = 25.0  # ... and below which it no longer is
_SLOTS = FLAP_WINDOW - 1
_MASK = (1 << _SLOTS) - 1
# Nagios' weight of the change at position p (0 the newest .. 19 the oldest) is
# 0.75 + 0.5 (19 - p) / 19 = (95 - 2p) / 76; the percentage is 100 / 20 of their sum.
_NEWEST_WEIGHT = 95
_DIVISOR = 76 * _SLOTS / 100.0


class History:
    """The record of one check. ``observe`` is called once per counted result, under the
    schedule's lock; readers take ``latencies()`` and the fields below.

    ``cause``            the last result's Cause (kachecks.checks.result)
    ``results``          {cause code: results with it}
    ``downtime``         seconds spent published DOWN, up to the last result
    ``downs``            changes of the published state to DOWN (not counting a first
                         result that was DOWN)
    ``flapping``         Nagios' verdict, True or False
    ``state_change``     the percent state change it rests on (0..100)
    """

    __slots__ = ("cause", "results", "downtime", "downs", "flapping", "state_change",
                 "_ring", "_next", "_last", "_observed", "_changes", "_count", "_positions")

    def __init__(self):
        self.cause = None
        self.results = {}
        self.downtime = 0.0
        self.downs = 0
        self.flapping = False
        self.state_change = 0.0
        self._ring = array(_RING_TYPE)  # latencies in whole microseconds
        self._next = 0  # where the next latency goes once the ring is full
        self._last = None  # the last raw state (UP, DRAIN, DOWN)
        self._observed = None  # when the last result came (monotonic)
        self._changes = 0  # bit p: the raw state changed at position p (0 = newest)
        self._count = 0  # bits set in _changes
        self._positions = 0  # sum of their positions

    def observe(self, raw, previous, display, cause, latency, now):
        """Count one result: its ``raw`` state (UP, DRAIN, DOWN as the run judged it), the
        published state before (``previous``, None before the first) and after
        (``display``), its ``cause``, its ``latency`` (seconds) and when it came
        (``now``, monotonic)."""
        self.cause = cause
        code = cause.code
        self.results[code] = self.results.get(code, 0) + 1
        if previous == healths.DOWN and self._observed is not None:
            self.downtime += max(0.0, now - self._observed)
        self._observed = now
        if display == healths.DOWN and previous is not None and previous != healths.DOWN:
            self.downs += 1
        micros = min(_RING_MAX, max(0, round(latency * 1e6)))
        ring = self._ring
        if len(ring) < RING:
            ring.append(micros)
        else:
            ring[self._next] = micros
            self._next = (self._next + 1) % RING
        self._flap(raw)

    def _flap(self, raw):
        last, self._last = self._last, raw
        if last is None:
            return  # a first result changes nothing
        changed = raw != last
        dropped = self._changes >> (_SLOTS - 1)  # the oldest change leaves the window
        self._positions += self._count - dropped * _SLOTS
        self._count += changed - dropped
        self._changes = ((self._changes << 1) & _MASK) | changed
        self.state_change = (_NEWEST_WEIGHT * self._count - 2 * self._positions) / _DIVISOR
        if self.state_change > FLAP_HIGH:
            self.flapping = True
        elif self.state_change < FLAP_LOW:
            self.flapping = False

    def ring(self):
        """A copy of the ring and where it starts: what ``text`` turns into the status
        document's ``latencies`` (cheap enough to take under the schedule's lock)."""
        return self._ring[:], self._next

    def latencies(self):
        return text(self.ring())


def text(ring):
    """A ``ring()`` as the status document carries it: microseconds, oldest first,
    separated by spaces (one string: cheap to write every second)."""
    values, start = ring
    return " ".join(map(str, values[start:] + values[:start] if start else values))


class Counts:
    """What ``position`` and ``going`` read of a check's health (kachecks.agent.health's
    Health, or a copy of its counters)."""

    __slots__ = ("up", "successes", "failures")

    def __init__(self, up, successes, failures):
        self.up, self.successes, self.failures = up, successes, failures


def position(health, rise, fall):
    """HAProxy's "health" of a check: 0 .. rise + fall - 1. At ``rise`` and above the
    check is up; below the maximum while up it is going down (failures counted towards
    ``fall``), above 0 while down it is going up (successes towards ``rise``)."""
    top = rise + fall - 1
    if health.up is None:
        return 0
    if health.up:
        return max(rise, top - health.failures)
    return min(rise - 1, health.successes)


def going(health, rise, fall):
    """("down", failures, fall) while up but failing, ("up", successes, rise) while down
    but passing, else None: HAProxy's "UP 1/3" / "DOWN 1/2"."""
    if health.up and health.failures:
        return ("down", health.failures, fall)
    if health.up is False and health.successes:
        return ("up", health.successes, rise)
    return None
