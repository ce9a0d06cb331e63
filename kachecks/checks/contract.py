"""The one guarded entry point every check runs through (SPEC §2).

keepalived acts on nothing but the exit code, so everything that can go
wrong — a bad option, an unreadable password file, a peer that hangs, a
SIGTERM from ``misc_timeout``, a bug — must end here as a defined code:
never a traceback, never 2..255 unless ``--dynamic`` (or ``--nagios``).

A check module supplies a ``Check``: its options, its help text, a
``probe(ns, deadline) -> Result`` that raises ``ProbeFailure``/``UsageError``
when it must, and a ``target(ns)`` naming the peer for logs and state.
"""

import _signal as signal  # the ``signal`` module imports enum: ~4 ms per forked check
import os
import sys

from kachecks import argspec
from kachecks.checks import state, verdict
from kachecks.checks.options import COMMON_OPTS
from kachecks.checks.result import Result
from kachecks.errors import DeadlineExceeded, ProbeFailure, UsageError
from kachecks.runtime import guarded

# Seconds past --timeout after which a C-level watchdog ends the process with
# exit 1 even if Python code is stuck in a call that ignores the deadline.
WATCHDOG_GRACE = 0.5


class Check:
    """Static description of one check executable."""

    __slots__ = ("name", "prog", "opts", "usage", "description", "epilog", "probe", "target",
                 "validate", "positionals", "delegate")

    def __init__(self, name, prog, opts, usage, description, epilog, probe, target,
                 validate=None, positionals=0, delegate=None):
        self.name = name  # "HTTP": first word of the status line
        self.prog = prog  # "kachecks-http": syslog ident
        self.opts = list(opts) + COMMON_OPTS
        self.usage = usage
        self.description = description
        self.epilog = epilog
        self.probe = probe
        self.target = target  # ns -> "[192.168.8.101]:80" for logs and state identity
        self.validate = validate  # ns -> None, raises UsageError on inconsistent options
        self.positionals = positionals  # non-option arguments allowed (kachecks-tcp HOST:PORT)
        # argv -> True when this run is worth handing to `kachecks worker` (expensive imports)
        self.delegate = delegate


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
    ns = None
    try:
        ns = argspec.parse(check.opts, argv, check.positionals)
        nagios = ns.nagios
        if ns.help:
            sys.stdout.write(argspec.render_help(f"{prog} {check.usage}", check.description,
                                                 check.opts, check.epilog))
            return 0
        if ns.version:
            from kachecks import __version__

            sys.stdout.write(f"{prog} {__version__}\n")
            return 0
        if ns.dynamic and ns.nagios:
            raise UsageError("--dynamic and --nagios exclude each other")
        if check.validate is not None:
            check.validate(ns)
        _arm_watchdog(ns.timeout + WATCHDOG_GRACE)
        result = _probe(check, ns)
    except UsageError as exc:
        return _fail_early(check, prog, str(exc), nagios, usage=True)
    except Terminated as exc:
        if ns is None:
            return _fail_early(check, prog, str(exc), nagios)
        result = Result(False, reason=str(exc))
    except Exception as exc:  # the contract: any bug still ends as a defined code
        return _fail_early(check, prog, f"internal error: {type(exc).__name__}: {exc}", nagios)
    try:
        return _report(check, ns, result, f"{prog} {' '.join(argv)}")
    except Terminated:
        return verdict.judge(Result(False), nagios=nagios).code
    except Exception as exc:
        return _fail_early(check, prog, f"internal error: {type(exc).__name__}: {exc}", nagios)


def _probe(check, ns):
    if ns.drain_file and os.path.exists(ns.drain_file):
        return Result(True, summary=f"drained by {ns.drain_file}", drain=True, weight=0)
    from kachecks.deadline import Deadline

    deadline = Deadline(ns.timeout)
    try:
        return check.probe(ns, deadline)
    except DeadlineExceeded as exc:
        return Result(False, reason=str(exc), perfdata=(("time", deadline.elapsed(), "s"),))
    except ProbeFailure as exc:
        return Result(False, reason=str(exc), perfdata=(("time", deadline.elapsed(), "s"),))


def _status_line(check, ns, result, judged):
    text = result.summary if result.ok else result.reason
    if result.ok and result.warning:
        text = f"{text}; {result.warning}" if text else result.warning
    if ns.dynamic and judged.state == verdict.UP:
        text = f"{text}, weight {judged.code - 2}"
    if ns.nagios:
        perf = " ".join(_perf(label, value, unit) for label, value, unit in result.perfdata)
        return f"{check.name} {judged.word}: {text}" + (f" | {perf}" if perf else "")
    return f"{check.name} {judged.word} - {text}"


def _perf(label, value, unit):
    if isinstance(value, float):
        value = f"{value:.6f}".rstrip("0").rstrip(".")
    return f"{label}={value}{unit}"


def _report(check, ns, result, identity):
    judged = verdict.judge(result, nagios=ns.nagios, dynamic=ns.dynamic,
                           default_weight=ns.weight)
    lines = [_status_line(check, ns, result, judged)]
    if ns.verbose:
        lines.extend(result.details)
        _note_worker(lines)
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    warned = result.ok and bool(result.warning)
    remembered = judged.state + (" WARNING" if warned else "")
    previous = state.swap(identity, remembered)
    if previous != remembered and not ns.quiet:
        from kachecks import syslogger

        why = result.reason if judged.state == verdict.DOWN else result.summary
        if warned:
            why = f"{why}; WARNING: {result.warning}"
        priority = syslogger.LOG_NOTICE if remembered == verdict.UP else syslogger.LOG_WARNING
        syslogger.send(check.prog, f"{check.target(ns)} {judged.state}: {why}", priority)
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
