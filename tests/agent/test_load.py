"""1,000 checks for 60 seconds: every check on schedule, no descriptor or memory growth.

Bounded (one minute, one loopback responder that costs the server next to nothing),
so it runs in CI like any other test; the figures it prints (lateness p50/p99 from
the agent's own histogram, RSS, descriptors, threads) are the ones docs/agent.md
quotes.
"""

import os
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.checks import SERVER1
from harness.peers.agent import http_check
from harness.peers.ports import free_port
from harness.peers.rawhttp import http_response
from harness.peers.responder import Responder

pytestmark = pytest.mark.slow

CHECKS = 1000
INTERVAL = 5.0
WARM_UP = 15.0  # first runs spread over one interval, then a few rounds to settle
DURATION = 60.0


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return {"rss_kib": int(fields["VmRSS"].split()[0]), "threads": int(fields["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def lateness(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "kachecks_agent_run_lateness_seconds":
            buckets = [(float(s.labels["le"]), s.value) for s in family.samples
                       if s.name.endswith("_bucket")]
            return sorted(buckets)
    raise AssertionError("no lateness histogram")


def quantile(buckets, q):
    total = buckets[-1][1]
    return next(bound for bound, count in buckets if count >= q * total)


def test_a_thousand_checks_stay_on_schedule_with_flat_memory_and_descriptors(agent_factory):
    port = free_port()
    with Responder(http_response(SERVER1)) as web:
        agent = agent_factory([http_check(f"web{i}", web) for i in range(CHECKS)],
                              metrics=f"127.0.0.1:{port}", interval=INTERVAL, timeout=2)
        with agent:
            started = time.monotonic()
            time.sleep(WARM_UP)
            first = agent.status()
            before = proc_status(agent.pid)
            samples = [before]
            while time.monotonic() - started < DURATION:
                time.sleep(5)
                samples.append(proc_status(agent.pid))
            last = agent.status()
            after = proc_status(agent.pid)
            buckets = lateness(port)
            window = last["written"] - first["written"]
    runs = {c["name"]: c["runs"] for c in first["checks"]}
    behind = [c["name"] for c in last["checks"]
              if c["runs"] - runs[c["name"]] < window / INTERVAL - 1.5]
    up = sum(1 for c in last["checks"] if c["up"])
    p50, p99 = quantile(buckets, 0.5), quantile(buckets, 0.99)
    print(f"\n{CHECKS} checks every {INTERVAL:g} s for {DURATION:g} s: {buckets[-1][1]:.0f} runs,"
          f" lateness p50 <= {p50 * 1000:g} ms, p99 <= {p99 * 1000:g} ms;"
          f" RSS {before['rss_kib'] / 1024:.1f} -> {after['rss_kib'] / 1024:.1f} MiB,"
          f" fds {before['fds']} -> {after['fds']}, threads {before['threads']} ->"
          f" {after['threads']}; served {web.served}")
    assert up == CHECKS
    assert behind == [], f"{len(behind)} checks ran less often than every {INTERVAL:g} s"
    assert p99 <= 0.25, buckets
    assert max(s["fds"] for s in samples) - before["fds"] <= 8, samples
    assert after["rss_kib"] - before["rss_kib"] < 4 * 1024, samples
    assert after["rss_kib"] < 100 * 1024
