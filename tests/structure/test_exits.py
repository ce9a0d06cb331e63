"""Only __main__-level code exits: entry points return their code (kachecks.runtime).

A ``sys.exit`` deep in a command turns into a SystemExit that every caller
(the FIFO loop, the worker, a test) must remember to catch; returning the
code keeps one path. Read from the source with ast.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "kachecks"


def _is_main_guard(node):
    """``if __name__ == "__main__":``"""
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name) and test.left.id == "__name__")


def exits(tree):
    """Line numbers of sys.exit(...) calls and ``raise SystemExit`` outside a main guard."""
    found = []

    def visit(node, guarded):
        guarded = guarded or _is_main_guard(node)
        if not guarded:
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "exit" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "sys"):
                found.append(node.lineno)
            if isinstance(node, ast.Raise) and node.exc is not None:
                target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(target, ast.Name) and target.id == "SystemExit":
                    found.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(tree, False)
    return found


def test_the_finder_sees_exits_and_main_guards():
    tree = ast.parse("import sys\ndef f():\n    sys.exit(1)\nraise SystemExit(2)\n"
                     "if __name__ == '__main__':\n    sys.exit(f())\n")
    assert exits(tree) == [3, 4]


def test_only_main_level_code_exits():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.name == "__main__.py":
            continue
        offenders += [f"{relative}:{line}" for line in exits(ast.parse(path.read_text()))]
    assert offenders == []
