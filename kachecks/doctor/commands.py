"""kachecks checks in ``misc_path`` / ``script``: parsed by the check itself, run once.

A command is a kachecks check when its program is ``kachecks-http`` (or
-tcp, -ldap) wherever it is installed, or ``kachecks check NAME``. Its
arguments go through the check's own option parser, so the doctor rejects
exactly what the check would reject at every run. Then the settings keepalived
wraps around it are compared with the check's: the kill timer
(``misc_timeout``, else the virtual server's ``delay_loop``; a vrrp_script's
``timeout``, else its ``interval``) must leave the check its ``--timeout``,
and ``--dynamic`` exit codes mean something only under ``misc_dynamic``.
"""

import os
from concurrent.futures import ThreadPoolExecutor

from kachecks.doctor.findings import ERROR, WARNING, at
from kachecks.errors import UsageError

WORKERS = 16
RUNNABLE = ("misc_path", "script")  # the keywords whose exit code keepalived acts on


class Command:
    """One kachecks check found in the configuration: the script, its check, its target."""

    __slots__ = ("script", "check", "target")

    def __init__(self, script, check, target):
        self.script = script
        self.check = check
        self.target = target


def is_kachecks_check(argv):
    """Whether ``argv`` runs a kachecks check (so the check's parser must accept it)."""
    base = os.path.basename(argv[0]) if argv else ""
    if not base.startswith("kachecks"):
        return False  # most commands: no need to load the check table
    from kachecks.checks import registry

    return base.startswith(registry.EXECUTABLE_PREFIX) or (base == "kachecks" and argv[1:2] == ["check"])


def parse(scripts):
    """(commands, findings): each kachecks check parsed by its own option table."""
    commands, findings = [], []
    for script in scripts:
        if script.keyword not in RUNNABLE or not is_kachecks_check(script.argv):
            continue
        from kachecks.checks import registry

        try:
            check, args = registry.from_command(script.argv)
            target = check.parse(args)
        except UsageError as exc:
            findings.append(at(script.node, ERROR, "bad-option",
                               f"{_name(script)}: {exc}: the check exits 1 at every run"))
            continue
        commands.append(Command(script, check, target))
    return commands, findings


def _name(script):
    """``kachecks-http`` or ``kachecks check http``, wherever installed."""
    base = os.path.basename(script.argv[0])
    return " ".join([base, *script.argv[1:3]]) if base == "kachecks" else base


def settings(commands):
    """misc-timeout and dynamic-mismatch findings: keepalived's settings against the check's."""
    findings = []
    for command in commands:
        script, target = command.script, command.target
        name = _name(script)
        if script.timeout is not None and script.timeout <= target.timeout:
            findings.append(at(script.node, ERROR, "misc-timeout",
                               f"{_timer(script)} is not more than {name} --timeout"
                               f" {target.timeout:g}: keepalived kills the check before it can"
                               " report, and a killed check is a failure"))
        if script.keyword == "misc_path":
            if target.dynamic and not script.dynamic:
                findings.append(at(script.node, ERROR, "dynamic-mismatch",
                                   f"{name} --dynamic without misc_dynamic: every healthy run exits"
                                   " 2 or more, which keepalived reads as a failure"))
            if target.nagios and script.dynamic:
                findings.append(at(script.node, ERROR, "dynamic-mismatch",
                                   f"{name} --nagios under misc_dynamic: its CRITICAL (2) reads as"
                                   " healthy with weight 0"))
        elif target.dynamic:
            findings.append(at(script.node, ERROR, "dynamic-mismatch",
                               f"{name} --dynamic in a vrrp_script: keepalived reads any exit but 0"
                               " as a failure there (only MISC_CHECK misc_dynamic has weights)"))
        if target.nagios and not (script.keyword == "misc_path" and script.dynamic):
            findings.append(at(script.node, WARNING, "bad-option",
                               f"{name} --nagios: monitoring-plugin codes are for Icinga/Nagios;"
                               " keepalived reads its WARNING (1) as a failure"))
    return findings


def _timer(script):
    """Which setting kills the script, and where it is written."""
    node = script.timeout_node
    if node is None:
        default = "the virtual server's delay_loop" if script.keyword == "misc_path" else "interval"
        return f"the kill timer (keepalived's default: {default}, {script.timeout:g} s)"
    where = f"line {node.line}" if node.file == script.node.file else f"{node.file}:{node.line}"
    if script.keyword == "misc_path" and node.keyword == "delay_loop":
        return (f"the kill timer (no misc_timeout: the virtual server's delay_loop {node.args[0]},"
                f" {where})")
    if script.keyword == "script" and node.keyword == "interval":
        return f"the kill timer (no timeout: the vrrp_script's interval {node.args[0]}, {where})"
    return f"{node.keyword} {node.args[0]} ({where})"


class _Witness:
    """A check whose probe remembers the failure it raised.

    ``contract.evaluate`` turns a failure into ``Result(ok=False)`` with its
    text only; where it happened (no answer at all, or a wrong one) decides
    between unreachable and check-failed.
    """

    def __init__(self, check):
        self.check = check
        self.failure = None

    def probe(self, target, deadline):
        from kachecks.errors import ProbeFailure

        try:
            return self.check.probe(target, deadline)
        except ProbeFailure as exc:
            self.failure = exc
            raise


def unanswered(failure):
    """Whether the peer never answered (as opposed to answering wrong)."""
    if failure is None:
        return False
    if failure.phase in ("resolve", "connect"):
        return True
    return failure.reason == "timeout" and failure.phase in ("tls", "send", "wait")


def run_all(commands):
    """check-failed / unreachable findings from running each check once, in parallel."""
    if not commands:
        return []
    from kachecks.checks import contract

    def one(command):
        witness = _Witness(command.check)
        return contract.evaluate(witness, command.target), witness.failure

    with ThreadPoolExecutor(max_workers=min(WORKERS, len(commands))) as pool:
        outcomes = list(pool.map(one, commands))
    findings = []
    for command, (result, failure) in zip(commands, outcomes):
        if result.ok:
            continue
        text = f"{_name(command.script)} {command.target.identity}: {result.reason}"
        if unanswered(failure):
            findings.append(at(command.script.node, WARNING, "unreachable", text))
        else:
            findings.append(at(command.script.node, ERROR, "check-failed", text))
    return findings
