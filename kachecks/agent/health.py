"""Rise/fall hysteresis and the value a check publishes in its track file.

keepalived's vrrp_script semantics, which administrators already know: the
first result after start decides; afterwards ``rise`` consecutive successes
bring a check up and ``fall`` consecutive failures take it down. A drain is
an operator's decision, not a health signal, so it takes effect at once.

Values: ``1`` up, ``0`` down. With ``--dynamic`` the value is the weight the
forked check would have encoded in its exit code (``exit - 2``: 0..253),
so a drained check stays up with weight 0, and a down one is 0.
"""

from kachecks.checks import verdict
from kachecks.status import ExitCode

UP, DOWN, DRAIN = verdict.UP, verdict.DOWN, verdict.DRAIN


class Health:
    """The published state of one check; mutated only by the agent's main thread."""

    __slots__ = ("up", "value", "display", "successes", "failures", "since")

    def __init__(self):
        self.up = None  # None until the first result
        self.value = 0
        self.display: str | None = None  # UP, DRAIN or DOWN: what status shows and syslog reports
        self.successes = 0
        self.failures = 0
        self.since = None  # wall-clock time of the last change of ``display``

    def observe(self, judged, dynamic, rise, fall, now):
        """Count one run's Verdict; return (changed, previous display)."""
        healthy, value, immediate = _observation(judged, dynamic)
        if healthy:
            self.successes += 1
            self.failures = 0
        else:
            self.failures += 1
            self.successes = 0
        if self.up is None:
            self.up = healthy
        elif self.up and not healthy and (immediate or self.failures >= fall):
            self.up = False
        elif not self.up and healthy and self.successes >= rise:
            self.up = True
        display: str | None
        if self.up and healthy:
            self.value = value  # a weight change while up applies at once
            display = DRAIN if judged.state == DRAIN else UP
        elif not self.up and not healthy:
            self.value, display = 0, (DRAIN if judged.state == DRAIN else DOWN)
        else:
            display = self.display  # fewer than ``fall`` failures or ``rise`` successes yet
        previous = self.display
        if display == previous:
            return False, previous
        self.display, self.since = display, now
        return True, previous


def _observation(judged, dynamic):
    """(healthy, value if healthy, immediate) for one run's Verdict."""
    if judged.state == UP:
        return True, (judged.code - ExitCode.DYNAMIC_BASE if dynamic else 1), False
    if judged.state == DRAIN:
        return (True, 0, False) if dynamic else (False, 0, True)
    return False, 0, False
