"""The man pages, made from --help as the package build makes them, read right:
every option an entry of its own, examples and snippets line for line."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.docs import every_command, man_page_of, man_problems, render_man
from harness.entrypoints import names as executables
from harness.peers.cli import bin_dir, run

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MAN_FROM_HELP = REPO / "packaging/debian/man-from-help"


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """name -> rendered text of each executable's page, built from this tree's --help."""
    debian = tmp_path_factory.mktemp("debian")  # laid out as the package build has it
    shutil.copytree(REPO / "packaging/debian/man-include", debian / "man-include")
    out = debian / "man"
    out.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir()}:{os.environ['PATH']}"}
    for name in executables():
        with (out / f"{name}.1").open("w") as f:
            subprocess.run([sys.executable, MAN_FROM_HELP, bin_dir() / name, "0.1.0",
                            debian / f"man-include/{name}.h2m"],
                           stdout=f, check=True, env=env, timeout=120)
    rendered = {}
    for page in sorted(out.glob("*.1")):
        text, warnings = render_man(page)
        assert warnings == "", (page.name, warnings)
        rendered[page.stem] = text
    return rendered


def test_every_command_keeps_its_options_and_examples_in_its_page(pages):
    commands = every_command(run, executables())
    assert len(commands) >= 12
    lost = {" ".join(w): man_problems(run(*w, "--help").stdout, pages[man_page_of(w)])
            for w in commands}
    assert {w: p for w, p in lost.items() if p} == {}


def test_genhash_section_lists_hash_and_format_apart_and_keeps_the_differences(pages):
    section = pages["kachecks"].split("\n   kachecks genhash\n")[1].split("\n   kachecks ")[0]
    lines = [line.strip() for line in section.splitlines()]
    assert "-H, --hash ALGO" in lines and "--format FORMAT" in lines
    differences = lines.index("Differences from keepalived's genhash (each one on purpose):")
    assert lines[differences + 2].startswith("- A network or protocol failure")


def test_the_check_subcommands_point_to_their_own_pages(pages):
    assert "The same as kachecks-http(1), with the same options" in " ".join(
        pages["kachecks"].split())


def test_a_reflowed_example_is_caught():
    help_text = "Usage: x\n\nExamples:\n  x --a 1\n      one line\n  x --b\n"
    assert man_problems(help_text, "x --a 1 one line x --b\n") == [
        "line 'x --a 1' was not kept as it is", "line 'one line' was not kept as it is",
        "line 'x --b' was not kept as it is"]
    assert man_problems("Usage: x\n\nOptions:\n  -a, --all  every\n  --bee  b\n",
                        "-a, --all every --bee b\n") == [
        "option '-a, --all' is not an entry of its own", "option '--bee' is not an entry of its own"]
