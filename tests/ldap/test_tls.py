"""StartTLS and LDAPS against slapd with a CA the tests made
(docs/reference.md, "Options every check shares": TLS)."""

import pytest

from harness.checks import BASE, REFERENCE, ldap_check
from harness.peers import slapd as ldap_peer
from harness.peers.certs import pki


def uri_for(slapd, mode):
    return [slapd.ldaps_url] if mode == "ldaps" else [slapd.url, "--starttls"]


@pytest.mark.parametrize("mode", ["starttls", "ldaps"])
def test_reference_check_over_tls_verified_against_the_test_ca(slapd, mode):
    done = ldap_check("--uri", *uri_for(slapd, mode), "--ca-file", slapd.ca_file, *REFERENCE)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("mode", ["starttls", "ldaps"])
def test_unverified_tls_is_the_default_like_keepalived(slapd, mode):
    assert ldap_check("--uri", *uri_for(slapd, mode), *REFERENCE).returncode == 0


@pytest.mark.parametrize("mode", ["starttls", "ldaps"])
def test_tls_verify_against_the_system_store_rejects_the_test_ca(slapd, mode):
    done = ldap_check("--uri", *uri_for(slapd, mode), "--tls-verify", *REFERENCE)
    assert done.returncode == 1
    assert done.stdout.startswith("LDAP FAIL - certificate verification failed:")


def test_a_different_ca_is_not_trusted(slapd, tmp_path):
    other = pki(tmp_path / "other")
    done = ldap_check("--uri", slapd.ldaps_url, "--ca-file", other["ca"], *REFERENCE)
    assert done.returncode == 1
    assert "certificate verification failed" in done.stdout


def test_sni_name_is_the_name_verified(slapd):
    args = ["--uri", slapd.ldaps_url, "--ca-file", slapd.ca_file, "--base", BASE, "--scope", "base"]
    assert ldap_check(*args, "--sni-name", "localhost").returncode == 0
    done = ldap_check(*args, "--sni-name", "ldap.example.org")
    assert done.returncode == 1
    assert "certificate verification failed: Hostname mismatch" in done.stdout


def test_bind_password_travels_inside_starttls(slapd, password_file):
    done = ldap_check("--uri", slapd.url, "--starttls", "--ca-file", slapd.ca_file,
                      "--bind-dn", ldap_peer.BIND_DN, "--password-file", password_file(ldap_peer.BIND_PASSWORD),
                      "--base", ldap_peer.PRIVATE_BASE, "--filter", "(cn=secret)")
    assert done.returncode == 0, done.stdout


@pytest.fixture(scope="module")
def demanding_slapd(certs):
    """slapd that refuses TLS clients without a certificate from the test CA."""
    with ldap_peer.Slapd(certs=certs, verify_client="demand") as server:
        yield server


@pytest.mark.parametrize("mode", ["starttls", "ldaps"])
def test_client_certificate_is_presented(demanding_slapd, certs, mode):
    args = ["--uri", *uri_for(demanding_slapd, mode), "--ca-file", certs["ca"], *REFERENCE]
    refused = ldap_check(*args)
    assert refused.returncode == 1
    assert refused.stdout.startswith("LDAP FAIL - ")
    done = ldap_check(*args, "--client-cert", certs["client_cert"],
                      "--client-key", certs["client_key"])
    assert done.returncode == 0, done.stdout


def test_cert_min_days_warns_without_failing(slapd):
    done = ldap_check("--uri", slapd.ldaps_url, "--ca-file", slapd.ca_file, *REFERENCE,
                      "--cert-min-days", "60")
    assert done.returncode == 0
    assert "; certificate expires in 29 days (< 60)" in done.stdout


def test_cert_min_days_fails_as_warning_under_nagios(slapd):
    done = ldap_check("--uri", slapd.ldaps_url, "--ca-file", slapd.ca_file, *REFERENCE,
                      "--cert-min-days", "60", "--nagios")
    assert done.returncode == 1
    assert done.stdout.startswith("LDAP WARNING: ")


def test_cert_min_days_works_without_verification_too(slapd):
    done = ldap_check("--uri", slapd.url, "--starttls", *REFERENCE, "--cert-min-days", "60")
    assert done.returncode == 0
    assert "; certificate expires in 29 days (< 60)" in done.stdout
    quiet = ldap_check("--uri", slapd.url, "--starttls", *REFERENCE, "--cert-min-days", "7")
    assert "certificate" not in quiet.stdout
