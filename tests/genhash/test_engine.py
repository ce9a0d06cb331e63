"""The shared engine (kachecks.http.fetch) as the HTTP check will call it."""

import hashlib

import pytest

from harness.peers.certs import self_signed
from harness.peers.rawhttp import RawHTTPServer, http_response
from kachecks.deadline import Deadline
from kachecks.errors import DeadlineExceeded, ProbeFailure
from kachecks.http.fetch import Response, fetch, keepalived_message
from kachecks.net.tls import TLSOptions

BODY = b"hello from Server 1\n"


def test_fetch_returns_an_immutable_result_with_everything_the_check_needs():
    reply = http_response(BODY, headers={"X-Weight": "50%"})
    with RawHTTPServer(reply) as server:
        result = fetch("127.0.0.1", server.port, "/service.txt", Deadline(5),
                       algorithms=("md5", "sha1"), extra_headers=["Authorization: Basic YTpi"],
                       body_prefix=5)
    assert isinstance(result, Response)
    assert (result.status, result.reason, result.header("x-weight")) == (200, "OK", "50%")
    assert result.digests == {"md5": "5f2b4547f41470dc3e293e7267461575",
                              "sha1": hashlib.sha1(BODY).hexdigest()}
    assert (result.body_length, result.content_length, result.body_prefix) == (20, 20, b"hello")
    assert result.address == f"127.0.0.1:{server.port}" and result.cert_days_left is None
    assert set(result.timings) == {"connect", "send", "wait", "read", "total"}
    assert server.requests[0].endswith(b"Host: 127.0.0.1:%d\r\nAuthorization: Basic YTpi\r\n\r\n"
                                       % server.port)
    with pytest.raises(AttributeError):
        result.status = 500


def test_source_address_and_fwmark_are_applied():
    with RawHTTPServer(http_response(BODY)) as server:
        result = fetch("127.0.0.1", server.port, "/", Deadline(5), bind="127.0.0.2", fwmark=7)
    assert result.digests["md5"] == "5f2b4547f41470dc3e293e7267461575"


def test_bind_address_of_the_wrong_family_is_a_clear_failure():
    with pytest.raises(ProbeFailure, match="not an IPv4 literal"):
        fetch("127.0.0.1", 9, "/", Deadline(5), bind="::1")


def test_never_closing_server_raises_deadline_in_read_phase():
    with RawHTTPServer(http_response(BODY), close=False) as server:
        with pytest.raises(DeadlineExceeded) as caught:
            fetch("127.0.0.1", server.port, "/", Deadline(0.5))
    assert caught.value.phase == "read"
    assert keepalived_message(caught.value) == "Timeout HTTP read"


def test_refused_maps_to_keepalived_connection_failed(unused_port):
    with pytest.raises(ProbeFailure) as caught:
        fetch("127.0.0.1", unused_port, "/", Deadline(2))
    assert (caught.value.phase, str(caught.value)) == ("connect", "connection refused")
    assert keepalived_message(caught.value) == "Connection failed"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A server certificate and a client certificate, each self-signed."""
    base = tmp_path_factory.mktemp("pki")
    return {"server": self_signed(base, "www.mysite.mydmn.org", days=30),
            "client": self_signed(base, "lvs1.mysite.mydmn.org", days=30)}


def test_tls_default_does_not_verify_and_reports_expiry(pki):
    with RawHTTPServer(http_response(BODY), tls=pki["server"]) as server:
        result = fetch("127.0.0.1", server.port, "/", Deadline(5), tls=TLSOptions())
    assert result.digests["md5"] == "5f2b4547f41470dc3e293e7267461575"
    assert 29 < result.cert_days_left <= 30
    assert "tls" in result.timings and server.sni == [None]


def test_tls_verification_against_a_ca_file_checks_the_sni_name(pki):
    cert, _key = pki["server"]
    with RawHTTPServer(http_response(BODY), tls=pki["server"]) as server:
        good = fetch("127.0.0.1", server.port, "/", Deadline(5),
                     tls=TLSOptions(ca_file=str(cert), sni="www.mysite.mydmn.org"))
        with pytest.raises(ProbeFailure, match="certificate verification failed") as caught:
            fetch("127.0.0.1", server.port, "/", Deadline(5),
                  tls=TLSOptions(ca_file=str(cert), sni="other.mydmn.org"))
    assert good.status == 200
    assert caught.value.phase == "tls"
    assert server.sni[:2] == ["www.mysite.mydmn.org", "other.mydmn.org"]


def test_tls_system_store_rejects_a_self_signed_server(pki):
    with RawHTTPServer(http_response(BODY), tls=pki["server"]) as server:
        with pytest.raises(ProbeFailure, match="certificate verification failed"):
            fetch("127.0.0.1", server.port, "/", Deadline(5), tls=TLSOptions(verify=True))


def test_tls_client_certificate_is_presented(pki):
    client_cert, client_key = pki["client"]
    with RawHTTPServer(http_response(BODY), tls=pki["server"], client_ca=client_cert) as server:
        fetch("127.0.0.1", server.port, "/", Deadline(5),
              tls=TLSOptions(cert_file=str(client_cert), key_file=str(client_key)))
    subject = dict(pair[0] for pair in server.client_certs[0]["subject"])
    assert subject["commonName"] == "lvs1.mysite.mydmn.org"
