"""`kachecks-ldap` runs the reference deployment's search against a real slapd."""

import pytest

from harness.peers.cli import run
from harness.peers.slapd import BASE, ORGANIZATION, Slapd


@pytest.fixture(scope="module")
def ldap():
    with Slapd() as server:
        yield server


def search(ldap, expect):
    return run("kachecks-ldap", "--uri", ldap.url, "--base", BASE, "--filter", "(dc=mysite)",
               "--expect", expect, "--quiet")


def test_ldap_check_passes_when_the_entry_has_the_value(installed, ldap):
    done = search(ldap, f"o={ORGANIZATION}")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ldap_check_fails_when_the_value_differs(installed, ldap):
    done = search(ldap, "o=other.mydmn.org")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
