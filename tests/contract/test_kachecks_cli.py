"""The `kachecks` group: version, help, lazy dispatch."""

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
