"""Peers for the worker tests: TLS servers (a TLS check is one kachecks-http hands to
the worker). ``worker`` and ``open_dir`` come from tests/conftest.py."""

import pytest

from harness.checks import SERVER1
from harness.peers import certs
from harness.peers.rawhttp import RawHTTPServer, http_response


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory):
    return certs.self_signed(tmp_path_factory.mktemp("tls"), "www.mysite.mydmn.org",
                             alt_names=("127.0.0.1",))


@pytest.fixture
def https(tls_pair):
    """web1's /service.txt over TLS on loopback (``.url``)."""
    with RawHTTPServer(http_response(SERVER1), tls=tls_pair) as server:
        yield server


@pytest.fixture
def hanging_https(tls_pair):
    """A TLS port that accepts and never answers."""
    with RawHTTPServer(http_response(SERVER1), tls=tls_pair, hang=True) as server:
        yield server
