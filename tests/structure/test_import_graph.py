"""kachecks/ imports form a tree of layers, never a cycle.

A cycle means two modules that cannot be understood (or loaded, or
tested) one without the other; lazy imports inside functions count too,
since they are the same dependency paid later. The graph is read from the
source with ast, so nothing is imported to build it.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "kachecks"


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules():
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name, path, known):
    """The kachecks modules ``name`` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from kachecks.checks import tlsopts` imports a module; `from x import f` a name
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in known and target != name)
    return found


def graph():
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def find_cycle(edges):
    """One cycle as a list of modules (first == last), or None."""
    state = {}
    stack = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_graph_is_read_from_real_imports():
    edges = graph()
    assert "kachecks.checks.contract" in edges["kachecks.checks.http"]
    assert "kachecks.http.fetch" in edges["kachecks.checks.http"]  # a lazy import counts
    assert "kachecks.checks.tlsopts" in edges["kachecks.checks.tcp"]  # from package import module


def test_the_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_outside_notify():
    edges = {name: {t for t in targets if not t.startswith("kachecks.notify")}
             for name, targets in graph().items() if not name.startswith("kachecks.notify")}
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_kachecks_has_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


# What runs checks, and the entry modules: the check layer is below them all, so that a
# check can be loaded, parsed and probed by any of them (docs/architecture.md).
FRONT_ENDS = ("kachecks.worker", "kachecks.agent", "kachecks.doctor", "kachecks.notify",
              "kachecks.genhash", "kachecks.cli", "kachecks.executables", "kachecks.__main__")


def inside(name, packages):
    return any(name == p or name.startswith(p + ".") for p in packages)


def upward(edges, layer, above):
    """(importer, imported) for every import from ``layer`` into one of ``above``."""
    return sorted((name, target) for name, targets in edges.items() if inside(name, [layer])
                  for target in targets if inside(target, above))


def test_the_layer_finder_sees_an_import_that_runs_up():
    edges = {"kachecks.checks.contract": {"kachecks.worker.client", "kachecks.errors"},
             "kachecks.worker.server": {"kachecks.checks.contract"}}
    assert upward(edges, "kachecks.checks", FRONT_ENDS) == [
        ("kachecks.checks.contract", "kachecks.worker.client")]


def test_the_check_layer_imports_neither_the_worker_nor_any_front_end():
    assert upward(graph(), "kachecks.checks", FRONT_ENDS) == []


def test_the_pair_watcher_and_the_agent_import_nothing_of_the_doctor():
    """keepalived.conf has one reader (kachecks.keepalivedconf), beneath the doctor, the
    pair watcher and the agent alike: neither of the others reaches into the doctor."""
    edges = graph()
    for layer in ("kachecks.vrrp", "kachecks.agent", "kachecks.keepalivedconf"):
        assert upward(edges, layer, ["kachecks.doctor"]) == [], layer


def test_each_worker_module_imports_only_what_its_rule_allows():
    edges = graph()
    # the wire: standard library only, so both ends (one a forked check) can afford it
    assert edges["kachecks.worker.protocol"] == set()
    # the privileged code, reviewable alone: it needs the wire's Declined and nothing else
    assert edges["kachecks.worker.context"] == {"kachecks.worker.protocol"}
    # the hand-over, on a forked check's path: nothing of the server side, nor the checks
    assert not upward(edges, "kachecks.worker.client",
                      ["kachecks.worker.server", "kachecks.worker.context",
                       "kachecks.worker.imports", "kachecks.checks"])
