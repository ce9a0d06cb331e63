"""Start-up imports only what the requested path needs (SPEC §2: start-up cost is a feature)."""

import os
import subprocess
from pathlib import Path

import pytest

from harness.peers.rawhttp import RawHTTPServer, http_response

ROOT = Path(__file__).resolve().parents[2]
NEVER = {"click", "requests", "ldap3", "asyncio", "logging", "dataclasses", "typing",
         "importlib.metadata", "pkg_resources", "argparse"}
PLAIN_EXTRA = {"ssl", "socket", "re", "hashlib", "base64", "selectors"}


def imported(module, argv):
    """Modules a fresh Debian python3 imports to run ``module.main(argv)``."""
    code = f"import sys; from {module} import main; sys.exit(main({argv!r}))"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(["/usr/bin/python3", "-X", "importtime", "-c", code], env=env,
                          capture_output=True, text=True, timeout=30)
    names = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()
             if line.startswith("import time:") and "|" in line}
    return proc.returncode, names


@pytest.fixture(scope="module")
def server():
    with RawHTTPServer(http_response(b"hello from Server 1\n")) as srv:
        yield srv


@pytest.mark.parametrize("module, args", [
    ("kachecks.checks.http", ["--url", "http://{address}/service.txt",
                              "--digest", "5f2b4547f41470dc3e293e7267461575"]),
    ("kachecks.checks.tcp", ["{address}"]),
])
def test_plain_checks_import_neither_ssl_nor_heavy_modules(server, module, args):
    code, names = imported(module, [a.format(address=server.address) for a in args] + ["-q"])
    assert code == 0
    assert "kachecks.net.connect" in names  # the probe really ran
    assert not names & (NEVER | PLAIN_EXTRA), names & (NEVER | PLAIN_EXTRA)


def test_regex_imports_re_only_when_asked(server):
    code, names = imported("kachecks.checks.http",
                           ["--url", f"http://{server.address}/", "--regex", "Server", "-q"])
    assert code == 0 and "re" in names and "ssl" not in names


def test_tls_path_imports_ssl(pki):
    with RawHTTPServer(http_response(b"ok"), tls=pki["good"]) as srv:
        code, names = imported("kachecks.checks.http", ["--url", f"https://{srv.address}/", "-q"])
    assert code == 0 and "ssl" in names
    assert not names & NEVER
