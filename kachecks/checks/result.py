"""What a probe found, as an immutable value the contract can judge, and why: its Cause.

The cause codes are HAProxy's, defined here once as plain strings (no enum on the
forked path), so operators read them at once (docs/reference.md, "Cause codes").
"""

from kachecks.runtime import one_line

INI = "INI"
L4OK = "L4OK"
L4TOUT = "L4TOUT"
L4CON = "L4CON"
L6OK = "L6OK"
L6TOUT = "L6TOUT"
L6RSP = "L6RSP"
L7OK = "L7OK"
L7TOUT = "L7TOUT"
L7RSP = "L7RSP"
L7STS = "L7STS"
DRAIN = "DRAIN"
RESOLV = "RESOLV"
UNK = "UNK"

# code -> one line: what it means (docs/reference.md lists the same, tests/docs checks it)
MEANINGS = {
    INI: "not run yet",
    L4OK: "TCP connection established (nothing more was asked)",
    L4TOUT: "TCP connection timed out",
    L4CON: "TCP connection refused, unreachable, reset or lost",
    L6OK: "TLS handshake done (nothing more was asked)",
    L6TOUT: "TLS handshake timed out",
    L6RSP: "TLS handshake failed (or the certificate was refused)",
    L7OK: "the service answered as expected",
    L7TOUT: "no answer (or no complete answer) in time",
    L7RSP: "malformed or unexpected answer: digest, regex, no LDAP entry, stale replica",
    L7STS: "refused by status: HTTP status, LDAP result code, agent down",
    DRAIN: "drained: --drain-file present, or the agent said drain",
    RESOLV: "the name did not resolve",
    UNK: "no verdict: the run was stopped, or failed inside kachecks",
}
CODES = tuple(MEANINGS)

# A failure's code when its raiser named none: by phase (kachecks.net's phases), then
# by reason ("timeout" for DeadlineExceeded). Checks name the code of their own tests.
_TIMEOUT_CODES = {"resolve": RESOLV, "connect": L4TOUT, "tls": L6TOUT}
_FAILURE_CODES = {"resolve": RESOLV, "connect": L4CON, "tls": L6RSP, "proxy": L4CON,
                  "send": L4CON, "wait": L4CON, "read": L4CON}


class Cause:
    """Why a run ended so: ``code`` (CODES), ``phase`` (connect, wait, status…) and
    ``reason``, a stable keyword (refused, timeout, latency…); "" where none."""

    __slots__ = ("code", "phase", "reason")

    def __init__(self, code, phase="", reason=""):
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "phase", phase or "")
        object.__setattr__(self, "reason", reason or "")

    def __setattr__(self, name, value):
        raise AttributeError("Cause is immutable")

    def __eq__(self, other):
        return (isinstance(other, Cause)
                and (self.code, self.phase, self.reason) == (other.code, other.phase, other.reason))

    def __hash__(self):
        return hash((self.code, self.phase, self.reason))

    def __repr__(self):
        return f"Cause({self.code!r}, {self.phase!r}, {self.reason!r})"

    @property
    def meaning(self):
        return MEANINGS.get(self.code, "")

    def describe(self):
        """``L4CON at connect (refused): TCP connection refused, …``: the --verbose line."""
        where = f" at {self.phase}" if self.phase else ""
        why = f" ({self.reason})" if self.reason and self.reason != self.phase else ""
        return f"{self.code}{where}{why}: {self.meaning}"


def cause_of(failure):
    """The Cause of a ProbeFailure (DeadlineExceeded too): the code its raiser named,
    else the one its phase and reason imply."""
    phase, reason = failure.phase or "", failure.reason or ""
    code = failure.code
    if code is None:
        table = _TIMEOUT_CODES if reason == "timeout" else _FAILURE_CODES
        code = table.get(phase, L7TOUT if reason == "timeout" else L7RSP)
    return Cause(code, phase, reason)


class Result:
    """Outcome of one probe run.

    ``ok``       the peer is healthy (every configured test passed)
    ``summary``  short human text: "200 OK, md5 5f2b…75 matches, 19 B in 0.004 s"
    ``reason``   why it is unhealthy, for stdout and syslog ("md5 mismatch (got …, want …)")
    ``cause``    why, for programs: a Cause whose code is HAProxy's (L7OK, L4CON,
                 L7STS…); healthy results carry the OK code of the deepest layer
                 checked (default: DRAIN when drained, L7OK when healthy, UNK else)
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

    __slots__ = ("ok", "summary", "reason", "cause", "weight", "drain", "warning", "perfdata",
                 "details", "figure")

    def __init__(self, ok, summary="", reason="", weight=None, drain=False, warning="",
                 perfdata=(), details=(), figure="time", cause=None):
        object.__setattr__(self, "ok", bool(ok))
        object.__setattr__(self, "summary", one_line(summary))
        object.__setattr__(self, "reason", one_line(reason))
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "drain", bool(drain))
        if cause is None:
            cause = Cause(DRAIN if self.drain else L7OK) if self.ok else Cause(UNK)
        object.__setattr__(self, "cause", cause)
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
                f"cause={self.cause.code}, weight={self.weight!r}, drain={self.drain})")
