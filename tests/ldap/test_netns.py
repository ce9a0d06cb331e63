"""slapd inside a network namespace, the way the lab runs it (harness/peers/slapd.py prefix)."""

import subprocess
import uuid

import pytest

from harness.checks import REFERENCE
from harness.peers import cli
from harness.peers import slapd as ldap_peer

pytestmark = pytest.mark.netns


@pytest.fixture
def namespace():
    name = f"kcld-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], timeout=10)


def test_slapd_in_a_namespace_answers_there_and_only_there(namespace, certs, unused_port):
    """Not port 389: the host may run Debian's own slapd there."""
    inside = ["ip", "netns", "exec", namespace]
    with ldap_peer.Slapd(prefix=inside, port=unused_port, tls_port=unused_port + 1, certs=certs) as server:
        there = subprocess.run(inside + cli.command("kachecks-ldap") + ["--uri", server.url,
                                                                       *REFERENCE],
                               capture_output=True, text=True, timeout=30)
        assert there.returncode == 0, there.stdout + there.stderr
        here = cli.run("kachecks-ldap", "--uri", server.url, *REFERENCE)
        assert here.returncode == 1
        assert "connection refused" in here.stdout
        server.set_attribute(ldap_peer.BASE, "o", "changed.mydmn.org")  # admin helpers work across
        again = subprocess.run(inside + cli.command("kachecks-ldap") + ["--uri", server.url,
                                                                       *REFERENCE],
                               capture_output=True, text=True, timeout=30)
        assert "found o: 'changed.mydmn.org'" in again.stdout
    listed = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    assert listed.stdout.strip() == ""  # slapd is gone with the server object


def test_slapd_in_a_namespace_defaults_to_the_standard_ports():
    server = ldap_peer.Slapd(prefix=["ip", "netns", "exec", "kcld-unused"])
    assert (server.port, server.tls_port) == (389, 636)
