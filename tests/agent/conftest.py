"""Fixtures of the agent tests (the agent driver is harness.peers.agent)."""

import pytest

from harness.checks import SERVER1
from harness.peers.agent import AgentProcess
from harness.peers.rawhttp import RawHTTPServer, http_response


@pytest.fixture
def web():
    """web1's page on a loopback server (``server.response`` changes what it serves)."""
    with RawHTTPServer(http_response(SERVER1)) as server:
        yield server


@pytest.fixture
def agent_factory(tmp_path):
    made = []

    def make(checks, **kw):
        workdir = tmp_path / f"agent{len(made)}"
        workdir.mkdir()
        agent = AgentProcess(workdir, checks, **kw)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.__exit__()
