"""What a forked check may import: the one list every import-guard test uses.

keepalived forks every check each delay_loop, so what a check imports is what it
costs; ``python3 -X importtime`` names every module a run loaded.
"""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Entry points resolved at run time (importlib.metadata, its backport) or the old
# setuptools wrappers (pkg_resources): on no executable's path, not even --help.
METADATA = frozenset({"importlib.metadata", "importlib_metadata", "pkg_resources"})
# Never on a check path: each costs milliseconds of CPU per fork or is a sign that a
# heavy framework came along.
NEVER = METADATA | {
    "click", "requests", "urllib3", "asyncio", "logging", "dataclasses", "typing",
    "argparse", "email", "http.client",
    "kachecks.agent", "prometheus_client",  # the resident agent's, never a forked check's
}
LDAP_CLIENTS = frozenset({"ldap3", "pyasn1"})
TLS = frozenset({"ssl", "_ssl"})  # OpenSSL only when TLS is used
# Everything a check that runs no LDAP search must do without.
HEAVY = NEVER | LDAP_CLIENTS
# The plain HTTP and TCP checks (no TLS, no --regex) need none of these either; nor do
# they load kachecks' own modules for TLS options, passwords, weights or body patterns
# (each is one more file found, read and run on every fork).
PLAIN_EXTRA = frozenset({"ssl", "socket", "re", "hashlib", "base64", "selectors",
                         "kachecks.checks.tlsopts", "kachecks.net.tls", "kachecks.secrets",
                         "kachecks.checks.weight", "kachecks.checks.bodywatch",
                         "kachecks.checks.thresholds"})
# kachecks-http hashes the body only for --digest (and -v, which prints the md5).
DIGESTS = frozenset({"kachecks.http.digests", "_sha1", "_sha256", "_sha2"})
# genhash over plain HTTP talks through _socket, without enum or selectors.
GENHASH_EXTRA = frozenset({"enum", "selectors"})
# What ldap3 loads once a search really runs in-process (what the worker is for).
LDAP3_BRINGS = frozenset({"ldap3", "pyasn1", "logging", "dataclasses", "ssl", "_ssl", "socket",
                          "re", "base64"})


def among(modules, names):
    """The ``modules`` that are one of ``names`` or inside one of them, sorted."""
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def importtime_modules(stderr):
    """Module names in the ``-X importtime`` lines of ``stderr``."""
    return {line.split("|")[-1].strip() for line in stderr.splitlines()
            if line.startswith("import time:") and "|" in line and "self [us]" not in line}


def imported(module, argv, python="/usr/bin/python3"):
    """(exit code, modules) of a fresh ``python`` running ``module.main(argv)`` from this tree."""
    code = f"import sys; from {module} import main; sys.exit(main({argv!r}))"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([python, "-X", "importtime", "-c", code], env=env,
                          capture_output=True, text=True, timeout=30)
    return proc.returncode, importtime_modules(proc.stderr)
