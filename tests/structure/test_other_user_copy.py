"""What the tests run as another user is the kachecks under test, on this run's libraries,
however unreachable the checkout is (harness/otheruser.py; scripts/test-from-root-home)."""

import filecmp
import subprocess
from importlib import metadata
from pathlib import Path

import kachecks
from harness.entrypoints import names as executables

AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
LIBRARIES = ("click", "requests", "ldap3", "aiosmtplib")


def identical_trees(left, right):
    compared = filecmp.dircmp(left, right, ignore=["__pycache__"])
    return (not (compared.left_only or compared.right_only or compared.diff_files
                 or compared.funny_files)
            and all(identical_trees(Path(left, sub), Path(right, sub))
                    for sub in compared.common_dirs))


def test_nobody_imports_a_copy_of_this_kachecks_with_this_runs_libraries(other_user):
    done = subprocess.run(
        [*AS_NOBODY, other_user.python, "-c",
         "import sys, kachecks; from importlib.metadata import version;"
         " print(kachecks.__file__, *(version(name) for name in sys.argv[1:]))", *LIBRARIES],
        capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    where, *versions = done.stdout.split()
    assert Path(where).is_relative_to(other_user.root)
    assert versions == [metadata.version(name) for name in LIBRARIES]
    assert identical_trees(Path(kachecks.__file__).parent, Path(where).parent)


def test_nobody_runs_every_console_script_of_the_copy(other_user):
    for name in executables():
        done = subprocess.run([*AS_NOBODY, *other_user.command(name), "--version"],
                              capture_output=True, text=True, timeout=30)
        assert (done.returncode, done.stdout) == (0, f"{name} {kachecks.__version__}\n"), done
