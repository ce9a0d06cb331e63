"""The installed executables answer --help and --version and start without metadata look-ups."""

import re
import subprocess

import pytest

from harness.entrypoints import names as executables
from harness.imports import HEAVY, METADATA, among, importtime_modules
from harness.peers.cli import run


def imported_modules(argv):
    """Modules ``/usr/bin/python3 -X importtime argv`` imports (the interpreter's own too)."""
    done = subprocess.run(["/usr/bin/python3", "-X", "importtime", *argv],
                          capture_output=True, text=True, cwd="/", timeout=30)
    modules = importtime_modules(done.stderr)
    assert modules, done.stderr
    return modules, done.returncode


@pytest.mark.parametrize("name", executables())
def test_help_exits_0_and_shows_usage(installed, name):
    done = run(name, "--help")
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout.lower()
    assert name in done.stdout


@pytest.mark.parametrize("name", executables())
def test_version_prints_the_package_version(installed, name):
    done = run(name, "--version")
    assert done.returncode == 0, done.stderr
    assert installed.split("+")[0] in done.stdout


def listed_commands(*words):
    """Commands ``kachecks WORDS --help`` lists under "Commands:"."""
    text = run("kachecks", *words, "--help").stdout
    listing = text.partition("\nCommands:\n")[2].split("\n\n")[0]
    return re.findall(r"^  ([a-z][a-z-]*)", listing, re.M)


def test_every_kachecks_subcommand_has_help(installed):
    commands = [[c] for c in listed_commands()] + [["check", c] for c in listed_commands("check")]
    assert {"genhash", "notify", "fifo", "spool", "check"} <= {c[0] for c in commands}
    assert len(commands) >= 8
    for words in commands:
        done = run("kachecks", *words, "--help")
        assert done.returncode == 0, (words, done.stderr)
        assert "usage" in done.stdout.lower(), words


@pytest.mark.parametrize("name", executables())
def test_entry_point_does_not_import_package_metadata(installed, name):
    modules, code = imported_modules([f"/usr/bin/{name}", "--help"])
    assert code == 0
    assert not among(modules, METADATA)


@pytest.mark.parametrize("name", ["kachecks-http", "kachecks-tcp"])
def test_a_failing_check_run_imports_no_heavy_library(installed, name, unused_port):
    target = (["--url", f"http://127.0.0.1:{unused_port}/service.txt"] if name == "kachecks-http"
              else ["--host", "127.0.0.1", "--port", str(unused_port)])
    modules, code = imported_modules([f"/usr/bin/{name}", *target, "--timeout", "2", "--quiet"])
    assert code == 1
    assert "kachecks" in modules
    assert not among(modules, HEAVY)
