"""The console scripts as the .deb installs them, for the bench and the tests.

``packaging/debian/entry-points`` is the one writer of those wrappers (the package
build runs it); this module loads that file instead of writing wrappers of its own.
"""

import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# packaging/debian in the repository; debian/ in the source tree the package is built
# from, where autopkgtest runs tests/packaging (scripts/build-deb --source).
ENTRY_POINTS = next((p for p in (REPO / "packaging" / "debian" / "entry-points",
                                 REPO / "debian" / "entry-points") if p.exists()),
                    REPO / "packaging" / "debian" / "entry-points")


def _entry_points():
    """The script as a module (compiled here: no __pycache__ lands in packaging/debian)."""
    module = types.ModuleType("kachecks_entry_points")
    exec(compile(ENTRY_POINTS.read_text(), str(ENTRY_POINTS), "exec"), module.__dict__)
    return module


def names(tree=REPO):
    """The executables ``tree``'s pyproject.toml declares, in its order."""
    return list(_entry_points().scripts(Path(tree) / "pyproject.toml"))


def write(directory, tree=REPO, python=None):
    """Write the wrapper of every console script of ``tree`` into ``directory``, on
    interpreter ``python`` (default the .deb's, /usr/bin/python3); return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    module = _entry_points()
    module.write(str(directory), Path(tree) / "pyproject.toml", python or module.PYTHON)
    return directory
