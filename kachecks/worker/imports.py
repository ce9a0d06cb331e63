"""What the checks import, read from their source: the worker preloads exactly that.

A module a check imports lazily (inside a function: ssl, ldap3, the hash
modules) would be imported anew by every child the worker forks, so the
worker imports it once, first. The list is read from the check modules'
source with ``ast`` — every ``import`` at any depth, following kachecks'
own modules — so it cannot drift from the code. An import inside a
``try`` that catches ImportError is optional there (``_sha2`` on Python
>= 3.12, ``_sha256`` before) and so it is here.
"""

import ast
import importlib
import importlib.util

OWN = "kachecks"
# Imported by the interpreter's C code, so no source names them: getaddrinfo()
# encodes a str host name with the "idna" codec.
RUNTIME = ("encodings.idna",)
_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


def preload(roots):
    """Import ``roots`` and everything they import; return the names imported."""
    loaded = set()
    walked = set()
    pending = [(name, False) for name in (*roots, *RUNTIME)]
    while pending:
        name, optional = pending.pop()
        if name in loaded:
            continue
        try:
            module = importlib.import_module(name)
        except ImportError:
            if optional:
                continue
            raise
        loaded.add(name)
        if (name == OWN or name.startswith(OWN + ".")) and name not in walked:
            walked.add(name)
            pending.extend(_imported_by(module))
    return sorted(loaded)


def _imported_by(module):
    """(name, optional) for every import statement in ``module``'s source."""
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py"):
        return []
    with open(path, "rb") as source:
        tree = ast.parse(source.read(), path)
    package = module.__name__ if hasattr(module, "__path__") else module.__package__
    found: list[str] = []
    _collect(tree, package, False, found)
    return found


def _collect(node, package, optional, found):
    if isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers):
        optional = True
    if isinstance(node, ast.Import):
        found.extend((alias.name, optional) for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) \
            if node.level else node.module
        found.append((base, optional))
        # ``from package import name`` may name a submodule: try it, optionally
        found.extend((f"{base}.{alias.name}", True) for alias in node.names if alias.name != "*")
    for child in ast.iter_child_nodes(node):
        _collect(child, package, optional, found)


def _catches_import_error(handler):
    if handler.type is None:  # a bare except
        return True
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(kind, ast.Name) and kind.id in _IMPORT_ERRORS for kind in kinds)
