"""The checks kachecks ships: one table, and how to find a check from a command line.

``kachecks check NAME``, the ``kachecks-NAME`` executables (pyproject.toml's
console scripts, which a test keeps equal to this table) and anything that
must recognise a keepalived ``misc_path``/``script`` line all read CHECKS.
Importing this module imports nothing of kachecks: ``load`` imports one check.
The executables' entry points are kachecks.executables'.
"""

import os

# check name -> module defining CHECK (a kachecks.checks.contract.Check)
CHECKS = {
    "http": "kachecks.checks.http",
    "tcp": "kachecks.checks.tcp",
    "ldap": "kachecks.checks.ldap",
    "vrrp": "kachecks.checks.vrrp",
}
# check name -> one line for `kachecks check --help`
SUMMARIES = {
    "http": "HTTP/HTTPS check (same as kachecks-http).",
    "tcp": "TCP / TLS / agent check (same as kachecks-tcp).",
    "ldap": "LDAP bind + search check (same as kachecks-ldap).",
    "vrrp": "The VRRP pair seen on the wire (same as kachecks-vrrp).",
}
EXECUTABLE_PREFIX = "kachecks-"


def executable(name):
    """``kachecks-http`` for ``http``."""
    return EXECUTABLE_PREFIX + name


def module(name):
    """The module defining check ``name``, or UsageError."""
    try:
        return CHECKS[name]
    except KeyError:
        from kachecks.errors import UsageError

        raise UsageError(f"no check {name!r} (known: {', '.join(CHECKS)})") from None


def load(name):
    """The Check of check ``name`` (imports its module), or UsageError."""
    path = module(name)
    return __import__(path, fromlist=["CHECK"]).CHECK


def from_command(argv):
    """``(CHECK, args)`` for a check's command line, as keepalived's misc_path holds it.

    ``argv[0]`` may be ``kachecks-http`` wherever installed
    (``/usr/bin/kachecks-http``, ``/opt/x/bin/kachecks-http``), or ``kachecks``
    followed by ``check http``. Anything else is a UsageError.
    """
    from kachecks.errors import UsageError

    argv = _without_signal_blocking_env(argv)
    if not argv:
        raise UsageError("empty command line")
    base = os.path.basename(argv[0])
    if base.startswith(EXECUTABLE_PREFIX) and base[len(EXECUTABLE_PREFIX):] in CHECKS:
        return load(base[len(EXECUTABLE_PREFIX):]), list(argv[1:])
    if base == "kachecks" and len(argv) >= 3 and argv[1] == "check":
        return load(argv[2]), list(argv[3:])
    raise UsageError(f"not a kachecks check command: {argv[0]}")


def _without_signal_blocking_env(argv):
    """``env --block-signal=HUP,INT,TERM CMD …`` is ``CMD …`` (docs/checks.md: how an
    administrator closes the interpreter's start-up window); env with any other
    option or a variable is not a check's command line."""
    if not argv or os.path.basename(argv[0]) != "env":
        return argv
    rest = list(argv[1:])
    while rest and rest[0].startswith("--block-signal"):
        rest.pop(0)
    return rest if len(rest) < len(argv) - 1 else argv


def forked(name):
    """``(run, CHECK)``: kachecks.checks.contract.run and check ``name``, loaded
    for a process that runs that one check and exits (UsageError if unknown).

    The cyclic garbage collector is off while they load, then everything
    loaded is frozen (moved out of its reach): modules, functions and option
    tables live until the process exits, so each collection would walk them
    for nothing, and so would the collection at exit. What the run itself
    allocates is collected as usual. (About 5 % of a forked check's CPU:
    docs/performance.md.)
    """
    import gc

    gc.disable()
    try:
        from kachecks.checks.contract import run

        check = load(name)
    finally:
        gc.freeze()
        gc.enable()
    return run, check
