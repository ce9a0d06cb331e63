"""TLS for kachecks-http and kachecks-tcp: each bad certificate under each verification setting."""

import pytest

from harness.checks import MD5_SERVER1, SERVER1, VHOST, http, one_line, tcp
from harness.peers.rawhttp import RawHTTPServer, http_response

NO_VERIFY = []
SYSTEM = ["--tls-verify"]
CA = ["--ca-file", "{ca}"]
CA_NAME = ["--ca-file", "{ca}", "--sni-name", VHOST]

# (certificate, verification, exit code, text in the status line)
MATRIX = [
    ("good", NO_VERIFY, 0, "HTTP OK"),
    ("good", SYSTEM, 1, "certificate verification failed"),
    ("good", CA, 0, "HTTP OK"),
    ("good", CA_NAME, 0, "HTTP OK"),
    ("expired", NO_VERIFY, 0, "HTTP OK"),
    ("expired", SYSTEM, 1, "certificate verification failed"),
    ("expired", CA, 1, "certificate has expired"),
    ("expired", CA_NAME, 1, "certificate has expired"),
    ("wrong_name", NO_VERIFY, 0, "HTTP OK"),
    ("wrong_name", SYSTEM, 1, "certificate verification failed"),
    ("wrong_name", CA, 0, "HTTP OK"),  # no SNI name given: chain only, like keepalived's default
    ("wrong_name", CA_NAME, 1, "Hostname mismatch"),
    ("self_signed", NO_VERIFY, 0, "HTTP OK"),
    ("self_signed", SYSTEM, 1, "self-signed certificate"),
    ("self_signed", CA, 1, "self-signed certificate"),
    ("self_signed", CA_NAME, 1, "self-signed certificate"),
]


def fill(args, pki):
    return [a.format(ca=pki["ca"]) for a in args]


@pytest.mark.parametrize("cert, verify, code, text", MATRIX,
                         ids=[f"{c}-{'+'.join(v) or 'noverify'}-{x}" for c, v, x, _ in MATRIX])
def test_http_certificate_matrix(pki, cert, verify, code, text):
    with RawHTTPServer(http_response(SERVER1), tls=pki[cert]) as srv:
        proc = http("--url", f"https://{srv.address}/service.txt", "--digest", MD5_SERVER1,
                    *fill(verify, pki))
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert text in one_line(proc)


@pytest.mark.parametrize("cert, verify, code", [
    ("good", CA_NAME, 0), ("expired", NO_VERIFY, 0), ("expired", CA, 1),
    ("wrong_name", CA_NAME, 1), ("self_signed", SYSTEM, 1), ("self_signed", NO_VERIFY, 0),
])
def test_tcp_tls_handshake_follows_the_same_verification(pki, cert, verify, code):
    with RawHTTPServer(b"", tls=pki[cert], read_request=False) as srv:
        proc = tcp(f"127.0.0.1:{srv.port}", "--tls", *fill(verify, pki))
    assert proc.returncode == code, proc.stdout
    if code == 0:
        assert "TLSv1.3" in proc.stdout


def test_no_sni_by_default_vhost_with_sni_flag_or_explicit_name(pki):
    with RawHTTPServer(http_response(b"ok"), tls=pki["good"]) as srv:
        base = ("-s", "127.0.0.1", "-p", srv.port, "-u", "/", "-S")
        assert http(*base).returncode == 0
        assert http(*base, "--virtualhost", VHOST, "--sni").returncode == 0
        assert http(*base, "--sni-name", "sni.mysite.mydmn.org").returncode == 0
        assert tcp("--host", "127.0.0.1", "--port", srv.port, "--tls",
                   "--sni-name", "tcp.mysite.mydmn.org").returncode == 0
    assert srv.sni == [None, VHOST, "sni.mysite.mydmn.org", "tcp.mysite.mydmn.org"]
    assert f"Host: {VHOST}\r\n".encode() in srv.requests[1]


def test_client_certificate_required_server(pki):
    with RawHTTPServer(http_response(b"ok"), tls=pki["good"], client_ca=pki["ca"]) as srv:
        target = f"https://{srv.address}/"
        without = http("--url", target)
        with_cert = http("--url", target, "--client-cert", pki["client"][0],
                         "--client-key", pki["client"][1])
        intruder = http("--url", target, "--client-cert", pki["untrusted_client"][0],
                        "--client-key", pki["untrusted_client"][1])
    assert without.returncode == 1 and "HTTP FAIL" in without.stdout
    assert with_cert.returncode == 0, with_cert.stdout
    assert intruder.returncode == 1


def test_expiring_certificate_warns_but_passes_unless_nagios(pki, syslog_socket):
    with RawHTTPServer(http_response(b"ok"), tls=pki["soon"]) as srv:
        target = f"https://{srv.address}/"
        quiet = http("--url", target, "--cert-min-days", "2")
        warned = http("--url", target, "--cert-min-days", "14")
        dynamic = http("--url", target, "--cert-min-days", "14", "--dynamic", "--weight", "5")
        nagios = http("--url", target, "--cert-min-days", "14", "--nagios")
    assert quiet.returncode == 0 and "expires" not in quiet.stdout
    assert warned.returncode == 0
    assert "certificate expires in 2 days (< 14)" in warned.stdout
    assert dynamic.returncode == 7
    assert nagios.returncode == 1 and nagios.stdout.startswith("HTTP WARNING: ")
    logged = syslog_socket()
    assert any("WARNING: certificate expires in 2 days" in line for line in logged), logged


def test_expired_certificate_without_verification_warns(pki):
    with RawHTTPServer(http_response(b"ok"), tls=pki["expired"]) as srv:
        proc = http("--url", f"https://{srv.address}/", "--cert-min-days", "7")
    assert proc.returncode == 0 and "certificate expired 30 days ago" in proc.stdout


def test_tls_to_a_plain_http_port_fails_within_the_deadline():
    with RawHTTPServer(http_response(b"ok"), read_request=False) as srv:
        proc = http("--url", f"https://{srv.address}/", "--timeout", "2")
    assert proc.returncode == 1 and "TLS handshake failed" in proc.stdout


def test_bad_tls_files_are_usage_errors(tmp_path, pki):
    proc = http("--url", "https://127.0.0.1:9/", "--ca-file", tmp_path / "missing.pem")
    assert proc.returncode == 1 and proc.stdout == "" and len(proc.stderr.splitlines()) == 1
    proc = http("--url", "http://127.0.0.1:9/", "--ca-file", pki["ca"])
    assert proc.returncode == 1 and "TLS options need an https:// URL or -S" in proc.stderr
    proc = http("--url", "http://127.0.0.1:9/", "--client-key", pki["ca"])
    assert proc.returncode == 1 and "TLS options need an https:// URL or -S" in proc.stderr
