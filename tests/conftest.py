"""Fixtures every test area shares; area-specific ones live in tests/<area>/conftest.py."""

import os
import shutil

import pytest

from harness import otheruser
from harness.peers import cli, netns
from harness.peers.ports import free_port
from harness.peers.syslog import SyslogSink
from harness.peers.worker import Worker

NAMESPACES_BEFORE = pytest.StashKey[int]()


def pytest_collection_modifyitems(items):
    for item in items:
        if "other_user" in item.fixturenames:
            item.add_marker(pytest.mark.other_user)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.stash[NAMESPACES_BEFORE] = netns.made()  # before any fixture of this test


@pytest.fixture(autouse=True)
def network_namespaces_are_marked(request):
    """A test that makes a network namespace (in a fixture too) carries the ``netns``
    marker: `scripts/test --quick` leaves those out."""
    yield
    node = request.node
    if netns.made() > node.stash[NAMESPACES_BEFORE] and not node.get_closest_marker("netns"):
        pytest.fail(f"{node.nodeid} made a network namespace: mark it @pytest.mark.netns",
                    pytrace=False)


@pytest.fixture(scope="session")
def test_config():
    """An empty kachecks.toml any user can read: what every test (and every executable it
    spawns) reads unless it names its own, never the machine's
    /etc/kachecks/kachecks.toml (an installed director's mail relay, its checks)."""
    directory = otheruser.open_tempdir("kachecks-config-")
    path = directory / "kachecks.toml"
    path.write_text("")
    path.chmod(0o444)
    yield path
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True)
def isolated_runtime(tmp_path, monkeypatch, test_config):
    """Keep state files, syslog and the configuration of every spawned executable inside
    the test."""
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("KACHECKS_STATE_DIR", str(state))
    monkeypatch.setenv("KACHECKS_SYSLOG_SOCKET", str(tmp_path / "no-syslog"))
    # An installed `kachecks worker` must not serve the tests' checks (tests/worker starts its own).
    monkeypatch.setenv("KACHECKS_WORKER_SOCKET", str(tmp_path / "no-worker.sock"))
    monkeypatch.setenv("KACHECKS_CONFIG", str(test_config))  # never the machine's


@pytest.fixture
def syslog_socket(tmp_path, monkeypatch):
    """A datagram socket standing in for /dev/log; returns a function reading messages."""
    with SyslogSink(tmp_path / "log.sock") as sink:
        monkeypatch.setenv("KACHECKS_SYSLOG_SOCKET", sink.path)
        yield sink.messages


@pytest.fixture
def unused_port():
    return free_port()


@pytest.fixture
def open_dir():
    """A directory other users can traverse (pytest's tmp_path is root-only)."""
    path = otheruser.open_tempdir("kachecks-worker-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def other_user_install():
    """kachecks installed where any user can run it (harness/otheruser.py), once a run."""
    root = otheruser.open_tempdir("kachecks-other-user-")
    yield otheruser.install(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def other_user(other_user_install, monkeypatch):
    """For a test that runs kachecks as another user (nobody, a script_user): every
    executable it starts (``cli.command``) comes from a copy that user can run, and starts
    in /, as keepalived's scripts do, wherever the checkout is (in root's 0700 home, say);
    returns the copy (``.command(name)``, ``.python``). Such tests carry the
    ``other_user`` marker."""
    monkeypatch.setenv("KACHECKS_BIN_DIR", str(other_user_install.bin_dir))
    monkeypatch.delenv("PYTHONPATH", raising=False)  # it may name the checkout
    monkeypatch.chdir("/")  # a check hands its working directory to the worker
    return other_user_install


@pytest.fixture
def worker(open_dir, monkeypatch):
    """A running `kachecks worker` that this test's checks are handed to."""
    with Worker(cli.command("kachecks"), open_dir / "worker.sock") as running:
        monkeypatch.setenv("KACHECKS_WORKER_SOCKET", str(running.socket))
        yield running


@pytest.fixture
def in_thread():
    """Runs a callable on a non-main thread (no signal handlers there, as in a resident
    process); returns (its value or the exception it raised, seconds it took)."""
    import threading
    import time

    def run(func, within=30):
        box = []

        def body():
            started = time.monotonic()
            try:
                box.append(func())
            except BaseException as exc:  # handed back to the test
                box.append(exc)
            box.append(time.monotonic() - started)

        thread = threading.Thread(target=body)
        thread.start()
        thread.join(within)
        assert not thread.is_alive(), f"still running after {within} s"
        return box[0], box[1]

    return run


@pytest.fixture
def password_file(tmp_path):
    """``make(text, mode, name)`` writes a password file (text and a newline) with
    that mode whatever the umask; returns its path."""

    def make(text="s3cret", mode=0o600, name="secret.pw"):
        path = tmp_path / name
        path.write_text(text + "\n")
        os.chmod(path, mode)
        return path

    return make
