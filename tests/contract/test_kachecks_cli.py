"""The `kachecks` group: version, help, lazy dispatch."""

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
