"""kachecks checks in ``misc_path`` / ``script``: parsed by the check itself, run once.

A command is a kachecks check when the check registry recognises it
(``kachecks.checks.registry.parse_command``: ``kachecks-http`` or -tcp,
-ldap wherever installed, or ``kachecks check NAME``, maybe behind ``env
--block-signal=…``). Its arguments go through the check's own option parser,
so the doctor rejects exactly what the check would reject at every run, and
what keepalived can never read as a working check (--help, --version) is a
bad-option too. Then the settings keepalived wraps around it are compared with
the check's: the kill timer (``misc_timeout``, else the virtual server's
``delay_loop``; a vrrp_script's ``timeout``, else its ``interval``) must leave
the check its ``--timeout``, and ``--dynamic`` exit codes mean something only
under ``misc_dynamic``. Running it once, its result's cause code tells a peer
that did not answer (unreachable) from one that answered wrong (check-failed).

``kachecks-vrrp`` is read (its options, the instances it names) but never run:
it listens for seconds with CAP_NET_RAW, and what it would see is the pair,
which ``--peer`` and ``--what-if`` audit from the files. In a MISC_CHECK it is
a misplaced-check: it judges the directors, not the real server; so is a
vrrp_script of it tracked with weight 0 (``faulting_listeners``): a problem of
the pair would put the directors in FAULT.
"""

from concurrent.futures import ThreadPoolExecutor

from kachecks.checks import registry
from kachecks.checks.result import L4CON, L4TOUT, L6TOUT, L7TOUT, RESOLV
from kachecks.doctor.findings import ERROR, WARNING, at
from kachecks.errors import Unavailable, UsageError

WORKERS = 16
RUNNABLE = ("misc_path", "script")  # the keywords whose exit code keepalived acts on
# Cause codes of a peer that did not answer (a --max-latency breach answered, slowly)
UNANSWERED = (RESOLV, L4TOUT, L4CON, L6TOUT, L7TOUT)
LISTENER = registry.executable("vrrp")  # the check the doctor reads but does not run


class Command:
    """One kachecks check found in the configuration: the script and its parsed command
    (kachecks.checks.registry.CheckCommand: check, name, target)."""

    __slots__ = ("script", "parsed")

    def __init__(self, script, parsed):
        self.script = script
        self.parsed = parsed

    @property
    def check(self):
        return self.parsed.check

    @property
    def target(self):
        return self.parsed.target

    @property
    def name(self):
        return self.parsed.name

    @property
    def listens(self):
        """kachecks-vrrp: a run listens for --listen seconds (the doctor does not run it)."""
        return self.check.prog == LISTENER


def parse(scripts):
    """(commands, findings): each kachecks check parsed by its own option table."""
    commands, findings = [], []
    for script in scripts:
        if script.keyword not in RUNNABLE or not script.argv:
            continue
        parsed = registry.parse_command(script.argv)
        if parsed.name is None:
            continue  # not a kachecks check
        if parsed.error:
            findings.append(at(script.node, ERROR, "bad-option",
                               f"{parsed.name}: {parsed.error}: the check exits 1 at every run"))
            continue
        if parsed.prints:
            findings.append(at(script.node, ERROR, "bad-option", f"{parsed.name} {parsed.refusal}"))
            continue
        commands.append(Command(script, parsed))
    return commands, findings


def settings(commands):
    """misc-timeout and dynamic-mismatch findings: keepalived's settings against the check's."""
    findings = []
    for command in commands:
        script, target = command.script, command.target
        name = command.name
        if script.timeout is not None and script.timeout <= target.timeout:
            findings.append(at(script.node, ERROR, "misc-timeout",
                               f"{_timer(script)} is not more than {name} --timeout"
                               f" {target.timeout:g}: keepalived kills the check before it can"
                               " report, and a killed check is a failure"))
        if script.keyword == "misc_path" and command.listens:
            findings.append(at(script.node, WARNING, "misplaced-check",
                               f"{name} in a MISC_CHECK judges the VRRP pair, not this real"
                               " server: a problem of the pair takes every real server it checks"
                               f" out at once, each run listening {target.listen:g} s; watch the"
                               " pair from Icinga/Nagios (kachecks-vrrp --nagios) or the agent's"
                               " [vrrp] table"))
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
                               f"{name} {command.parsed.refusal}"))
    return findings


def faulting_listeners(commands, config):
    """misplaced-check: a kachecks-vrrp vrrp_script an instance tracks with weight 0.

    Its failure is the instance's FAULT: a split brain (or filtered, mismatch) takes
    this director out, and the peer too when it runs the same line; then nobody holds
    the addresses, which kachecks-vrrp reads as no-master, so neither leaves FAULT.
    docs/vrrp.md watches the pair from Icinga/Nagios or the agent's [vrrp] instead,
    neither of which changes keepalived's state.
    """
    listeners = {id(c.script.node): c for c in commands
                 if c.listens and c.script.keyword == "script"}
    if not listeners:
        return []
    from kachecks.doctor import vrrp

    findings, seen = [], set()
    for inst in vrrp.director(config).instances:
        for tracker in inst.trackers:
            if tracker.kind != vrrp.SCRIPT or tracker.weight != 0 or tracker.reverse \
                    or tracker.ignored or id(tracker.entry) in seen:
                continue
            command = listeners.get(id(tracker.definition.child("script")))
            if command is None:
                continue
            seen.add(id(tracker.entry))
            who = (f"vrrp_sync_group {inst.sync_group.name}" if tracker.implicit == "group"
                   else f"vrrp_instance {inst.name}")
            findings.append(at(tracker.entry, WARNING, "misplaced-check",
                               f"{command.name} (vrrp_script {tracker.name}) tracked with weight"
                               f" 0 by {who}: a problem of the pair (split brain, filtered,"
                               " mismatch) puts this director in FAULT, and the peer too if it"
                               " runs the same line; nobody holds the addresses then, which is"
                               " no-master, so neither leaves FAULT; watch the pair from"
                               " Icinga/Nagios (kachecks-vrrp --nagios) or the agent's [vrrp]"
                               " table, which never change keepalived's state"))
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


def run_all(commands):
    """check-failed / unreachable findings from running each check once, in parallel.

    The result's cause decides which: no answer (unreachable, a warning: the
    server may be down for maintenance) or a wrong one (check-failed, an error).
    An option only the server's library rejects (an LDAP filter) is a bad-option; a
    check that cannot look from here (kachecks-vrrp without CAP_NET_RAW) failed.
    """
    if not commands:
        return []
    from kachecks.checks import contract

    def one(command):
        try:
            return contract.evaluate(command.check, command.target)
        except (UsageError, Unavailable) as exc:
            return exc

    with ThreadPoolExecutor(max_workers=min(WORKERS, len(commands))) as pool:
        outcomes = list(pool.map(one, commands))
    findings = []
    for command, result in zip(commands, outcomes):
        node = command.script.node
        if isinstance(result, UsageError):
            findings.append(at(node, ERROR, "bad-option",
                               f"{command.name}: {result}: the check exits 1 at every run"))
            continue
        if isinstance(result, Unavailable):  # it cannot look from here: it exits 1 as well
            findings.append(at(node, ERROR, "check-failed", f"{command.name}: {result}"))
            continue
        if result.ok:
            continue
        cause = result.cause
        text = f"{command.name} {command.target.identity}: {cause.code}: {result.reason}"
        if cause.code in UNANSWERED and cause.reason != "latency":
            findings.append(at(node, WARNING, "unreachable", text))
        else:
            findings.append(at(node, ERROR, "check-failed", text))
    return findings
