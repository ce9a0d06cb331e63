"""Fixtures for the monitoring definitions: web1's page over TLS."""

import pytest

from harness.checks import SERVER1
from harness.peers.certs import self_signed
from harness.peers.rawhttp import RawHTTPServer, http_response


@pytest.fixture(scope="module")
def tls_web(tmp_path_factory):
    """web1's /service.txt behind a self-signed certificate; its port."""
    cert = self_signed(tmp_path_factory.mktemp("certs"), "www.mysite.mydmn.org")
    with RawHTTPServer(http_response(SERVER1), tls=cert) as server:
        yield server.port
