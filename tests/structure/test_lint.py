"""scripts/lint (ruff over the tree, mypy over the resident code) passes, and fails on a finding.

scripts/test runs scripts/lint before its passes, so a lint or type error fails the test
run; these tests pin that the gate is shut on the tree as it is and opens on a mistake of
either kind. The tools are the venv's (the test extra: scripts/setup-deps), whichever
interpreter runs the suite. Annotations cost a forked check nothing: ``typing`` is
imported only under ``if TYPE_CHECKING:`` (the module's own ``TYPE_CHECKING = False``).
"""

import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("KACHECKS_VENV", ROOT / ".venv")).resolve()
LINT = ROOT / "scripts" / "lint"


def lint(root):
    """scripts/lint run in the checkout ``root``: (exit code, its output)."""
    assert (VENV / "bin" / "python").exists(), f"no venv at {VENV}: run scripts/setup-deps"
    proc = subprocess.run([str(root / "scripts" / "lint")], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, KACHECKS_VENV=str(VENV)))
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture
def checkout(tmp_path):
    """What scripts/lint reads (its configuration, the package, itself) copied to ``tmp_path``."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(ROOT / "kachecks", tmp_path / "kachecks",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "scripts").mkdir()
    shutil.copy(LINT, tmp_path / "scripts")
    for program in ("scripts/bench", "packaging/debian/entry-points",
                    "packaging/debian/man-from-help"):  # pyproject's extend-include
        (tmp_path / program).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / program, tmp_path / program)
    return tmp_path


def append(path, text):
    with open(path, "a") as f:
        f.write(text)


@pytest.mark.slow  # mypy over the resident code from a cold start: seconds
def test_scripts_lint_passes_on_the_tree():
    code, output = lint(ROOT)
    assert code == 0, output
    assert "Success: no issues found" in output


def test_an_unused_import_fails_scripts_lint_naming_its_line(checkout):
    target = checkout / "kachecks" / "doctor" / "findings.py"
    lines = len(target.read_text().splitlines())
    append(target, "\n\ndef _unused():\n    import json\n")
    code, output = lint(checkout)
    assert code != 0
    assert f"kachecks/doctor/findings.py:{lines + 4}:12: F401" in output, output


@pytest.mark.slow  # mypy from a cold start
def test_a_type_error_in_an_unannotated_resident_function_fails_scripts_lint(checkout):
    target = checkout / "kachecks" / "notify" / "event.py"
    lines = len(target.read_text().splitlines())
    append(target, "\n\ndef _wrong():\n    return len(3)\n")  # unannotated: check_untyped_defs
    code, output = lint(checkout)
    assert code != 0
    assert f"kachecks/notify/event.py:{lines + 4}: error:" in output, output
    assert "[arg-type]" in output


def test_typing_is_imported_only_for_the_type_checker():
    """A run never imports typing for an annotation (harness/imports.py: never on a check's
    path, and the resident code has no need of it either)."""
    found = []
    for path in sorted((ROOT / "kachecks").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        guarded = {id(n) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and isinstance(node.test, ast.Name)
                   and node.test.id == "TYPE_CHECKING" for n in ast.walk(node)}
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "typing" or n.startswith("typing.") for n in names if n) \
                    and id(node) not in guarded:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []
