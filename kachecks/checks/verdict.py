"""Where a check decides its exit code (docs/reference.md, "Exit codes").

keepalived reads nothing but the exit code, so this table is the product:

  mode       healthy         drained   unhealthy / error
  plain      0               1         1
  --dynamic  2 + weight      2         1      (2 would mean "healthy, weight 0")
  --nagios   0 OK / 1 WARN   1 WARN    2 CRITICAL; 3 UNKNOWN for usage/internal errors

Under --nagios, -w/-c ranges (the monitoring-plugins syntax,
kachecks.checks.thresholds) on the result's main figure turn a healthy run
into WARNING or CRITICAL.
"""

from kachecks.status import ExitCode

MAX_WEIGHT = ExitCode.DYNAMIC_MAX - ExitCode.DYNAMIC_BASE  # exit codes stop at 255


def clamp(weight):
    """A weight as --dynamic can report it: 0..MAX_WEIGHT."""
    return max(0, min(MAX_WEIGHT, int(weight)))

UP, DOWN, DRAIN = "UP", "DOWN", "DRAIN"


class Verdict:
    """``code``: the exit code; ``word``: after the check name ("HTTP OK", "HTTP
    CRITICAL"); ``state``: UP / DOWN / DRAIN, remembered to log transitions only;
    ``note``: why a threshold changed the word ("lag 75.2s outside 60"), else ""."""

    __slots__ = ("code", "word", "state", "note")

    def __init__(self, code, word, state, note=""):
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "word", word)
        object.__setattr__(self, "state", state)
        object.__setattr__(self, "note", note)

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
        breached = _thresholds(result, target)
        if breached is not None:
            return breached
        if result.warning:
            return Verdict(ExitCode.NAGIOS_WARNING, "WARNING", UP)
        return Verdict(ExitCode.NAGIOS_OK, "OK", UP)
    if dynamic:
        weight = target.weight if result.weight is None else result.weight
        return Verdict(ExitCode.DYNAMIC_BASE + clamp(weight), "OK", UP)
    return Verdict(ExitCode.OK, "OK", UP)


def possible_codes(nagios=False, dynamic=False):
    """Every exit code a run in this mode can end with (what a worker may report)."""
    if nagios:
        return range(ExitCode.NAGIOS_OK, ExitCode.NAGIOS_UNKNOWN + 1)
    if dynamic:
        return range(ExitCode.FAILURE, ExitCode.DYNAMIC_MAX + 1)
    return range(ExitCode.OK, ExitCode.FAILURE + 1)


def error_verdict(nagios=False):
    """Bad command line, unreadable file, internal error: never 2 outside --nagios."""
    if nagios:
        return Verdict(ExitCode.NAGIOS_UNKNOWN, "UNKNOWN", DOWN)
    return Verdict(ExitCode.FAILURE, "ERROR", DOWN)


def thresholds(target):
    """(warning, critical): the target's -w/-c Ranges (common options), None where not given."""
    return target.warning, target.critical


def _thresholds(result, target):
    """The Verdict when -c or -w judges the main figure out of bounds, else None."""
    warning, critical = thresholds(target)
    if critical is None and warning is None:
        return None
    value = result.figure_value()
    if value is None:
        return Verdict(ExitCode.NAGIOS_UNKNOWN, "UNKNOWN", UP,
                       f"no {result.figure} figure to compare with -w/-c")
    for limit, code, word in ((critical, ExitCode.NAGIOS_CRITICAL, "CRITICAL"),
                              (warning, ExitCode.NAGIOS_WARNING, "WARNING")):
        if limit is not None and limit.alerts(value):
            return Verdict(code, word, UP, f"{result.figure} {_number(value)}"
                           f"{result.figure_unit()} {limit.describe()}")
    return None


def _number(value):
    return f"{value:.6f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
