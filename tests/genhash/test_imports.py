"""genhash and the plain-HTTP engine stay light: no ssl, socket or heavy modules.

Run with -S so that .pth hooks of the interpreter's site-packages do not count.
"""

import re
import subprocess
import sys

import pytest

from harness.peers.rawhttp import RawHTTPServer, http_response

FORBIDDEN_ALWAYS = {"click", "requests", "ldap3", "asyncio", "logging", "dataclasses", "typing",
                    "argparse", "importlib.metadata", "pkg_resources", "enum", "selectors"}


def imported_modules(*args):
    result = subprocess.run([sys.executable, "-S", "-X", "importtime", "-m", "kachecks", "genhash", *map(str, args)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, set(re.findall(r"\|\s+(\S+)$", result.stderr, re.M))


def test_plain_http_path_imports_neither_ssl_nor_socket():
    with RawHTTPServer(http_response(b"hello from Server 1\n")) as server:
        stdout, modules = imported_modules("-s", "127.0.0.1", "-p", server.port, "-u", "/service.txt")
    assert stdout == "5f2b4547f41470dc3e293e7267461575\n"
    assert "_socket" in modules and "kachecks.http.fetch" in modules
    assert not modules & (FORBIDDEN_ALWAYS | {"ssl", "socket", "_ssl", "kachecks.net.tls"})


@pytest.mark.parametrize("flag", ["-S"])
def test_tls_path_imports_ssl_only_then(flag, tls_cert):
    with RawHTTPServer(http_response(b"hello from Server 1\n"), tls=tls_cert) as server:
        _stdout, modules = imported_modules(flag, "-s", "127.0.0.1", "-p", server.port, "-u", "/")
    assert "ssl" in modules
    assert not modules & (FORBIDDEN_ALWAYS - {"enum", "selectors"})
