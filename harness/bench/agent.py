"""The agent rows: CPU per check run inside one `kachecks agent`, beside the forked rows.

A forked check costs a whole process per run; a check inside the agent costs what the
agent's process spends per run once it is up. For each kind of check the bench starts
an agent with many checks of that kind against the bench's own peers, lets every check
run twice (imports done, threads started), then reads the agent's CPU (user+sys of all
its threads, /proc/PID/stat) and its run count (its status file) at the start and the
end of a window. Rounds go round-robin over the kinds, a fresh agent each time, like the
forked rows. Track files live on tmpfs, as /run does on a Debian director.

The resident-set row runs 1,000 HTTP checks for two intervals and reads VmHWM.
"""

import contextlib
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request

from harness.bench.servers import SMALL_BODY
from harness.checks import REFERENCE
from harness.peers.agent import AgentProcess
from harness.peers.ports import free_port
from harness.peers.rawhttp import http_response
from harness.peers.responder import Responder

TICK = os.sysconf("SC_CLK_TCK")
TMPFS = "/dev/shm"
RSS_CHECKS = 1000
RSS_INTERVAL = 5.0
RSS_LIMIT_MIB = 100
PAGE_ROUNDS = 10  # GETs of each of the status page's paths
PAGE_PAUSE = 1.1  # seconds before each: longer than the page is kept (kachecks.agent.page)
PAGE_LIMIT_MS = 50  # serving / with 1,000 checks


class AgentRow:
    """One kind of check run by the agent, compared with a forked C peer."""

    def __init__(self, label, commands, count, interval, c_peer, forked_peer, target=None,
                 skip=None):
        self.label = label
        self.agent = None  # (argv of `kachecks`, environment): another tree's, or the run's
        self.baseline = None  # the label of its twin from the baseline tree
        self.commands = commands  # argv of one check: every check of the row runs it
        self.count = count
        self.interval = interval
        self.c_peer = c_peer  # label of the C row (forked)
        self.forked_peer = forked_peer  # label of the forked kachecks row
        self.target = target  # CPU per run at most target × the C peer's
        self.skip = skip
        self.samples = []  # ms of agent CPU per run, one per round
        self.runs = 0
        self.rss_mib = None


def peers(only):
    """Labels of the forked rows the agent rows matching ``only`` compare with."""
    rows = build_rows(None, "", "", only, addresses=False)
    return {label for row in rows for label in (row.c_peer, row.forked_peer)}


def build_rows(servers, small_url, https_url, only=(), addresses=True):
    """The agent rows against the bench's peers (``small_url`` is served by a Responder)."""
    md5 = hashlib.md5(SMALL_BODY).hexdigest()
    tcp_port = servers.tcp.getsockname()[1] if addresses else 0
    rows = [
        AgentRow("kachecks agent, HTTP --digest",
                 ["kachecks-http", "--url", small_url, "--digest", md5], 200, 0.5,
                 "check_http", "kachecks-http --digest", target=0.2),
        AgentRow("kachecks agent, TLS", ["kachecks-http", "--url", https_url], 50, 0.5,
                 "check_http --ssl", "kachecks-http TLS", target=0.5),
        AgentRow("kachecks agent, TCP", ["kachecks-tcp", "--host", "127.0.0.1", "--port",
                                         str(tcp_port)], 200, 0.5, "check_tcp", "kachecks-tcp"),
    ]
    ldap = servers.ldap if addresses else "no peers"
    skip = ldap if isinstance(ldap, str) else None
    url = None if skip else ldap.url
    ldaps = None if skip else ldap.ldaps_url
    rows += [
        AgentRow("kachecks agent, LDAP", ["kachecks-ldap", "--uri", url, *REFERENCE], 100, 0.5,
                 "check_ldap", "kachecks-ldap", target=0.5, skip=skip),
        AgentRow("kachecks agent, ldaps", ["kachecks-ldap", "--uri", ldaps, *REFERENCE], 50, 0.5,
                 "check_ldap --ssl", "kachecks-ldap ldaps", skip=skip),
    ]
    if only:
        rows = [r for r in rows if any(word in r.label for word in only)]
    return rows


def _cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _runs(agent):
    return sum(c["runs"] for c in agent.status()["checks"])


@contextlib.contextmanager
def _agent(row, command, env, checks=None, metrics=""):
    """A running agent for ``row`` in a work directory of its own, removed afterwards."""
    workdir = tempfile.mkdtemp(prefix="kachecks-bench-agent-",
                               dir=TMPFS if os.path.isdir(TMPFS) else None)
    checks = checks or [{"name": f"c{i}", "command": row.commands} for i in range(row.count)]
    try:
        with AgentProcess(workdir, checks, env=env, command=command, interval=row.interval,
                          timeout=min(2.0, row.interval * 0.8), metrics=metrics) as agent:
            yield agent
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def with_baseline(rows, command, env, rev):
    """``rows``, each followed by its twin run from the baseline tree (``command``, ``env``)
    and labelled ``LABEL @REV``: the agent before and after a change, in one run."""
    out = []
    for row in rows:
        twin = AgentRow(f"{row.label} @{rev}", row.commands, row.count, row.interval,
                        row.c_peer, row.forked_peer, skip=row.skip)
        twin.agent = (command, env)
        row.baseline = twin.label
        out += [row, twin]
    return out


def _round(row, command, env, window):
    command, env = row.agent or (command, env)
    with _agent(row, command, env) as agent:
        agent.wait_status(lambda d: all(c["runs"] >= 2 for c in d["checks"]), timeout=60,
                          what=f"{row.label}: every check run twice")
        cpu, runs = _cpu(agent.pid), _runs(agent)
        time.sleep(window)
        cpu, runs = _cpu(agent.pid) - cpu, _runs(agent) - runs
        down = [c["name"] for c in agent.status()["checks"] if not c["up"]]
        agent.stop()
    if down:
        raise RuntimeError(f"{row.label}: {len(down)} checks down, e.g. {down[0]}")
    row.runs += runs
    return cpu / runs * 1000


def measure(rows, command, env, rounds, window, progress):
    """Fill each row's samples: ``rounds`` rounds of ``window`` seconds, round-robin."""
    active = [r for r in rows if r.skip is None]
    for i in range(rounds):
        shift = i % len(active) if active else 0
        for row in active[shift:] + active[:shift]:
            try:
                row.samples.append(_round(row, command, env, window))
            except (RuntimeError, AssertionError, OSError) as exc:
                row.skip = str(exc).splitlines()[0][:160]
        active = [r for r in active if r.skip is None]
        if progress:
            print(f"\r  agent round {i + 1}/{rounds}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)


def resident_set(command, env):
    """(MiB peak resident set, checks up, status page timings or None) of an agent running
    1,000 HTTP checks, its endpoint on (``page_timings``)."""
    with Responder(http_response(SMALL_BODY)) as web:
        row = AgentRow("rss", [], RSS_CHECKS, RSS_INTERVAL, None, None)
        checks = [{"name": f"c{i}", "command": ["kachecks-http", "--url",
                                                 f"http://{web.address}/small"]}
                  for i in range(RSS_CHECKS)]
        port = free_port()
        with _agent(row, command, env, checks=checks, metrics=f"127.0.0.1:{port}") as agent:
            agent.wait_status(lambda d: all(c["runs"] >= 2 for c in d["checks"]),
                              timeout=RSS_INTERVAL * 4 + 30, what="1,000 checks run twice")
            up = sum(1 for c in agent.status()["checks"] if c["up"])
            page = page_timings(port)
            with open(f"/proc/{agent.pid}/status") as handle:
                hwm = next(int(line.split()[1]) for line in handle if line.startswith("VmHWM"))
            agent.stop()
    return hwm / 1024, up, page


def page_timings(port, rounds=PAGE_ROUNDS):
    """{path: [ms of each GET]} for the status page and /status.json of an agent, each
    GET after the page's cache expired (a render every time: the worst case), or None
    when the agent serves no page (a tree before it)."""
    timings = {}
    for path in ("/", "/status.json"):
        timings[path] = []
        for _ in range(rounds):
            time.sleep(PAGE_PAUSE)  # past the page's cache: this GET renders
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
                    body = reply.read()
            except OSError:
                return None
            if b"c999" not in body:
                return None  # not the page of 1,000 checks
            timings[path].append((time.perf_counter() - started) * 1000)
    return timings


def render(rows, by_label, rounds, window, rss):
    """Markdown lines for the agent table (``by_label``: the forked rows, measured)."""
    lines = ["", f"`kachecks agent`: CPU per check run inside one resident agent ({rounds} rounds"
             f" of {window:g} s per kind, a fresh agent each, round-robin; median with p10–p90"
             " over rounds; user+sys of all the agent's threads; track files on tmpfs):", "",
             "| check | checks × interval | runs | CPU ms per run (p10–p90) | × C peer, forked"
             " | × kachecks, forked | target |", "|---|---|---|---|---|---|---|"]
    notes = []
    for row in rows:
        if row.skip is not None or not row.samples:
            notes.append(f"- `{row.label}`: not measured: {row.skip}")
            continue
        cpu = statistics.median(row.samples)
        low, high = (min(row.samples), max(row.samples)) if len(row.samples) < 3 else \
            _deciles(row.samples)
        cells = []
        ratio_c = None
        for peer in (row.c_peer, row.forked_peer):
            forked = by_label.get(peer)
            if forked is None or not forked.samples:
                cells.append("–")
                continue
            peer_ms = statistics.median(s[0] for s in forked.samples) * 1000
            ratio = cpu / peer_ms
            ratio_c = ratio if peer == row.c_peer else ratio_c
            cells.append(f"{ratio:.2f}× `{peer}`")
        verdict = "–"
        if row.target is not None and ratio_c is not None:
            verdict = f"≤ {row.target}× `{row.c_peer}` {'met' if ratio_c <= row.target else '**missed**'}"
        lines.append(f"| `{row.label}` | {row.count} × {row.interval:g} s | {row.runs} "
                     f"| {cpu:.3f} ({low:.3f}–{high:.3f}) | {cells[0]} | {cells[1]} | {verdict} |")
    by_row = {row.label: row for row in rows}
    for row in rows:
        twin = by_row.get(row.baseline)
        if row.samples and twin is not None and twin.samples:
            ours, theirs = statistics.median(row.samples), statistics.median(twin.samples)
            notes.append(f"- `{row.label}` against `{twin.label}` (the tree before, same"
                         f" run): {ours - theirs:+.3f} ms per run"
                         f" ({(ours - theirs) / theirs * 100:+.0f} %)")
    if rss is not None:
        mib, up, page = rss
        met = "met" if mib < RSS_LIMIT_MIB and up == RSS_CHECKS else "**missed**"
        lines += ["", f"Resident set of one agent running {RSS_CHECKS:,} HTTP checks every"
                  f" {RSS_INTERVAL:g} s ({up} up): peak {mib:.1f} MiB (target < {RSS_LIMIT_MIB}"
                  f" MiB: {met})."]
        if page:
            home, data = page["/"], page["/status.json"]
            met = "met" if statistics.median(home) < PAGE_LIMIT_MS else "**missed**"
            lines += ["", f"Its status page, each GET a fresh render ({len(home)} GETs"
                      f" {PAGE_PAUSE:g} s apart, while the checks run): `/` median"
                      f" {statistics.median(home):.1f} ms (max {max(home):.1f}),"
                      f" `/status.json` median {statistics.median(data):.1f} ms (max"
                      f" {max(data):.1f}); target: `/` under {PAGE_LIMIT_MS} ms: {met}."]
    if notes:
        lines += ["", *notes]
    return lines


def _deciles(values):
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    return deciles[0], deciles[8]
