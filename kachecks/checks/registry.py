"""The checks kachecks ships: one table, and how to find a check from a command line.

``kachecks check NAME``, the ``kachecks-NAME`` executables (pyproject.toml's
console scripts, which a test keeps equal to this table) and anything that
must recognise a keepalived ``misc_path``/``script`` line all read CHECKS;
``parse_command`` is the one way from a command line to a check and its
target, for the forked run, the agent and the doctor alike.
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


class CheckCommand:
    """A command line read by the registry. ``argv``: split (``env`` included);
    ``name``: ``kachecks-http`` or ``kachecks check http``, None for a line that runs
    no kachecks check; ``check`` (None if unknown); ``program``: the file keepalived
    or env executes; ``args``; ``options``; ``target``: None unless built; ``error``:
    why it cannot run, in the check's own words, else None."""

    __slots__ = ("argv", "name", "check", "program", "args", "options", "target", "error")

    def __init__(self, argv, name=None, check=None, program="", args=(), options=None,
                 target=None, error=None):
        for key, value in (("argv", tuple(argv)), ("name", name), ("check", check),
                           ("program", program), ("args", tuple(args)), ("options", options),
                           ("target", target), ("error", error)):
            object.__setattr__(self, key, value)

    def __setattr__(self, name, value):
        raise AttributeError("CheckCommand is immutable")

    @property
    def prints(self):
        """--help or --version: the run prints and exits 0, checking nothing."""
        return self.options is not None and bool(self.options.help or self.options.version)

    @property
    def refusal(self):
        """Why options the check accepts can never make a working check where keepalived
        reads the exit code, or None: the agent refuses them, the doctor flags them."""
        if self.options is not None:
            for flag, why in EXIT_CODE_REFUSALS:
                if getattr(self.options, flag):
                    return why
        return None

    def build(self):
        """The frozen Target (reads the files the options name), or UsageError."""
        return self.check.build(self.options)


EXIT_CODE_REFUSALS = (
    ("help", "--help prints the usage and exits 0 without checking anything: keepalived would"
             " see exit 0 (healthy) at every run, whatever the server does"),
    ("version", "--version prints the version and exits 0 without checking anything:"
                " keepalived would see exit 0 (healthy) at every run, whatever the server does"),
    ("nagios", "--nagios gives Icinga/Nagios exit codes (1 WARNING, 2 CRITICAL, 3 UNKNOWN):"
               " keepalived would read a WARNING as a failure and, under misc_dynamic,"
               " CRITICAL and UNKNOWN as healthy with weight 0 and 1"),
)


def parse_command(command, check=None, defaults=(), build=True):
    """The CheckCommand of ``command`` (never raises: what is wrong is its ``error``).

    ``command``: a misc_path/script line, a string split as keepalived >= 2.3.2
    splits it, or argv: ``kachecks-NAME`` wherever installed or ``kachecks check
    NAME``, maybe behind ``env --block-signal=…`` (docs/checks.md). ``check``:
    given when ``command`` is its arguments only (the forked run). ``defaults``:
    parsed first, so the command's own options win. The check's own parser reads
    the arguments; the target is built unless ``build`` is False or they print.
    """
    from kachecks.errors import UsageError

    if isinstance(command, str):
        from kachecks.scriptline import CommandError, split_command

        try:
            command = split_command(command)
        except CommandError as exc:
            return CheckCommand((), error=str(exc))
    argv = list(command)
    if check is not None:
        known, name, program, args = None, check.prog, "", argv
    else:
        known, name, program, args = _recognise(argv)
        if name is None:
            return CheckCommand(argv, error=(f"not a kachecks check command: {argv[0]}" if argv
                                             else "empty command line"))
    options = target = None
    try:
        if check is None:
            check = load(known)
        options = check.namespace([*defaults, *args])
        if build and not (options.help or options.version):
            target = check.build(options)
    except UsageError as exc:
        return CheckCommand(argv, name, check, program, args, options, error=str(exc))
    return CheckCommand(argv, name, check, program, args, options, target)


def _recognise(argv):
    """(check name, how it is called, program, args) of a command line; the name None
    when it runs no kachecks check."""
    argv = without_env(argv)
    base = os.path.basename(argv[0]) if argv else ""
    if base.startswith(EXECUTABLE_PREFIX) and base[len(EXECUTABLE_PREFIX):] in CHECKS:
        return base[len(EXECUTABLE_PREFIX):], base, argv[0], argv[1:]
    if base == "kachecks" and len(argv) >= 3 and argv[1] == "check":
        return argv[2], f"kachecks check {argv[2]}", argv[0], argv[3:]
    return None, None, "", ()


def without_env(argv):
    """``argv`` without a leading ``env --block-signal[=SIGNALS]`` (docs/checks.md: how
    an administrator closes the interpreter's start-up window): the command env runs.
    ``env`` with any other option, or a variable, is returned whole (it is not that)."""
    if not argv or os.path.basename(argv[0]) != "env":
        return list(argv)
    rest = list(argv[1:])
    while rest and (rest[0] == "--block-signal" or rest[0].startswith("--block-signal=")):
        rest.pop(0)
    return rest if len(rest) < len(argv) - 1 else list(argv)


def forked(name):
    """Check ``name`` (its module imports kachecks.checks.contract, the forked run),
    loaded for a process that runs that one check and exits (UsageError if unknown).

    The cyclic garbage collector is off while it loads, then everything
    loaded is frozen (moved out of its reach): modules, functions and option
    tables live until the process exits, so each collection would walk them
    for nothing, and so would the collection at exit. What the run itself
    allocates is collected as usual. (About 5 % of a forked check's CPU:
    docs/performance.md.)
    """
    import gc

    gc.disable()
    try:
        check = load(name)
    finally:
        gc.freeze()
        gc.enable()
    return check
