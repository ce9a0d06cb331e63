"""Start-up imports only what the requested path needs
(docs/reference.md, "The check contract": start-up cost)."""

import pytest

from harness.imports import DIGESTS, HEAVY, PLAIN_EXTRA, imported
from harness.peers.rawhttp import RawHTTPServer, http_response


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
    assert not names & (HEAVY | PLAIN_EXTRA), names & (HEAVY | PLAIN_EXTRA)


def test_http_without_digest_loads_no_hash_module(server):
    code, names = imported("kachecks.checks.http",
                           ["--url", f"http://{server.address}/service.txt", "-q"])
    assert code == 0
    assert "kachecks.http.fetch" in names  # the probe really ran
    assert not names & (HEAVY | PLAIN_EXTRA | DIGESTS), names & (HEAVY | PLAIN_EXTRA | DIGESTS)


def test_regex_imports_re_only_when_asked(server):
    code, names = imported("kachecks.checks.http",
                           ["--url", f"http://{server.address}/", "--regex", "Server", "-q"])
    assert code == 0 and "re" in names and "ssl" not in names


def test_tls_path_imports_ssl(pki):
    with RawHTTPServer(http_response(b"ok"), tls=pki["good"]) as srv:
        code, names = imported("kachecks.checks.http", ["--url", f"https://{srv.address}/", "-q"])
    assert code == 0 and "ssl" in names
    assert not names & HEAVY
