"""Fixtures for the check executables: a PKI, password files."""


import pytest

from harness.checks import VHOST
from harness.peers import certs


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """CA-issued good / expired / wrong-name server certs, a self-signed one, a client cert."""
    d = tmp_path_factory.mktemp("pki")
    ca = certs.ca(d)
    other_ca = certs.ca(d / "other", "untrusted CA")
    return {
        "ca": ca[0],
        "good": certs.signed(d, ca, VHOST, stem="good"),
        "soon": certs.signed(d, ca, VHOST, stem="soon", end="+3d"),
        "expired": certs.signed(d, ca, VHOST, stem="expired", start="-60d", end="-30d"),
        "wrong_name": certs.signed(d, ca, "other.example.org", stem="wrong"),
        "self_signed": certs.self_signed(d / "self", VHOST, alt_names=("127.0.0.1",)),
        "client": certs.signed(d, ca, "lvs1", alt_names=(), stem="client", client=True),
        "untrusted_client": certs.signed(d, other_ca, "intruder", alt_names=(), stem="intruder",
                                         client=True),
    }
