"""The `kachecks` group: version, help, lazy dispatch."""

import importlib

import pytest

from harness.peers.cli import run
from kachecks import __version__


def test_version():
    proc = run("kachecks", "--version")
    assert proc.returncode == 0
    assert __version__ in proc.stdout


def test_help_lists_every_subcommand_with_examples():
    proc = run("kachecks", "--help")
    assert proc.returncode == 0
    for name in ("genhash", "check", "notify", "fifo", "spool", "Examples:"):
        assert name in proc.stdout


def test_unknown_subcommand_is_an_error():
    proc = run("kachecks", "frobnicate")
    assert proc.returncode != 0
    assert "frobnicate" in proc.stderr


@pytest.mark.parametrize("args, prog, words", [
    (["frobnicate"], "kachecks", "No such command 'frobnicate'"),
    (["--frobnicate"], "kachecks", "--frobnicate"),
    (["notify", "--frobnicate"], "kachecks notify", "--frobnicate"),
    (["spool", "frobnicate"], "kachecks spool", "'frobnicate'"),
    (["spool", "list", "--frobnicate"], "kachecks spool list", "--frobnicate"),
    (["agent", "status", "--frobnicate"], "kachecks agent status", "--frobnicate"),
    (["doctor", "--timeout", "-1"], "kachecks doctor", "--timeout"),
    (["worker", "--slots", "0"], "kachecks worker", "--slots"),
])
def test_every_click_command_says_a_usage_mistake_in_one_line_and_exits_1(args, prog, words):
    """One convention (kachecks.clickcommand): click's own is a usage block and exit 2,
    which keepalived's misc_dynamic would read as "healthy, weight 0"."""
    proc = run("kachecks", *args)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.count("\n") == 1 and "Usage:" not in proc.stderr
    assert proc.stderr.startswith(f"{prog}: ") and words in proc.stderr
    assert proc.stderr.endswith(" --help)\n")


def _command(dotted):
    module, name = dotted.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("args,command", [
    (["doctor", "--timeout"], "kachecks.doctor.cli.doctor"),
    (["vrrp", "watch", "--hold"], "kachecks.vrrp.cli.watch"),
    (["agent", "stop", "--timeout"], "kachecks.agent.cli.stop"),
])
def test_every_time_option_of_the_click_commands_is_a_duration_as_in_kachecks_toml(args,
                                                                                   command):
    """One duration type everywhere: `2`, `500ms`, `30s` (kachecks.configfile), the same
    words for a value that is not one."""
    wrong = run("kachecks", *args, "soon")
    assert wrong.returncode == 1
    assert wrong.stderr == (
        f"kachecks {' '.join(args[:-1])}: Invalid value for '{args[-1]}': must be a duration (a"
        " number of seconds, or a number with a unit: 500ms, 30s, 5m, 12h, 3d, 1w), not"
        f' "soon" (see kachecks {" ".join(args[:-1])} --help)\n')
    cmd = _command(command)
    [option] = [param for param in cmd.params if args[-1] in param.opts]
    for value, seconds in (("1500ms", 1.5), ("2s", 2.0), ("1.5", 1.5)):
        assert cmd.make_context(args[-2], [args[-1], value]).params[option.name] == seconds
