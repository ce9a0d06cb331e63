"""What a probe found, as an immutable value the contract can judge."""

from kachecks.runtime import one_line


class Result:
    """Outcome of one probe run.

    ``ok``       the peer is healthy (every configured test passed)
    ``summary``  short human text: "200 OK, md5 5f2b…75 matches, 19 B in 0.004 s"
    ``reason``   why it is unhealthy, for stdout and syslog ("md5 mismatch (got …, want …)")
    ``weight``   dynamic weight found by the probe (header, regex, agent), or None
    ``drain``    the peer asked to be drained (agent "drain", weight 0 %)
    ``warning``  degraded but not failed (certificate expiring): logged; WARNING under --nagios
    ``perfdata`` tuple of (label, value, unit) for --nagios
    ``details``  extra lines printed with --verbose
    ``figure``   the label of the main figure in ``perfdata``, the one -w/-c judge:
                 "time" (seconds) unless a probe reports something else ("lag")

    ``summary``, ``reason``, ``warning`` and each of ``details`` are kept to one
    printable line (``one_line``).
    """

    __slots__ = ("ok", "summary", "reason", "weight", "drain", "warning", "perfdata", "details",
                 "figure")

    def __init__(self, ok, summary="", reason="", weight=None, drain=False, warning="",
                 perfdata=(), details=(), figure="time"):
        object.__setattr__(self, "ok", bool(ok))
        object.__setattr__(self, "summary", one_line(summary))
        object.__setattr__(self, "reason", one_line(reason))
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "drain", bool(drain))
        object.__setattr__(self, "warning", one_line(warning))
        object.__setattr__(self, "perfdata", tuple(perfdata))
        object.__setattr__(self, "details", tuple(one_line(line) for line in details))
        object.__setattr__(self, "figure", figure)

    def __setattr__(self, name, value):
        raise AttributeError("Result is immutable")

    def figure_value(self):
        """The main figure's value, or None when the probe did not report it."""
        return next((value for label, value, _unit in self.perfdata if label == self.figure), None)

    def figure_unit(self):
        return next((unit for label, _value, unit in self.perfdata if label == self.figure), "")

    def __repr__(self):
        return (f"Result(ok={self.ok}, summary={self.summary!r}, reason={self.reason!r}, "
                f"weight={self.weight!r}, drain={self.drain})")

