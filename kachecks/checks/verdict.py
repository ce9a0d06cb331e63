"""Where a check decides its exit code (docs/checks.md, "Exit codes").

keepalived reads nothing but the exit code, so this table is the product:

  mode       healthy         drained   unhealthy / error
  plain      0               1         1
  --dynamic  2 + weight      2         1      (2 would mean "healthy, weight 0")
  --nagios   0 OK / 1 WARN   1 WARN    2 CRITICAL; 3 UNKNOWN for usage/internal errors
"""

from kachecks.status import ExitCode

MAX_WEIGHT = ExitCode.DYNAMIC_MAX - ExitCode.DYNAMIC_BASE  # exit codes stop at 255


def clamp(weight):
    """A weight as --dynamic can report it: 0..MAX_WEIGHT."""
    return max(0, min(MAX_WEIGHT, int(weight)))

UP, DOWN, DRAIN = "UP", "DOWN", "DRAIN"


class Verdict:
    """``code``: the exit code; ``word``: after the check name ("HTTP OK", "HTTP
    CRITICAL"); ``state``: UP / DOWN / DRAIN, remembered to log transitions only."""

    __slots__ = ("code", "word", "state")

    def __init__(self, code, word, state):
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "word", word)
        object.__setattr__(self, "state", state)

    def __setattr__(self, name, value):
        raise AttributeError("Verdict is immutable")

    def __repr__(self):
        return f"Verdict({self.code}, {self.word!r}, {self.state!r})"


def judge(result, target):
    """The Verdict for a probe's Result under the target's mode (--nagios, --dynamic)."""
    nagios, dynamic = target.nagios, target.dynamic
    if not result.ok:
        if nagios:
            return Verdict(ExitCode.NAGIOS_CRITICAL, "CRITICAL", DOWN)
        return Verdict(ExitCode.FAILURE, "FAIL", DOWN)
    if result.drain:
        if nagios:
            return Verdict(ExitCode.NAGIOS_WARNING, "WARNING", DRAIN)
        return Verdict(ExitCode.DYNAMIC_BASE if dynamic else ExitCode.FAILURE, "DRAIN", DRAIN)
    if nagios:
        if result.warning:
            return Verdict(ExitCode.NAGIOS_WARNING, "WARNING", UP)
        return Verdict(ExitCode.NAGIOS_OK, "OK", UP)
    if dynamic:
        weight = target.weight if result.weight is None else result.weight
        return Verdict(ExitCode.DYNAMIC_BASE + clamp(weight), "OK", UP)
    return Verdict(ExitCode.OK, "OK", UP)


def error_verdict(nagios=False):
    """Bad command line, unreadable file, internal error: never 2 outside --nagios."""
    if nagios:
        return Verdict(ExitCode.NAGIOS_UNKNOWN, "UNKNOWN", DOWN)
    return Verdict(ExitCode.FAILURE, "ERROR", DOWN)
