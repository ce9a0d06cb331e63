"""Per-check counters and histograms, kept as plain numbers by the schedule.

The agent updates them under ``LOCK``; the status document and the metrics
endpoint read copies of them (kachecks.agent.snapshot), taken under the same
lock, so a scrape never sees a histogram whose count and buckets disagree.
Nothing here needs prometheus_client.
"""

import bisect
import threading

LOCK = threading.Lock()
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Histogram:
    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def copy(self):
        """An independent copy (a snapshot's: read without the lock)."""
        twin = Histogram(self.bounds)
        twin.counts = self.counts[:]
        twin.sum, twin.count = self.sum, self.count
        return twin

    def observe(self, value):
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self):
        """[(upper bound, observations <= it)], ending with +Inf."""
        out, total = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts):
            total += count
            out.append((bound, total))
        return out

    def quantile(self, q):
        """Upper bound of the bucket holding the q-quantile (None when empty)."""
        if not self.count:
            return None
        rank = q * self.count
        for bound, total in self.cumulative():
            if total >= rank:
                return bound
        return float("inf")


class CheckStats:
    __slots__ = ("runs", "failures", "transitions", "duration")

    def __init__(self):
        self.runs = 0
        self.failures = 0  # runs that failed, whether or not the check went down
        self.transitions = 0
        self.duration = Histogram(DURATION_BUCKETS)
