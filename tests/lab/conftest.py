"""Namespaces left by killed runs of these tests (prefixes kclabt<pid>, kclabe<pid>) go first."""

import pytest

from harness.peers.netns import cleanup_stale


@pytest.fixture(scope="session", autouse=True)
def no_stale_lab_namespaces():
    cleanup_stale("kclabt")
    cleanup_stale("kclabe")
