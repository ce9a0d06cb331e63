"""Red-team attacks replayed through the executables, as keepalived runs them.

Every test here reproduces one attack from the red-team pass: a planted
file, a hostile peer, a signal at a bad moment, closed output. Each runs
the real console scripts (harness.redteam.spawn; ``KACHECKS_BIN_DIR`` points
them at /usr/bin) in a fresh process and asserts what keepalived would see:
the exit code, one line of text, no traceback, no hang past the deadline.
"""

import os

import pytest

from harness.peers.hostile import Listener, Mute
from harness.peers.rawhttp import RawHTTPServer, http_response

BODY = b"hello from Server 1\n"


@pytest.fixture
def web():
    """A healthy real server: every request gets 200 and a page saying 'Server 1'."""
    with RawHTTPServer(http_response(BODY)) as srv:
        yield srv


@pytest.fixture
def mute():
    """A peer that accepts and never answers; ``mute.connected`` once a check is in."""
    with Mute() as peer:
        yield peer


@pytest.fixture
def listener():
    """A port nobody accepts on; ``listener.connections()`` counts who connected."""
    with Listener() as listening:
        yield listening


@pytest.fixture
def fifo(tmp_path):
    """A named pipe nobody ever writes to: opening it for reading blocks forever."""
    path = tmp_path / "fifo"
    os.mkfifo(path, 0o600)
    return path
