"""Fixtures for the check executables: runners, a PKI, the reference pages."""

import os

import pytest

from harness.peers import certs, cli

SERVER1 = b"hello from Server 1\n"
SERVER2 = b"Hello from Server2\n"
MD5_SERVER1 = "5f2b4547f41470dc3e293e7267461575"
MD5_SERVER2 = "fe020663a9ac3e61b71f6921d423251d"
VHOST = "www.mysite.mydmn.org"


def http(*args, **kw):
    """Run kachecks-http as keepalived would: a fresh process."""
    return cli.run("kachecks-http", *args, **kw)


def tcp(*args, **kw):
    return cli.run("kachecks-tcp", *args, **kw)


def one_line(proc):
    """The status line, asserting it is the only stdout line."""
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout + proc.stderr
    return lines[0]


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


@pytest.fixture
def password_file(tmp_path):
    def make(secret="s3cret", mode=0o600):
        path = tmp_path / f"pw-{mode:o}"
        path.write_text(secret + "\n")
        os.chmod(path, mode)
        return path

    return make
