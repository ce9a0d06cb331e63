"""How a check runs: evaluate (any thread), judge, summarise; and the forked run.

Layers, each with one job:

- ``Check.parse(args)`` -> a frozen Target (raises UsageError; never prints).
- ``Check.probe(target, deadline)`` -> Result (raises ProbeFailure /
  DeadlineExceeded; never prints, never exits, no signals).
- ``evaluate(check, target)`` -> Result: drain file, deadline, probe,
  failures as ``Result(ok=False)``. Thread-safe; what a resident process
  (or a test) calls.
- ``verdict.judge(result, target)`` -> Verdict: the exit code.
- ``status_line`` / ``syslog_message``: the texts a person reads.
- ``run(check, argv, prog)``: the forked executable keepalived starts:
  signals, watchdog, printing, state file, syslog, hand-over to the worker,
  all under the guard (kachecks.runtime) so that anything that goes wrong
  still ends as a defined code: never a traceback, never 2..255 unless
  ``--dynamic`` (or ``--nagios``).
"""

import _signal as signal  # the ``signal`` module imports enum: ~4 ms per forked check
import os
import sys

from kachecks import argspec
from kachecks.checks import state, verdict
from kachecks.checks.options import COMMON_OPTS, Target, common
from kachecks.checks.result import Result
from kachecks.deadline import Deadline
from kachecks.errors import ProbeFailure, UsageError
from kachecks.runtime import guarded
from kachecks.status import ExitCode

# Seconds past --timeout after which a C-level watchdog ends the process with
# exit 1 even if Python code is stuck in a call that ignores the deadline.
WATCHDOG_GRACE = 0.5


class Check:
    """Static description of one check: its options, how to parse and probe."""

    __slots__ = ("name", "prog", "opts", "usage", "description", "epilog", "build", "probe",
                 "positionals", "delegate")

    def __init__(self, name, prog, opts, usage, description, epilog, build, probe,
                 positionals=0, delegate=None):
        self.name = name  # "HTTP": first word of the status line
        self.prog = prog  # "kachecks-http": syslog ident
        self.opts = list(opts) + COMMON_OPTS
        self.usage = usage
        self.description = description
        self.epilog = epilog
        self.build = build  # Namespace -> Target, raises UsageError on inconsistent options
        self.probe = probe  # (Target, Deadline) -> Result
        self.positionals = positionals  # non-option arguments allowed (kachecks-tcp HOST:PORT)
        # argv -> True when this run is worth handing to `kachecks worker` (expensive imports)
        self.delegate = delegate

    def namespace(self, args):
        """The parsed options (``help``/``version`` included), or UsageError."""
        return argspec.parse(self.opts, args, self.positionals)

    def parse(self, args):
        """The frozen Target for these arguments (no program name), or UsageError."""
        return self.build(self.namespace(args))


def evaluate(check, target):
    """Probe ``target`` within its --timeout; failures become ``Result(ok=False)``.

    Never prints, installs no signal handler, shares nothing between calls:
    callable from any thread. A UsageError the probe finds (an option only
    the server's library can reject) passes through.
    """
    if target.drain_file and os.path.exists(target.drain_file):
        return Result(True, summary=f"drained by {target.drain_file}", drain=True, weight=0)
    deadline = Deadline(target.timeout)
    try:
        return check.probe(target, deadline)
    except ProbeFailure as exc:
        return Result(False, reason=str(exc), perfdata=(("time", deadline.elapsed(), "s"),))


def status_line(check, target, result, judged):
    """The one stdout line: ``HTTP OK - …`` or, with --nagios, ``HTTP OK: … | perfdata``."""
    text = result.summary if result.ok else result.reason
    if result.ok and result.warning:
        text = f"{text}; {result.warning}" if text else result.warning
    if target.dynamic and judged.state == verdict.UP:
        text = f"{text}, weight {judged.code - ExitCode.DYNAMIC_BASE}"
    if target.nagios:
        perf = " ".join(_perf(label, value, unit) for label, value, unit in result.perfdata)
        return f"{check.name} {judged.word}: {text}" + (f" | {perf}" if perf else "")
    return f"{check.name} {judged.word} - {text}"


def _perf(label, value, unit):
    if isinstance(value, float):
        value = f"{value:.6f}".rstrip("0").rstrip(".")
    return f"{label}={value}{unit}"


def remembered_state(result, judged):
    """What the state file keeps: UP, DOWN, DRAIN, or ``UP WARNING``."""
    return judged.state + (" WARNING" if result.ok and result.warning else "")


def syslog_message(check, target, result, judged):
    """The syslog line for a state change: ``[192.168.8.101]:80 DOWN: md5 mismatch …``."""
    why = result.reason if judged.state == verdict.DOWN else result.summary
    if result.ok and result.warning:
        why = f"{why}; WARNING: {result.warning}"
    return f"{target.identity} {judged.state}: {why}"


# --- the forked executable ---------------------------------------------------

class Terminated(ProbeFailure):
    """SIGTERM/SIGINT arrived (keepalived's misc_timeout): report and exit 1."""

    def __init__(self, signum):
        name = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}.get(signum, f"signal {signum}")
        super().__init__(f"terminated by {name}", "signal")


# Seconds a terminated check may take to report before the watchdog ends it.
TERMINATE_GRACE = 0.3

_watchdog_sink = []


def _on_signal(signum, frame):
    # A second signal must not be caught again, and reporting must be quick.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _arm_watchdog(TERMINATE_GRACE)
    raise Terminated(signum)


def _arm_watchdog(seconds):
    """Hard backstop: _exit(1) from a C thread if the run outlives ``seconds``.

    faulthandler's watchdog needs no Python thread and fires even while the
    main thread is stuck in C (a resolver call, a library ignoring timeouts);
    its traceback goes to /dev/null: the contract promises none on screen.
    """
    import faulthandler

    if not _watchdog_sink:
        _watchdog_sink.append(open(os.devnull, "w"))  # noqa: SIM115 - lives until exit
    faulthandler.dump_traceback_later(seconds, exit=True, file=_watchdog_sink[0])


def run(check, argv=None, prog=None):
    """Parse, probe, judge, report; return the exit code. Never raises."""
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = prog or check.prog
    error_code = verdict.error_verdict("--nagios" in argv).code
    return guarded(_run, check, argv, prog, prog=prog, error_code=error_code)


def _run(check, argv, prog):
    if check.delegate is not None and check.delegate(argv):
        from kachecks.worker import client

        code = client.delegate(check.probe.__module__, prog, argv)
        if code is not None:
            return code
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    nagios = "--nagios" in argv
    ns = target = None
    try:
        ns = check.namespace(argv)
        nagios = ns.nagios
        if ns.help:
            sys.stdout.write(argspec.render_help(f"{prog} {check.usage}", check.description,
                                                 check.opts, check.epilog))
            return ExitCode.OK
        if ns.version:
            from kachecks import __version__

            sys.stdout.write(f"{prog} {__version__}\n")
            return ExitCode.OK
        target = check.build(ns)
        _arm_watchdog(target.timeout + WATCHDOG_GRACE)
        result = evaluate(check, target)
    except UsageError as exc:
        return _fail_early(check, prog, str(exc), nagios, usage=True)
    except Terminated as exc:
        target = target or _peerless(ns)
        if target is None:
            return _fail_early(check, prog, str(exc), nagios)
        result = Result(False, reason=str(exc))
    except Exception as exc:  # the contract: any bug still ends as a defined code
        return _fail_early(check, prog, f"internal error: {type(exc).__name__}: {exc}", nagios)
    try:
        return _report(check, target, result, f"{prog} {' '.join(argv)}")
    except Terminated:
        return verdict.judge(Result(False), target).code
    except Exception as exc:
        return _fail_early(check, prog, f"internal error: {type(exc).__name__}: {exc}", nagios)


def _peerless(ns):
    """A Target of the common options alone, to report a signal that came while
    the check's own options were still being validated (None if they are unusable)."""
    if ns is None:
        return None
    try:
        return Target(host=None, port=None, **common(ns))
    except UsageError:
        return None


def _report(check, target, result, identity):
    judged = verdict.judge(result, target)
    lines = [status_line(check, target, result, judged)]
    if target.verbose:
        lines.extend(result.details)
        _note_worker(lines)
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    remembered = remembered_state(result, judged)
    previous = state.swap(identity, remembered)
    if previous != remembered and not target.quiet:
        from kachecks import syslogger

        priority = syslogger.LOG_NOTICE if remembered == verdict.UP else syslogger.LOG_WARNING
        syslogger.send(check.prog, syslog_message(check, target, result, judged), priority)
    return judged.code


def _note_worker(lines):
    worker = sys.modules.get("kachecks.worker.client")
    if worker is not None and worker.IN_WORKER:
        lines.append(f"(run by kachecks worker {worker.IN_WORKER[0]})")


def _fail_early(check, prog, message, nagios, usage=False):
    """Usage and internal errors: one line, exit 1 (UNKNOWN 3 under --nagios)."""
    judged = verdict.error_verdict(nagios)
    if nagios:
        sys.stdout.write(f"{check.name} {judged.word}: {message}\n")
    else:
        hint = f" (see {prog} --help)" if usage else ""
        sys.stderr.write(f"{prog}: error: {message}{hint}\n")
    try:
        sys.stdout.flush()
    except Exception:
        pass
    return judged.code
