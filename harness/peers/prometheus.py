"""Debian's Prometheus as the monitoring side of a test: ``promtool`` and a real server.

    promtool("test", "rules", "kachecks-alerts.test.yml", cwd=...)   # CompletedProcess
    with Prometheus(workdir, ["127.0.0.1:9662"], rules=[path]) as prom:
        prom.wait_for_series('kachecks_check_up{check="web2"} == 0', 30)
        prom.query("kachecks_check_up")          # [(labels, value), ...]
        prom.alerts()                            # [{"labels":…, "state": "firing"}, ...]

The server is ``/usr/bin/prometheus`` (package prometheus, Debian 12 and 13) with a
configuration of its own: loopback only, its own data directory, scrape and rule
evaluation every ``interval`` (1 s), the scrape job called ``job`` ("kachecks", as the
shipped rules expect). Everything it says goes to a log file in the work directory.
"""

import json
import re
import shutil
import signal
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

from harness import signalled
from harness.peers.ports import free_port
from harness.wait import wait_for

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"


def missing():
    """Why Prometheus cannot run here (its package is not installed), or None."""
    for path in (PROMETHEUS, PROMTOOL):
        if not shutil.which(path):
            return f"{path} not found (apt-get install prometheus)"
    return None


def promtool(*args, cwd=None, timeout=60):
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def hastened(rules_text, wait="2s"):
    """Alerting rules with every ``for:`` shortened to ``wait``: the same expressions,
    labels and annotations, fired within a test's seconds (promtool's cases keep the
    shipped durations)."""
    return re.sub(r"(?m)^(\s*for:\s*)\S+\s*$", lambda m: f"{m.group(1)}{wait}", rules_text)


class PrometheusError(Exception):
    pass


class Prometheus:
    """A Prometheus server scraping ``targets`` ("host:port") at ``/metrics``."""

    def __init__(self, workdir, targets, rules=(), interval=1.0, job="kachecks"):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.dir / "prometheus.log"
        self.config = self.dir / "prometheus.yml"
        every = f"{int(interval * 1000)}ms"
        rule_files = "".join(f"  - {json.dumps(str(path))}\n" for path in rules)
        target_list = ", ".join(json.dumps(t) for t in targets)
        self.config.write_text(
            f"global:\n  scrape_interval: {every}\n  scrape_timeout: {every}\n"
            f"  evaluation_interval: {every}\n"
            + (f"rule_files:\n{rule_files}" if rule_files else "")
            + f"scrape_configs:\n  - job_name: {json.dumps(job)}\n"
            f"    static_configs:\n      - targets: [{target_list}]\n")
        self.proc = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self, timeout=60):
        problem = missing()
        if problem:
            raise PrometheusError(problem)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={self.config}",
                 f"--storage.tsdb.path={self.data}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.dir)
        try:
            wait_for(self._ready, timeout, interval=0.2, what="Prometheus ready")
        except TimeoutError:
            self.stop()
            raise PrometheusError(f"Prometheus did not start: {self.output()[-2000:]}") from None
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise PrometheusError(f"Prometheus exited {self.proc.returncode}:"
                                  f" {self.output()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            signalled.stop(self.proc, signal.SIGTERM, 20, what="prometheus", strict=False)

    def output(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def api(self, path, **params):
        """GET /api/v1/PATH?params: its ``data``, or PrometheusError."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as reply:
            answer = json.load(reply)
        if answer.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {answer}")
        return answer["data"]

    def query(self, expr):
        """An instant query: [(labels, value as float)] of the vector it returns."""
        data = self.api("query", query=expr)
        return [(sample["metric"], float(sample["value"][1])) for sample in data["result"]]

    def wait_for_series(self, expr, timeout, what=None):
        """The first non-empty answer to ``expr``."""
        return wait_for(lambda: self.query(expr), timeout, interval=0.5,
                        what=what or f"Prometheus to answer {expr}")

    def alerts(self):
        """Active alerts (pending and firing), as /api/v1/alerts gives them."""
        return self.api("alerts")["alerts"]

    def targets(self):
        return self.api("targets")["activeTargets"]
