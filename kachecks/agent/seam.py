"""Temporary adapter onto today's check modules (replaced by the typed check seam).

The agent needs, for one ``misc_path`` command line: which check it is, its
parsed and validated target, a probe run that neither prints nor touches
signals, the verdict, and the syslog words of the forked check. These are the
names the shared seam will provide; until it lands they are built here from
``kachecks.checks.contract`` and the check modules, without changing them.
"""

import os

from kachecks import argspec
from kachecks.checks import verdict
from kachecks.checks.result import Result
from kachecks.errors import DeadlineExceeded, ProbeFailure, UsageError

MODULES = {"http": "kachecks.checks.http", "tcp": "kachecks.checks.tcp",
           "ldap": "kachecks.checks.ldap"}


def load(name):
    module = __import__(MODULES[name], fromlist=["CHECK"])
    return module.CHECK


def from_command(argv):
    """(CHECK, args) for a ``misc_path`` command line, or UsageError."""
    argv = list(argv)
    if not argv:
        raise UsageError("empty command")
    program = os.path.basename(argv[0])
    for name in MODULES:
        if program == f"kachecks-{name}":
            return load(name), argv[1:]
    if program == "kachecks" and len(argv) >= 3 and argv[1] == "check" and argv[2] in MODULES:
        return load(argv[2]), argv[3:]
    known = ", ".join(f"kachecks-{n}" for n in MODULES)
    raise UsageError(f"{argv[0]} is not a kachecks check (expected {known} or kachecks check NAME)")


class Target:
    """The parsed options of one command line, with the fields the agent reads."""

    def __init__(self, check, ns):
        self.ns = ns
        self.identity = check.target(ns)
        self.timeout = ns.timeout
        self.dynamic = ns.dynamic
        self.nagios = ns.nagios
        self.quiet = ns.quiet
        self.weight = ns.weight
        self.drain_file = ns.drain_file


def parse(check, args):
    ns = argspec.parse(check.opts, list(args), check.positionals)
    if ns.help or ns.version:
        raise UsageError("--help and --version do not run a check")
    if ns.dynamic and ns.nagios:
        raise UsageError("--dynamic and --nagios exclude each other")
    if check.validate is not None:
        check.validate(ns)
    return Target(check, ns)


def evaluate(check, target):
    """One probe run as a Result: never raises, never prints, no signals."""
    from kachecks.deadline import Deadline

    ns = target.ns
    if ns.drain_file and os.path.exists(ns.drain_file):
        return Result(True, summary=f"drained by {ns.drain_file}", drain=True, weight=0)
    deadline = Deadline(ns.timeout)
    try:
        return check.probe(ns, deadline)
    except (DeadlineExceeded, ProbeFailure) as exc:
        return Result(False, reason=str(exc), perfdata=(("time", deadline.elapsed(), "s"),))
    except Exception as exc:  # noqa: BLE001 - a bug is a failed run, never a dead agent
        return Result(False, reason=f"internal error: {type(exc).__name__}: {exc}")


def judge(result, target):
    return verdict.judge(result, nagios=target.nagios, dynamic=target.dynamic,
                         default_weight=target.weight)


def syslog_message(check, target, result, judged):
    """What the forked check would log for this state (its exact words)."""
    why = result.reason if judged.state == verdict.DOWN else result.summary
    if result.ok and result.warning:
        why = f"{why}; WARNING: {result.warning}"
    return f"{target.identity} {judged.state}: {why}"
