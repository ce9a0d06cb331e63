"""The ``kachecks`` command: a click group whose subcommands load on demand.

``kachecks genhash`` and ``kachecks check …`` are forked by scripts and
benchmarks as often as the check executables, so they are dispatched
before click is imported; the click group only lists them for ``--help``.
"""

import sys

from kachecks import __version__

# Subcommands that keep their own getopt-style parser (kachecks.argspec).
# name -> (module, one-line help)
FAST_COMMANDS = {
    "genhash": ("kachecks.genhash.cli", "keepalived-genhash-compatible digest of a URL."),
}
CHECKS = {
    "http": ("kachecks.checks.http", "HTTP/HTTPS check (same as kachecks-http)."),
    "tcp": ("kachecks.checks.tcp", "TCP / TLS / agent check (same as kachecks-tcp)."),
    "ldap": ("kachecks.checks.ldap", "LDAP bind + search check (same as kachecks-ldap)."),
}
# Subcommands written with click, imported only when invoked: name -> (module, attr).
CLICK_COMMANDS = {
    "notify": ("kachecks.notify.commands", "notify"),
    "fifo": ("kachecks.notify.commands", "fifo"),
    "spool": ("kachecks.notify.commands", "spool"),
    "worker": ("kachecks.worker.server", "worker"),
    "agent": ("kachecks.agent.cli", "agent"),
}


def _run_module(module, args, prog):
    mod = __import__(module, fromlist=["main"])
    return mod.main(args, prog=prog)


def main(argv=None):
    """Entry point of ``kachecks``; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in FAST_COMMANDS:
        return _run_module(FAST_COMMANDS[argv[0]][0], argv[1:], f"kachecks {argv[0]}")
    if len(argv) >= 2 and argv[0] == "check" and argv[1] in CHECKS:
        return _run_module(CHECKS[argv[1]][0], argv[2:], f"kachecks check {argv[1]}")
    return _click_main(argv)


def _click_main(argv):
    import click

    class LazyGroup(click.Group):
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
                return getattr(mod, attr)
            return super().get_command(ctx, name)

    def passthrough(name, module, help_text, prog):
        @click.command(
            name=name,
            help=f"{help_text}\n\nRun `{prog} --help` for its options.",
            short_help=help_text,
            add_help_option=False,
            context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        )
        @click.argument("args", nargs=-1, type=click.UNPROCESSED)
        def command(args):
            sys.exit(_run_module(module, list(args), prog))

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
    @click.version_option(__version__, prog_name="kachecks")
    def group():
        """Health checks, genhash and notifications for keepalived.

        The checks also exist as kachecks-http, kachecks-tcp and
        kachecks-ldap, for MISC_CHECK misc_path and vrrp_script script.
        """

    for name, (module, text) in FAST_COMMANDS.items():
        group.add_command(passthrough(name, module, text, f"kachecks {name}"))

    @group.group(name="check", short_help="Run a check (http, tcp, ldap).")
    def check():
        """Run one of the health checks; same options and exit codes as
        the kachecks-http, kachecks-tcp and kachecks-ldap executables."""

    for name, (module, text) in CHECKS.items():
        check.add_command(passthrough(name, module, text, f"kachecks check {name}"))

    try:
        group.main(args=argv, prog_name="kachecks", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0
