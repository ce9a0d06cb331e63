"""``kachecks agent`` as a director runs it: a separate process, its config, files and status.

    with AgentProcess(workdir, [http_check("web1", server)], interval=1, timeout=0.5) as agent:
        agent.wait_value("web1", "1\n")
        agent.status()["checks"][0]["state"]      # what `kachecks agent status` reads

For the tests and the bench (agent CPU per check).
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from harness import signalled
from harness.checks import MD5_SERVER1
from harness.config import toml_text
from harness.peers import cli

STATUS_FILE = ".kachecks-agent.json"  # beside the track files
ALIVE_FILE = ".kachecks-agent.running"  # beside them: 1 while the agent runs, 0 once stopped


def agent_toml(checks, track_dir, metrics="", tables=None, **agent):
    """kachecks.toml text: ``checks`` is a list of dicts (name, command, …); ``tables`` more
    tables (``{"vrrp": {…}, "smtp": {…}}``)."""
    return toml_text({"agent": {"track_dir": str(track_dir), "metrics": metrics, **agent},
                      "check": list(checks), **(tables or {})})


def run_agent_cli(*args, **kw):
    return cli.run("kachecks", "agent", *args, **kw)


HEADING = "# ---- "
NAMESPACED = "unless keepalived runs in a network namespace of its own"


def conf_parts(text, namespaced=False):
    """`kachecks agent conf`'s output as an administrator pastes it, each part where its
    heading says: {"top": …, "instance": …, "virtual_server": …} (the instance part goes
    inside a vrrp_instance, the last inside a virtual_server). ``namespaced``: keepalived
    runs in a network namespace of its own, so the parts that say "unless …" are left out."""
    parts = {"top": [], "instance": [], "virtual_server": []}
    where = None
    for line in text.splitlines():
        if line.startswith(HEADING):
            if namespaced and NAMESPACED in line:
                where = None
            elif "virtual_server" in line:
                where = "virtual_server"
            elif line.startswith(f"{HEADING}inside each vrrp_instance"):
                where = "instance"
            else:
                where = "top"
            continue
        if where is not None:
            parts[where].append(line + "\n")
    return {name: "".join(lines) for name, lines in parts.items()}


class AgentProcess:
    """``kachecks agent --config FILE`` in the background; files and status at hand."""

    def __init__(self, workdir, checks, metrics="", env=None, preamble=None, launch=None,
                 command=None, tables=None, **agent):
        self.dir = Path(workdir)
        self.track = self.dir / "track"
        self.config = self.dir / "kachecks.toml"
        self.config.write_text(agent_toml(checks, self.track, metrics, tables, **agent))
        self.log = self.dir / "agent.log"
        self.env = env
        self.preamble = preamble  # Python run before kachecks' main() in the agent's process
        self.launch = launch or (lambda argv: argv)  # e.g. a Namespace's argv: run it there
        self.command = list(command or cli.command("kachecks"))  # how to run `kachecks`
        self.proc = None

    def argv(self):
        tail = ["agent", "--config", str(self.config)]
        if self.preamble is None:
            return self.launch([*self.command, *tail])
        code = f"{self.preamble}\nimport sys\nfrom kachecks.cli import main\nsys.exit(main())"
        return self.launch([sys.executable, "-c", code, *tail])

    def start(self):
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"agent already running (pid {self.proc.pid})")
        env = dict(os.environ, **(self.env or {}))
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def rewrite(self, checks, metrics="", tables=None, **agent):
        self.config.write_text(agent_toml(checks, self.track, metrics, tables, **agent))

    def value(self, name):
        """The track file's text, or None while it does not exist."""
        try:
            return (self.track / name).read_text()
        except FileNotFoundError:
            return None

    def wait_value(self, name, text, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.value(name) == text:
                return time.monotonic()
            self.assert_running()
            time.sleep(0.01)
        raise AssertionError(f"{name}: wanted {text!r}, have {self.value(name)!r}\n{self.output()}")

    def status(self):
        return json.loads((self.track / STATUS_FILE).read_text())

    def wait_status(self, predicate, timeout=10.0, what="status"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                document = self.status()
                if predicate(document):
                    return document
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}\n{self.output()}")

    def check(self, name):
        for entry in self.status()["checks"]:
            if entry["name"] == name:
                return entry
        raise KeyError(name)

    def assert_running(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"agent exited {self.proc.returncode}\n{self.output()}")

    def send(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        try:
            return signalled.stop(self.proc, sig, timeout, what="kachecks agent").returncode
        except signalled.Lingered as exc:
            raise signalled.Lingered(f"{exc}\n{self.output()}") from None

    def output(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            signalled.stop(self.proc, signal.SIGKILL, 5, what="kachecks agent")


def http_check(name, server, digest=MD5_SERVER1, extra="", **keys):
    """A [[check]] of web1's page on ``server`` (anything with an ``address``)."""
    command = f"kachecks-http --url http://{server.address}/service.txt --digest {digest} {extra}"
    return {"name": name, "command": command.strip(), **keys}


class FilePoller:
    """Reads track files every millisecond in a thread, as keepalived could, and keeps
    every read that did not hold ``expected``: (seconds since start, name, text)."""

    def __init__(self, paths, expected="1\n"):
        self.paths = [Path(path) for path in paths]
        self.expected = expected
        self.reads = 0
        self.unexpected = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        start = time.monotonic()
        while not self.done.is_set():
            for path in self.paths:
                try:
                    text = path.read_text()
                except OSError as exc:
                    text = repr(exc)
                if text != self.expected:
                    self.unexpected.append((round(time.monotonic() - start, 3), path.name, text))
                self.reads += 1
            time.sleep(0.001)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(5)
