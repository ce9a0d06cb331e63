"""genhash and the plain-HTTP engine stay light: no ssl, socket or heavy modules.

Run with -S so that .pth hooks of the interpreter's site-packages do not count.
"""

import subprocess
import sys

import pytest

from harness.imports import GENHASH_EXTRA, HEAVY, TLS, importtime_modules
from harness.peers.rawhttp import RawHTTPServer, http_response


def imported_modules(*args):
    result = subprocess.run([sys.executable, "-S", "-X", "importtime", "-m", "kachecks", "genhash", *map(str, args)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, importtime_modules(result.stderr)


def test_plain_http_path_imports_neither_ssl_nor_socket():
    with RawHTTPServer(http_response(b"hello from Server 1\n")) as server:
        stdout, modules = imported_modules("-s", "127.0.0.1", "-p", server.port, "-u", "/service.txt")
    assert stdout == "5f2b4547f41470dc3e293e7267461575\n"
    assert "_socket" in modules and "kachecks.http.fetch" in modules
    assert not modules & (HEAVY | GENHASH_EXTRA | TLS | {"socket", "kachecks.net.tls"})


@pytest.mark.parametrize("flag", ["-S"])
def test_tls_path_imports_ssl_only_then(flag, tls_cert):
    with RawHTTPServer(http_response(b"hello from Server 1\n"), tls=tls_cert) as server:
        _stdout, modules = imported_modules(flag, "-s", "127.0.0.1", "-p", server.port, "-u", "/")
    assert "ssl" in modules
    assert not modules & HEAVY
