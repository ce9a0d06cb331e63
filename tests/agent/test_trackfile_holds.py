"""A track file the agent knows holds its value is looked at with one lstat, not read, and
anything done to it behind the agent's back (keepalived's ``init_file … overwrite``, an
edit in place, a removal, a file renamed over it) is seen at the next look."""

import os
import time

import pytest

from harness.peers.agent import http_check
from harness.wait import wait_for
from kachecks.agent import trackfile


@pytest.fixture
def reads(monkeypatch):
    """The reads (open, read, close) ``Directories.holds`` makes, counted."""
    counted = []
    read = trackfile.holds

    def counting(name, value, dir_fd=None):
        counted.append(name)
        return read(name, value, dir_fd)

    monkeypatch.setattr(trackfile, "holds", counting)
    return counted


@pytest.fixture
def directory(tmp_path):
    track = tmp_path / "track"
    with trackfile.Directories() as directories:
        directories.open(str(track), [str(track / "web1")])
        yield directories, track


def settled(path):
    """Wait until ``path``'s change time is older than the settle time: a later change
    can only give it another."""
    change = os.lstat(path).st_ctime_ns
    wait_for(lambda: time.time_ns() - change > trackfile.SETTLED_NS * 1.5, 5,
             interval=0.02, what="the file's change time to settle")


def test_a_settled_file_read_holding_its_value_is_then_trusted_by_one_lstat(directory, reads):
    directories, track = directory
    path = str(track / "web1")
    directories.write(path, 1)
    settled(path)
    assert directories.holds(path, 1)
    assert len(reads) == 1
    assert directories.holds(path, 1) and directories.holds(path, 1)
    assert len(reads) == 1  # looked at, not read
    assert not directories.holds(path, 0)  # another value: read, and it is not that
    assert len(reads) == 2


@pytest.mark.parametrize("change", ["overwritten in place", "renamed over", "removed",
                                    "removed and made again"])
def test_a_trusted_file_changed_behind_the_agents_back_is_read_again(directory, reads, change):
    directories, track = directory
    path = str(track / "web1")
    directories.write(path, 1)
    settled(path)
    assert directories.holds(path, 1) and directories.holds(path, 1)
    assert len(reads) == 1
    if change == "overwritten in place":  # same size, same inode: only the change time says
        with open(path, "r+b") as handle:
            handle.write(b"0\n")
    elif change == "renamed over":  # keepalived's init_file … overwrite
        (track / "new").write_text("0\n")
        os.rename(track / "new", path)
    elif change == "removed":
        os.unlink(path)
    else:
        os.unlink(path)
        (track / "web1").write_text("0\n")
    assert not directories.holds(path, 1)
    directories.write(path, 1)
    assert directories.holds(path, 1)


def test_a_file_changed_within_the_settle_time_of_a_read_is_never_trusted(directory, reads):
    directories, track = directory
    path = str(track / "web1")
    directories.write(path, 1)
    assert directories.holds(path, 1)  # read at once: its change time too recent to trust
    with open(path, "r+b") as handle:  # within the same clock tick, maybe: same change time
        handle.write(b"0\n")
    assert not directories.holds(path, 1)
    assert len(reads) == 2


def test_the_agent_restores_a_file_it_trusts_whatever_is_done_to_it(agent_factory, web):
    agent = agent_factory([http_check("web1", web)], interval=0.3, timeout=0.2)
    path = agent.track / "web1"
    with agent:
        agent.wait_value("web1", "1\n")
        settled(path)
        # two results since: the file was read settled, then only looked at
        runs = agent.wait_status(lambda d: d["checks"][0]["runs"] >= 1)["checks"][0]["runs"]
        agent.wait_status(lambda d: d["checks"][0]["runs"] >= runs + 2, what="two more runs")
        with open(path, "r+b") as handle:  # an edit in place: same size, same inode
            handle.write(b"0\n")
        agent.wait_value("web1", "1\n", timeout=5)
        settled(path)
        runs = agent.status()["checks"][0]["runs"]
        agent.wait_status(lambda d: d["checks"][0]["runs"] >= runs + 2, what="two more runs")
        (agent.track / "new").write_text("0\n")  # keepalived's init_file … overwrite
        os.rename(agent.track / "new", path)
        agent.wait_value("web1", "1\n", timeout=5)
        settled(path)
        runs = agent.status()["checks"][0]["runs"]
        agent.wait_status(lambda d: d["checks"][0]["runs"] >= runs + 2, what="two more runs")
        path.unlink()
        agent.wait_value("web1", "1\n", timeout=5)
