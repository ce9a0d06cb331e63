"""kachecks where another user can run it, for what the tests run as nobody or a script_user.

The checkout may sit where no other user can go: cloned into /root/kachecks (root's home
is 0700), its sources, its .venv and the console scripts in it are root's alone, and a
PYTHONPATH naming it is silently skipped by another user's interpreter. Nothing here
widens a permission of the checkout or of a directory above it; instead ``install()``
puts, in a directory every user can reach (``open_tempdir()``):

    bin/python3, lib/…      a venv of this interpreter (``venv``, no pip)
    lib/…/site-packages/    a copy of the kachecks this process imports and, when this
                            interpreter is a venv, of the distributions kachecks requires
                            as it has them (scripts/test's pass 1: PyPI's); otherwise the
                            venv sees this Debian's (pass 2: ``--system-site-packages``)
    bin/kachecks…           the console scripts as the .deb writes them
                            (packaging/debian/entry-points), on that venv's interpreter

Both passes thus run the same kind of copy, whatever the checkout's location and umask.
Run it without a PYTHONPATH naming the checkout (it would come first where reachable), and
from a working directory that user can reach (a check hands its own to the worker), as
tests/conftest.py's ``other_user`` fixture does:

    install = otheruser.install(otheruser.open_tempdir("kachecks-other-user-"))
    subprocess.run(install.command("kachecks-http") + [...], user=65534, cwd="/", env=...)
"""

import os
import re
import shutil
import stat
import sys
import tempfile
import venv
from importlib import metadata
from pathlib import Path

from harness import entrypoints

PROJECT = "kachecks"
EXTRAS = ("metrics",)  # the .deb's Recommends: what an installed director has too
# Never needed to run kachecks; requirements of the test tools only.
SKIP = {"pip", "setuptools", "wheel"}


def reachable(path):
    """True if a user other than the owner can reach ``path`` (o+x on it and every parent)."""
    path = Path(path).resolve()
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in (path, *path.parents))


def open_tempdir(prefix):
    """A new 0755 directory under $TMPDIR, or under /tmp if $TMPDIR is not reachable by
    others (a TMPDIR in root's home); the caller removes it."""
    parent = tempfile.gettempdir()
    if not reachable(parent):
        parent = "/tmp"
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    path.chmod(0o755)
    return path


class Install:
    """A copy of kachecks in ``root``, runnable by any user."""

    def __init__(self, root):
        self.root = Path(root)
        self.bin_dir = self.root / "bin"
        self.python = self.bin_dir / "python3"

    def command(self, name):
        """argv prefix for console script ``name`` (``kachecks``, ``kachecks-http``…)."""
        return [str(self.bin_dir / name)]


def install(root):
    """Make ``Install(root)`` in the existing directory ``root``; return it."""
    import kachecks

    package = Path(kachecks.__file__).parent
    root = Path(root)
    in_venv = sys.prefix != sys.base_prefix
    venv.EnvBuilder(system_site_packages=not in_venv, symlinks=True, with_pip=False).create(root)
    site = _site_packages(root)
    if in_venv:
        for dist in _requirements(PROJECT, EXTRAS):
            _copy_distribution(dist, site)
    shutil.copytree(package, site / PROJECT, dirs_exist_ok=True)
    made = Install(root)
    entrypoints.write(made.bin_dir, python=str(made.python))
    _readable_by_all(root)
    return made


def _site_packages(root):
    (lib,) = (root / "lib").glob("python3*")
    return lib / "site-packages"


def _requirements(name, extras=()):
    """The installed distributions ``name`` requires (with ``extras``), recursively;
    a requirement not installed here (one for another platform, say) is left out."""
    found, todo = {}, [(name, extras)]
    while todo:
        wanted, extras = todo.pop()
        try:
            dist = metadata.distribution(wanted)
        except metadata.PackageNotFoundError:
            continue
        if wanted != name:
            found[_key(wanted)] = dist
        for requirement in dist.requires or ():
            spec, _, marker = requirement.partition(";")
            extra = re.search(r"""extra\s*==\s*["']([^"']+)""", marker)
            dep = re.match(r"[A-Za-z0-9._-]+", spec.strip())[0]
            if (extra and extra[1] not in extras) or _key(dep) in found or _key(dep) in SKIP \
                    or _key(dep) == _key(name):
                continue
            found[_key(dep)] = None
            todo.append((dep, ()))
    return [dist for dist in found.values() if dist is not None]


def _key(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _copy_distribution(dist, site):
    """Copy what ``dist``'s RECORD lists inside its site-packages (not its scripts)."""
    base = Path(dist.locate_file("")).resolve()
    for file in dist.files or ():
        source = Path(dist.locate_file(file)).resolve()
        if base not in source.parents or not source.is_file():
            continue
        target = site / source.relative_to(base)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _readable_by_all(root):
    """Directories 0755, files a+r (and a+x where the owner may run them), whatever the
    checkout's modes and this process's umask were."""
    for where, _dirs, files in os.walk(root):
        os.chmod(where, 0o755)
        for name in files:
            path = os.path.join(where, name)
            if not os.path.islink(path):
                mode = os.stat(path).st_mode
                os.chmod(path, 0o755 if mode & stat.S_IXUSR else 0o644)
