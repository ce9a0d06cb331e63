"""Fixtures for the notifier: a real SMTP relay, a config file, a spool, cleanup.

Deliverers run detached (own session) exactly as in production; teardown
stops any that is still backing off, by the pid recorded in the spool lock.
"""

import signal
import threading
import time

import pytest

from harness import signalled
from harness.config import toml_text
from harness.peers.cli import run
from harness.peers.smtp import SmtpSink
from kachecks.notify import config as configuration
from kachecks.notify import deliver
from kachecks.notify import spool as store


class Notifier:
    """The spool dir, the config file, and the commands run against them."""

    def __init__(self, tmp_path, monkeypatch):
        self.spool = tmp_path / "spool"
        self.config = tmp_path / "kachecks.toml"
        self.monkeypatch = monkeypatch
        monkeypatch.setenv("KACHECKS_CONFIG", str(self.config))
        self.configure()

    def configure(self, relay=None, **sections):
        """Write the config: the relay's [smtp], our spool, then ``sections`` merged over."""
        # helo and from set: no socket.getfqdn() lookup of this host leaves the machine
        data = {"smtp": {"host": "127.0.0.1", "port": 9, "security": "none", "timeout": 5,
                         "helo": "lvs1.example.org"},
                "mail": {"to": ["admin@lvs.example.org"], "from": "kachecks@lvs1.example.org"},
                "spool": {"dir": str(self.spool), "batch_window": 0, "retry_for": "20s"}}
        if relay is not None:
            data["smtp"]["port"] = relay.port
            if relay.implicit_tls:
                data["smtp"]["security"] = "tls"
            elif relay.starttls:
                data["smtp"]["security"] = "starttls"
            if relay.starttls or relay.implicit_tls:
                data["smtp"]["cafile"] = str(relay.ca)
        for section, values in sections.items():
            data.setdefault(section, {}).update(values)
        self.config.write_text(toml_text(data))
        return self.config

    def notify(self, *args, **kwargs):
        return run("kachecks", "notify", *args, **kwargs)

    def kachecks(self, *args, **kwargs):
        return run("kachecks", *args, **kwargs)

    def deliver(self, clock):
        """Deliver in this process, as `kachecks spool flush` does, at the wall time
        ``clock()`` says: a test sees expiry without waiting for it. The Deliverer."""
        return deliver.run(configuration.load(str(self.config)), clock=clock)

    def queued(self, where=store.QUEUES):
        spool = store.Spool.existing(str(self.spool))
        if spool is None:
            return []
        with spool:
            return [n for sub in where for n in spool.names(sub)]

    def holder(self):
        """Pid of the deliverer holding the spool lock, or None (also when a test broke the spool)."""
        try:
            spool = store.Spool.existing(str(self.spool))
            if spool is None:
                return None
            with spool:
                return spool.lock().holder()
        except store.SpoolError:
            return None

    def busy(self):
        spool = store.Spool.existing(str(self.spool))
        if spool is None:
            return False
        with spool:
            return spool.lock().busy()

    def wait_idle(self, timeout=20.0):
        """Until no deliverer holds the spool lock."""
        end = time.monotonic() + timeout
        while self.busy():
            assert time.monotonic() < end, "a deliverer is still running"
            time.sleep(0.05)

    def wait_delivered(self, timeout=30.0):
        """Until the queues are empty and no deliverer runs."""
        end = time.monotonic() + timeout
        while self.queued():
            assert time.monotonic() < end, f"still queued: {self.queued()}"
            time.sleep(0.05)
        self.wait_idle(max(1.0, end - time.monotonic()))

    def stop_deliverer(self):
        pid = self.holder()
        if pid:
            signalled.stop_pids([pid], signal.SIGTERM, 10, what="the deliverer")
            self.wait_idle(10)


@pytest.fixture
def notifier(tmp_path, monkeypatch):
    n = Notifier(tmp_path, monkeypatch)
    yield n
    n.stop_deliverer()


@pytest.fixture
def syslog_all(syslog_socket):
    """Every syslog line, read as it comes: the socket holds only a few before dropping more."""
    lines, lock, done = [], threading.Lock(), threading.Event()

    def drain():
        with lock:
            lines.extend(syslog_socket())

    def keep_draining():
        while not done.is_set():
            drain()
            time.sleep(0.01)

    thread = threading.Thread(target=keep_draining, daemon=True)
    thread.start()

    def text():
        drain()  # what was sent so far is in the socket: read it now, not after a guess
        return "\n".join(lines)

    yield text
    done.set()
    thread.join()


@pytest.fixture
def relay():
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(scope="session")
def certdir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("smtp-cert"))
