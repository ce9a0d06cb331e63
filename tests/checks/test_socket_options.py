"""--fwmark and --bind reach the socket: proven by policy routing in a namespace."""

import os
import subprocess

import pytest

from harness.checks import one_line, tcp
from harness.peers import cli
from harness.peers.netns import create_namespace
from harness.peers.rawhttp import RawHTTPServer

MARK = 7


@pytest.fixture(scope="module")
def marked_prohibited():
    """A namespace where packets carrying fwmark MARK hit a prohibit rule, others route."""
    ns = create_namespace(f"kcck-fw-{os.getpid()}")
    try:
        ns.ip("rule", "add", "pref", "10", "fwmark", str(MARK), "prohibit")
        ns.ip("rule", "del", "pref", "0")  # local lookup after our rule, not before it
        ns.ip("rule", "add", "pref", "100", "lookup", "local")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns.name], check=False)


@pytest.mark.netns
@pytest.mark.parametrize("check, target", [
    ("kachecks-tcp", ["127.0.0.1:9"]),
    ("kachecks-http", ["--url", "http://127.0.0.1:9/service.txt"]),
])
def test_fwmark_is_set_on_the_socket(marked_prohibited, check, target):
    def run(*extra):
        return marked_prohibited.run([*cli.command(check), *target, "--timeout", "2", *extra],
                                     env=dict(os.environ))

    unmarked, other, marked = run(), run("--fwmark", str(MARK + 1)), run("--fwmark", str(MARK))
    assert unmarked.returncode == other.returncode == marked.returncode == 1
    assert one_line(unmarked).endswith("connection refused")  # routed: nobody listens on 9
    assert one_line(other).endswith("connection refused")
    assert "Permission denied" in one_line(marked)  # the prohibit rule matched the mark


def test_bind_source_address_family_and_availability():
    with RawHTTPServer(b"", read_request=False) as srv:
        assert tcp(f"127.0.0.1:{srv.port}", "--bind", "127.0.0.2").returncode == 0
        wrong_family = tcp(f"127.0.0.1:{srv.port}", "--bind", "::1")
        foreign = tcp(f"127.0.0.1:{srv.port}", "--bind", "192.0.2.1")
    assert wrong_family.returncode == 1 and "not an IPv4 literal" in wrong_family.stdout
    assert foreign.returncode == 1 and "cannot bind to 192.0.2.1" in foreign.stdout
