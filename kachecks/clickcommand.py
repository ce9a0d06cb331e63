"""The one convention of the click commands (agent, doctor, notify, fifo, spool, `kachecks`).

click's own convention is not ours: a usage mistake prints a usage block and
exits 2, which keepalived's misc_dynamic would read as "healthy, weight 0",
and a failure that escapes a callback is a traceback. Every kachecks click
command is built from ``Command`` or ``Group`` instead, and then:

- its callback runs under the one guard (kachecks.runtime.guarded), with the
  command's path as the program name: whatever escapes is one line on stderr
  (and, with ``report=``, a copy in syslog) and a defined code;
- a usage mistake (unknown option, missing argument, unknown subcommand) is
  one such line, ``PROG: <click's words> (see --help)``, and exit 1;
- a failure it means to report is ``CommandFailed`` (kachecks.errors); an
  OSError that escapes says its file and cause, not "internal error";
- it returns an exit code (kachecks.status.ExitCode), never calls sys.exit.

Callers build commands as usual: ``@click.command(cls=Command)`` (``report=``
a function taking each error line) or ``@click.group(cls=Group)``.
"""

import click

from kachecks.errors import CommandFailed, UsageError
from kachecks.runtime import guarded
from kachecks.status import ExitCode

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
_BAD_USAGE = "kachecks.bad_usage"


def usage_text(exc):
    """click's words for a usage mistake, with where to look: one line."""
    where = f"{exc.ctx.command_path} --help" if exc.ctx is not None else "--help"
    return f"{exc.format_message()} (see {where})".replace("\n", " ")


class Guarded:
    """Parsing and running both go through the guard (mixed into click's classes).

    click reports usage mistakes itself while parsing; they are kept until
    ``invoke`` so the guard says them like any other error.
    """

    def __init__(self, *args, report=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.report = report

    def parse_args(self, ctx, args):
        if not args and getattr(self, "no_args_is_help", False) and not ctx.resilient_parsing:
            click.echo(ctx.get_help(), color=ctx.color)  # a group alone: its help, exit 0
            ctx.exit()                                    # (click 8.2+: a usage error, exit 2)
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            ctx.meta[_BAD_USAGE] = usage_text(exc)
            return []

    def invoke(self, ctx):
        return guarded(self._invoke, ctx, prog=ctx.command_path, report=self.report)

    def _invoke(self, ctx):
        if _BAD_USAGE in ctx.meta:
            raise UsageError(ctx.meta.pop(_BAD_USAGE))
        try:
            code = super().invoke(ctx)
        except click.UsageError as exc:  # a group's unknown subcommand, a plain click command's
            raise UsageError(usage_text(exc)) from None
        except click.exceptions.Exit as exc:  # a subcommand's --help
            return exc.exit_code
        except click.ClickException as exc:  # click's other errors (a file it could not open)
            raise CommandFailed(exc.format_message()) from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise CommandFailed(f"{where}{exc.strerror or exc}") from None
        return ExitCode.OK if code is None else code


class Duration(click.ParamType):
    """A time option: kachecks.toml's one duration type (``2``, ``0.5``, ``500ms``, ``30s``,
    ``5m``…; kachecks.configfile.duration), from ``low`` (allowed if ``low_ok``) to
    ``high`` seconds."""

    name = "duration"

    def __init__(self, low=0.0, high=3600.0, low_ok=False):
        self.bounds = (low, high, low_ok)

    def convert(self, value, param, ctx):
        if isinstance(value, float):  # a default
            return value
        from kachecks.configfile import ConfigError, duration

        try:
            return duration(value, None, *self.bounds)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


class Command(Guarded, click.Command):
    """A click command that keeps kachecks' convention (see the module)."""


class Group(Guarded, click.Group):
    """A click group that keeps kachecks' convention; its subcommands are ``Command``s."""

    command_class = Command
