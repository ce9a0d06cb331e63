"""Real slapd servers and helpers for the kachecks-ldap tests.

``slapd`` is shared by the whole session and must not be changed by a test;
tests that modify data or hurt the server take ``own_slapd``.
"""

import time

import pytest

from harness.peers import slapd as ldap_peer
from harness.peers.certs import pki
from harness.peers.rawhttp import DroppingListener, RawHTTPServer


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    return pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def slapd(certs):
    with ldap_peer.Slapd(certs=certs) as server:
        yield server


@pytest.fixture
def own_slapd(certs):
    with ldap_peer.Slapd(certs=certs) as server:
        yield server




@pytest.fixture
def silent_listener():
    """A TCP port that accepts connections and never says a word."""
    with RawHTTPServer(hang=True) as server:
        yield f"ldap://{server.address}"


@pytest.fixture
def dropping_listener():
    """A port that drops SYNs: its accept queue is already full."""
    with DroppingListener() as listener:
        yield f"ldap://127.0.0.1:{listener.port}"


@pytest.fixture
def dripping_server():
    """Answers any request with a search result, one byte every 0.2 s."""
    # LDAPMessage(id 1, SearchResultDone(success, "", "")): a reply a client would accept.
    answer = bytes.fromhex("300c020101650702010004000400")
    with RawHTTPServer(answer, drip=0.2, read_request="once") as server:
        yield f"ldap://{server.address}"


# --- replication (kachecks-ldap --provider) -------------------------------------

@pytest.fixture(scope="module")
def replicas(certs):
    """A provider (server ID 1), its refreshOnly consumer and a server that is no replica,
    all loaded with a tree written a day ago (a quiet day, then the tests' writes)."""
    with ldap_peer.Replication(providers=1, certs=certs, plain=True,
                               written=time.time() - 86400) as repl:
        yield repl


@pytest.fixture(scope="module")
def two_providers(certs):
    """Two multi-provider servers (server IDs 1 and 2) and a consumer of the first."""
    with ldap_peer.Replication(providers=2, certs=certs) as repl:
        yield repl


def _running_in_sync(repl):
    if not repl.in_sync():
        repl.catch_up()
    yield repl
    for provider in repl.providers:
        provider.resume()


@pytest.fixture
def replication(replicas):
    """``replicas`` with every provider running and the consumer in sync with it."""
    yield from _running_in_sync(replicas)


@pytest.fixture
def multi_provider(two_providers):
    """``two_providers`` running, the consumer in sync with both."""
    yield from _running_in_sync(two_providers)
