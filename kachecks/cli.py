"""The ``kachecks`` command: a click group whose subcommands load on demand.

``kachecks genhash`` and ``kachecks check …`` are forked by scripts and
benchmarks as often as the check executables, so they are dispatched
before click is imported; the click group only lists them for ``--help``.
"""

import sys

from kachecks import __version__
from kachecks.checks import registry
from kachecks.errors import UsageError
from kachecks.status import ExitCode

# Subcommands that keep their own getopt-style parser (kachecks.argspec).
# name -> (module, one-line help); the checks are kachecks.checks.registry's.
FAST_COMMANDS = {
    "genhash": ("kachecks.genhash.cli", "keepalived-genhash-compatible digest of a URL."),
}
# Subcommands written with click, imported only when invoked: name -> (module, attr).
CLICK_COMMANDS = {
    "notify": ("kachecks.notify.commands", "notify"),
    "fifo": ("kachecks.notify.commands", "fifo"),
    "spool": ("kachecks.notify.commands", "spool"),
    "worker": ("kachecks.worker.server", "worker"),
    "agent": ("kachecks.agent.cli", "agent"),
    "doctor": ("kachecks.doctor.cli", "doctor"),
    "vrrp": ("kachecks.vrrp.cli", "vrrp"),
}


def _run_module(module, args, prog):
    mod = __import__(module, fromlist=["main"])
    return mod.main(args, prog=prog)


def _run_check(name, args):
    from kachecks import executables

    return executables.run(name, args, f"kachecks check {name}")


def main(argv=None):
    """Entry point of ``kachecks``; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["check"] or (argv and argv[0] in FAST_COMMANDS):
        # Forked like the check executables: catch SIGTERM/SIGINT/SIGHUP before
        # anything heavy loads (kachecks.interrupt).
        from kachecks import interrupt

        interrupt.install()
    from kachecks.runtime import guarded

    return guarded(_dispatch, argv, prog="kachecks")


def _dispatch(argv):
    if argv and argv[0] in FAST_COMMANDS:
        return _run_module(FAST_COMMANDS[argv[0]][0], argv[1:], f"kachecks {argv[0]}")
    if argv[:1] == ["check"] and argv[1:2] not in (["-h"], ["--help"], ["--version"]):
        # Never click's usage code 2 here: keepalived's misc_dynamic reads 2 as healthy.
        if len(argv) < 2:
            raise UsageError(f"kachecks check needs a check: {', '.join(registry.CHECKS)}"
                             " (see kachecks check --help)")
        registry.module(argv[1])  # UsageError naming the known checks
        return _run_check(argv[1], argv[2:])
    return _click_main(argv)


def _click_main(argv):
    import click

    from kachecks.clickcommand import Group

    class LazyGroup(Group):
        """Lists every subcommand, imports one only when it runs."""

        def __init__(self, *args, lazy=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.lazy = lazy or {}

        def list_commands(self, ctx):
            return sorted(set(super().list_commands(ctx)) | set(self.lazy))

        def get_command(self, ctx, name):
            if name in self.lazy:
                module, attr = self.lazy[name]
                mod = __import__(module, fromlist=[attr])
                return with_version(getattr(mod, attr))
            return super().get_command(ctx, name)

    def print_version(ctx, _param, value):
        if value and not ctx.resilient_parsing:
            click.echo(f"{ctx.command_path} {__version__}")
            ctx.exit()

    def with_version(command):
        """``--version`` on a command and its subcommands: ``PROG VERSION``, one format
        for every executable and subcommand (the argspec ones print the same)."""
        if getattr(command, "passthrough", False):
            return command  # genhash and the checks answer --version themselves
        if not any("--version" in getattr(p, "opts", ()) for p in command.params):
            command.params.append(click.Option(
                ["--version"], is_flag=True, expose_value=False, is_eager=True,
                callback=print_version, help="Show the version and exit."))
        for sub in getattr(command, "commands", {}).values():
            with_version(sub)
        return command

    def passthrough(name, help_text, prog, runner):
        @click.command(
            name=name,
            help=f"{help_text}\n\nRun `{prog} --help` for its options.",
            short_help=help_text,
            add_help_option=False,
            context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        )
        @click.argument("args", nargs=-1, type=click.UNPROCESSED)
        def command(args):
            return runner(list(args))

        command.passthrough = True
        return command

    @click.group(
        cls=LazyGroup,
        lazy=CLICK_COMMANDS,
        context_settings={"help_option_names": ["-h", "--help"]},
        epilog="""\b
Examples:
  kachecks genhash -s 192.168.8.101 -p 80 -u /service.txt
  kachecks check http --url http://192.168.8.101/service.txt \\
      --digest 5f2b4547f41470dc3e293e7267461575
  kachecks notify INSTANCE VI_1 MASTER 100
  kachecks spool list
""",
    )
    def group():
        """Health checks, genhash and notifications for keepalived.

        The checks also exist as kachecks-http, kachecks-tcp and
        kachecks-ldap, for MISC_CHECK misc_path and vrrp_script script.
        """

    for name, (module, text) in FAST_COMMANDS.items():
        prog = f"kachecks {name}"
        group.add_command(passthrough(name, text, prog, lambda args, module=module, prog=prog:
                                      _run_module(module, args, prog)))

    names = ", ".join(registry.CHECKS)
    executables = ", ".join(registry.executable(name) for name in registry.CHECKS)

    @group.group(name="check", cls=Group, short_help=f"Run a check ({names}).",
                 help=f"Run one of the health checks; same options and exit codes as the "
                      f"{executables} executables.")
    def check():
        pass

    for name, text in registry.SUMMARIES.items():
        check.add_command(passthrough(name, text, f"kachecks check {name}",
                                      lambda args, name=name: _run_check(name, args)))

    with_version(group)
    # Not standalone: click returns the command's code instead of exiting; a usage
    # mistake anywhere is one line and exit 1 (kachecks.clickcommand).
    code = group.main(args=argv, prog_name="kachecks", standalone_mode=False)
    return code if isinstance(code, int) else ExitCode.OK
