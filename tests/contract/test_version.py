"""--version everywhere, in one format: ``PROGRAM VERSION`` on stdout, exit 0."""

import pytest

from harness.docs import every_command
from harness.entrypoints import names as executables
from harness.peers.cli import run
from kachecks import __version__


@pytest.mark.slow
def test_every_executable_and_subcommand_prints_program_and_version():
    commands = every_command(run, executables())
    assert ["kachecks", "genhash"] in commands and ["kachecks", "spool", "list"] in commands
    wrong = {}
    for words in commands:
        done = run(*words, "--version")
        if (done.returncode, done.stdout, done.stderr) != (0, f"{' '.join(words)} {__version__}\n", ""):
            wrong[" ".join(words)] = (done.returncode, done.stdout, done.stderr)
    assert wrong == {}


def test_genhash_version_is_an_option_keepalived_users_can_ask_for():
    done = run("kachecks", "genhash", "--version")
    assert (done.returncode, done.stdout) == (0, f"kachecks genhash {__version__}\n")
    assert "--version" in run("kachecks", "genhash", "--help").stdout
