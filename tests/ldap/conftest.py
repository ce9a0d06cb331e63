"""Real slapd servers and helpers for the kachecks-ldap tests.

``slapd`` is shared by the whole session and must not be changed by a test;
tests that modify data or hurt the server take ``own_slapd``.
"""

import os
import socket
import threading

import pytest

from harness.peers import slapd as ldap_peer
from harness.peers.certs import pki


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
def password_file(tmp_path):
    """Writes a password file with the given text and mode; returns its path."""

    def make(text=ldap_peer.BIND_PASSWORD, mode=0o600, name="ldap.pw"):
        path = tmp_path / name
        path.write_text(text + "\n")
        os.chmod(path, mode)
        return path

    return make


@pytest.fixture
def silent_listener():
    """A TCP port whose backlog accepts connections and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"ldap://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def dropping_listener():
    """A port that drops SYNs: its one-slot accept queue is already full."""
    with socket.socket() as sock, socket.socket() as filler:
        sock.bind(("127.0.0.1", 0))
        sock.listen(0)
        filler.connect(sock.getsockname())
        yield f"ldap://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def dripping_server():
    """Answers any request with a search result, one byte every 0.2 s, for at most 10 s."""
    done = threading.Event()
    sock = socket.create_server(("127.0.0.1", 0))
    # LDAPMessage(id 1, SearchResultDone(success, "", "")): a reply a client would accept.
    answer = bytes.fromhex("300c020101650702010004000400")

    def serve():
        sock.settimeout(10)
        try:
            peer, _ = sock.accept()
        except OSError:
            return
        with peer:
            peer.recv(4096)
            for byte in answer:
                if done.wait(0.2):
                    return
                try:
                    peer.sendall(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"ldap://127.0.0.1:{sock.getsockname()[1]}"
    done.set()
    sock.close()
    thread.join(timeout=5)
