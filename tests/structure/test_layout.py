"""Imports go one way: tests -> harness <- lab, bench; the product imports neither.

A test module reaches fixtures by name and shared code through the harness, never by
importing another test module or a conftest; the harness runs without pytest
(scripts/lab, scripts/bench); the package build ships kachecks only.
"""

import ast
import fnmatch
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTS = sorted((ROOT / "tests").rglob("*.py"))
HARNESS = sorted((ROOT / "harness").rglob("*.py"))
PROGRAMS = [ROOT / "scripts" / "bench"]  # Python programs beside the harness


def imports(path):
    """(line, module) of every import in ``path``; relative ones keep their dots."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found.append((node.lineno, base))
            # `from tests.x import conftest` names the module in the alias
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names
                      if alias.name == "conftest" or alias.name.startswith("test_")]
    return found


def is_test_code(module):
    parts = module.lstrip(".").split(".")
    return (module.startswith(".") or parts[0] == "tests" or "conftest" in parts
            or any(p.startswith("test_") for p in parts))


def offenders(paths, bad):
    return [f"{p.relative_to(ROOT)}:{line}: {module}"
            for p in paths for line, module in imports(p) if bad(module)]


def test_the_scan_sees_every_kind_of_forbidden_import(tmp_path):
    sample = tmp_path / "test_sample.py"
    sample.write_text("import tests.support.cli\nfrom tests.checks.conftest import http\n"
                      "from . import helpers\nfrom .conftest import x\nimport test_other\n"
                      "from tests.worker import test_worker\nfrom harness.peers import cli\n"
                      "import pytest\n")
    flagged = [(line, m) for line, m in imports(sample) if is_test_code(m)]
    assert flagged == [(1, "tests.support.cli"), (2, "tests.checks.conftest"), (3, "."),
                       (4, ".conftest"), (5, "test_other"), (6, "tests.worker"),
                       (6, "tests.worker.test_worker")]


def test_no_test_module_imports_another_test_module_or_a_conftest():
    assert len(TESTS) > 50  # the scan really read the suite
    assert offenders(TESTS, is_test_code) == []


def test_the_harness_imports_neither_pytest_nor_tests():
    assert HARNESS and all(p.exists() for p in PROGRAMS)
    bad = lambda m: m.split(".")[0] in ("pytest", "_pytest", "tests", "conftest")  # noqa: E731
    assert offenders(HARNESS + PROGRAMS, bad) == []


def test_the_product_imports_neither_the_harness_nor_tests():
    product = sorted((ROOT / "kachecks").rglob("*.py"))
    bad = lambda m: m.split(".")[0] in ("harness", "tests", "pytest", "conftest")  # noqa: E731
    assert offenders(product, bad) == []


def test_importing_the_whole_harness_loads_no_pytest():
    modules = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in HARNESS
               if p.name != "__main__.py"]
    modules = [m.removesuffix(".__init__") for m in modules]
    code = ("import importlib, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in"
            " ('pytest', '_pytest', 'tests', 'conftest')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("top", ["harness", "tests"])
def test_the_package_build_leaves_out_the_harness_and_the_tests(top):
    with open(ROOT / "pyproject.toml", "rb") as f:
        find = tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]
    assert any(fnmatch.fnmatchcase("kachecks", pattern) for pattern in find["include"])
    assert not any(fnmatch.fnmatchcase(top, pattern) for pattern in find["include"])
