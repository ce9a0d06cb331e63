"""How a check runs: evaluate (any thread), judge, summarise; and the forked run.

Layers, each with one job:

- ``Check.parse(args)`` -> a frozen Target (raises UsageError; never prints).
- ``Check.probe(target, deadline)`` -> Result (raises ProbeFailure /
  DeadlineExceeded; never prints, never exits, no signals). A check whose
  probe is written as steps (kachecks.net.steps: HTTP, TCP) also has
  ``Check.steps``, the same probe for an event loop; ``probe`` drives them.
- ``evaluate(check, target)`` -> Result: drain file, deadline, probe,
  failures as ``Result(ok=False)``. Thread-safe; what a resident process
  (or a test) calls. ``evaluation(check, target, deadline)`` is the same as
  steps, whoever drives them (the agent's event loop).
- ``verdict.judge(result, target)`` -> Verdict: the exit code.
- ``status_line`` / ``syslog_message``: the texts a person reads.
- ``run(check, argv, prog, handover)``: the forked executable keepalived
  starts: signals, watchdog, printing, state file, syslog, the hand-over it
  is given (kachecks.executables passes the worker's: this layer never
  imports kachecks.worker), all under the guard (kachecks.runtime) so that
  anything that goes wrong still ends as a defined code: never a traceback,
  never 2..255 unless ``--dynamic`` (or ``--nagios``).
"""

import os
import sys

from kachecks import argspec, interrupt
from kachecks.checks import registry, state, verdict
from kachecks.checks.options import COMMON_OPTS, Target, common
from kachecks.checks.result import DRAIN, UNK, Cause, Result, cause_of
from kachecks.deadline import Deadline
from kachecks.errors import OutputLost, ProbeFailure, Unavailable, UsageError, WorkerError
from kachecks.net import steps
from kachecks.runtime import StrictOutput, guarded, one_line, show
from kachecks.status import ExitCode

# Seconds past --timeout after which a C-level watchdog ends the process with
# exit 1 even if Python code is stuck in a call that ignores the deadline.
WATCHDOG_GRACE = 0.5
# A run a signal ended (keepalived's misc_timeout): no verdict from the server.
STOPPED = Cause(UNK, "signal", "stopped")


class Check:
    """Static description of one check: its options, how to parse and probe."""

    __slots__ = ("name", "prog", "opts", "usage", "description", "epilog", "build", "probe",
                 "steps", "positionals", "delegate", "defaults")

    def __init__(self, name, prog, opts, usage, description, epilog, build, probe,
                 positionals=0, delegate=None, common=COMMON_OPTS, defaults=None, steps=None):
        self.name = name  # "HTTP": first word of the status line
        self.prog = prog  # "kachecks-http": syslog ident
        # ``common``: the common options this check offers (kachecks-vrrp connects to
        # nothing: no --bind, --fwmark, --dynamic); those left out take their defaults
        self.opts = list(opts) + list(common)
        self.usage = usage
        self.description = description
        self.epilog = epilog
        self.build = build  # Namespace -> Target, raises UsageError on inconsistent options
        self.probe = probe  # (Target, Deadline) -> Result
        # (Target, Deadline) -> steps (kachecks.net.steps) returning the Result: the same
        # probe for an event loop, or None (a probe that blocks in a library: ldap3)
        self.steps = steps
        self.positionals = positionals  # non-option arguments allowed (kachecks-tcp HOST:PORT)
        # argv -> True when this run is worth handing to `kachecks worker` (expensive imports)
        self.delegate = delegate
        # Namespace -> None: fills in the options whose defaults come from more than the
        # command line, before the deadline starts (kachecks-vrrp's --timeout: --listen + 2,
        # --listen from keepalived.conf's advert_int); raises UsageError
        self.defaults = defaults

    def complete(self, ns):
        """``ns`` with every default filled in (see ``defaults``)."""
        if self.defaults is not None:
            self.defaults(ns)
        return ns

    def namespace(self, args):
        """The parsed options (``help``/``version`` included), or UsageError."""
        return argspec.parse(self.opts, args, self.positionals)

    def parse(self, args):
        """The frozen Target for these arguments (no program name), or UsageError."""
        return self.build(self.complete(self.namespace(args)))


def evaluate(check, target, deadline=None):
    """Probe ``target`` within its --timeout; failures become ``Result(ok=False)``.

    Never prints, installs no signal handler, shares nothing between calls:
    callable from any thread. A UsageError the probe finds (an option only
    the server's library can reject) passes through. ``deadline``: one
    already running (the forked run starts it before reading option files).
    """
    deadline = deadline or Deadline(target.timeout)
    return steps.run(evaluation(check, target, deadline), deadline)


def evaluation(check, target, deadline):
    """``evaluate`` as steps (kachecks.net.steps), for whoever drives them: the Result.

    A check without steps (``Check.steps`` None) blocks in its probe: run these
    only where blocking is fine (``evaluate``, a thread)."""
    if target.drain_file and os.path.exists(target.drain_file):
        return Result(True, summary=f"drained by {target.drain_file}", drain=True, weight=0,
                      cause=Cause(DRAIN, "drain", "drain-file"))
    try:
        if check.steps is None:
            return check.probe(target, deadline)
        return (yield from check.steps(target, deadline))
    except ProbeFailure as exc:
        return Result(False, reason=str(exc), perfdata=(("time", deadline.elapsed(), "s"),),
                      cause=cause_of(exc))


def status_line(check, target, result, judged):
    """The one stdout line: ``HTTP OK - …`` or, with --nagios, ``HTTP OK: … | perfdata``."""
    text = result.summary if result.ok else result.reason
    if result.ok and result.warning:
        text = f"{text}; {result.warning}" if text else result.warning
    if target.dynamic and judged.state == verdict.UP:
        text = f"{text}, weight {judged.code - ExitCode.DYNAMIC_BASE}"
    if judged.note:
        text = f"{text}; {judged.note}"
    if target.nagios:
        text = text.replace("|", "¦")  # "|" starts the perfdata: not from a peer's text
        limits = verdict.thresholds(target)
        perf = " ".join(_perf(label, value, unit, limits if label == result.figure else None)
                        for label, value, unit in result.perfdata)
        return f"{check.name} {judged.word}: {text}" + (f" | {perf}" if perf else "")
    return f"{check.name} {judged.word} - {text}"


def _perf(label, value, unit, limits=None):
    """``time=0.004s``; the main figure, when -w/-c are given, ``lag=0.8s;1;5;0;``."""
    if isinstance(value, float):
        value = f"{value:.6f}".rstrip("0").rstrip(".")
    text = ""
    if limits is not None and any(limits):
        warn, crit = (r.text if r else "" for r in limits)
        text = f";{warn};{crit};0;"
    return f"{label}={value}{unit}{text}"


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

def run(check, argv=None, prog=None, handover=None, notes=()):
    """Parse, probe, judge, report; return the exit code. Never raises.

    ``handover(executable, prog, argv, codes, within, deadline, notes)`` is
    offered a run worth it (``check.delegate``) before the check builds its
    target: it returns the run's exit code (one of ``codes``, the run done
    elsewhere within ``within`` seconds) or None to run it here, appends to
    ``notes`` why, and may raise Stop or WorkerError. ``notes``: lines
    --verbose adds after the details (the worker's child says where it runs).

    The console scripts install kachecks.interrupt before the check's modules
    load; ``install()`` here covers ``python -m`` and the worker's children.
    """
    interrupt.install()
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = prog or check.prog
    error_code = verdict.error_verdict("--nagios" in argv).code
    return guarded(_run, check, argv, prog, handover, list(notes), prog=prog,
                   error_code=error_code, stoppable=True)


def _run(check, argv, prog, handover, notes):
    nagios = "--nagios" in argv
    ns = target = None
    try:
        command = registry.parse_command(argv, check, build=False)
        if command.error:
            return _fail_early(check, prog, command.error, nagios, usage=True)
        ns = command.options
        nagios = ns.nagios
        if command.prints:
            out = StrictOutput()
            out.write(_help_or_version(check, prog, ns).encode())
            out.flush()
            return ExitCode.OK
        check.complete(ns)
        # One deadline from here: a worker slow to take the run, and the files the
        # options name, are under it too; the watchdog ends whatever still ignores it.
        deadline = Deadline(ns.timeout)
        code = _handed_over(handover, check, ns, argv, prog, deadline, notes)
        if code is not None:
            return code
        interrupt.watchdog(max(ns.timeout - deadline.elapsed(), 0) + WATCHDOG_GRACE)
        target = command.build()
        result = evaluate(check, target, deadline)
    except UsageError as exc:
        return _fail_early(check, prog, str(exc), nagios, usage=True)
    except OutputLost:  # --help/--version with nowhere to print: the guard says so
        raise
    except interrupt.Stop as stop:
        if target is None:
            return _stopped_early(check, prog, argv, ns, stop)
        result = Result(False, reason=str(stop), cause=STOPPED)
    except (WorkerError, Unavailable) as exc:  # the hand-over broke its protocol; cannot look
        return _fail_early(check, prog, str(exc), nagios)
    except Exception as exc:  # the contract: any bug still ends as a defined code
        return _fail_early(check, prog, f"internal error: {type(exc).__name__}: {exc}", nagios)
    try:
        return _report(check, target, result, [prog, *argv], notes)
    except interrupt.Stop:
        return verdict.judge(Result(False), target).code
    except Exception as exc:
        return _fail_early(check, prog, f"internal error: {type(exc).__name__}: {exc}", nagios)


def _handed_over(handover, check, ns, argv, prog, deadline, notes):
    """This run's exit code from ``handover``, or None to run it here.

    Stop (a signal before the other side took the run) and WorkerError (it
    took the run, then broke the protocol) pass through.
    """
    if handover is None or check.delegate is None or not check.delegate(argv):
        return None
    return handover(check.prog, prog, argv, verdict.possible_codes(ns.nagios, ns.dynamic),
                    ns.timeout + WATCHDOG_GRACE, deadline, notes)


def _help_or_version(check, prog, ns):
    if ns.help:
        return argspec.render_help(f"{prog} {check.usage}", check.description, check.opts,
                                   check.epilog)
    from kachecks import __version__

    return f"{prog} {__version__}\n"


def _stopped_early(check, prog, argv, ns, stop):
    """A signal before the target was built: the status line from the common
    options if they parse, without state or syslog (there is no peer to name)."""
    if ns is None:
        ns = registry.parse_command(argv, check, build=False).options
        if ns is None:  # the options do not parse
            return _fail_early(check, prog, str(stop), "--nagios" in argv)
    target = _peerless(ns)
    if target is None:
        return _fail_early(check, prog, str(stop), ns.nagios)
    result = Result(False, reason=str(stop), cause=STOPPED)
    judged = verdict.judge(result, target)
    show(status_line(check, target, result, judged) + "\n")
    return judged.code


def _peerless(ns):
    """A Target of the common options alone, to report a signal that came while
    the check's own options were still being validated (None if they are unusable)."""
    if ns is None:
        return None
    try:
        return Target(host=None, port=None, **common(ns))
    except UsageError:
        return None


def _report(check, target, result, command, notes):
    """Print the status line (best effort: a lost stdout changes no exit code),
    remember the state of ``command`` (program and arguments), log a change."""
    judged = verdict.judge(result, target)
    lines = [status_line(check, target, result, judged)]
    if target.verbose:
        lines.append(f"cause: {result.cause.describe()}")
        lines.extend(result.details)
        # a decline's reason is the worker's text: one printable line each
        lines.extend(f"({one_line(note)})" for note in notes)
    show("\n".join(lines) + "\n")
    remembered = remembered_state(result, judged)
    previous = state.swap(command, remembered)
    if previous != remembered and not target.quiet:
        from kachecks import syslogger

        priority = syslogger.LOG_NOTICE if remembered == verdict.UP else syslogger.LOG_WARNING
        syslogger.send(check.prog, syslog_message(check, target, result, judged), priority)
    return judged.code


def _fail_early(check, prog, message, nagios, usage=False):
    """Usage and internal errors: one line, exit 1 (UNKNOWN 3 under --nagios)."""
    judged = verdict.error_verdict(nagios)
    if nagios:
        show(f"{check.name} {judged.word}: {message}\n")
    else:
        hint = f" (see {prog} --help)" if usage else ""
        show(f"{prog}: error: {message}{hint}\n", sys.stderr)
    return judged.code
