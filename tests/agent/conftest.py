"""Fixtures of the agent tests (the agent driver is harness.peers.agent)."""

import pytest

from harness.peers.agent import AgentProcess


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
