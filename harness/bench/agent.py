"""The agent rows: `kachecks agent` at the rates directors run, beside the forked rows.

A forked check costs a whole process per run; a check inside the agent costs what the
agent's process spends per run once it is up. Each row starts an agent with many checks
of one kind against the bench's own peers, at a director's rate (1,000 checks every
5 s: 200 runs a second; 10,000 every 10 s: 1,000 a second), waits until every check has
run twice (imports done, caches warm), then measures a window that starts and ends
with a status document the agent wrote (so the runs it counts and the CPU read beside
them are of the same instant): CPU (user+sys of all its threads, /proc/PID/stat) per
run, the runs a second it kept, how late runs started (each check's last ``lateness``,
from every document written in the window), its resident set (VmRSS, VmHWM), threads
and descriptors. Rounds go round-robin over the rows, a fresh agent each time. Track
files live on tmpfs, as /run does on a Debian director.

More rows: 200 healthy checks beside 200 against peers that accept and never
answer (how late the healthy ones run while hung runs sit out their deadline), and
the agent at rest, twice. "None due": 10,000 checks every day (the longest interval
there is), whose first runs are spread over the day, one every 8.6 s; CPU is read only
between two of them (from ``REST_AFTER`` s after one is due to ``REST_BEFORE`` s before
the next), several such windows summed, and the round is thrown away if any track
file was written inside one (so no run fell there). CPU there is per thread and
in nanoseconds (``/proc/PID/task/*/schedstat``): a few milliseconds over half a
minute is below /proc/PID/stat's ticks. "With runs": the same 10,000 checks every
hour, measured like the busy rows: first runs spread over the hour are 2.7 runs a
second, so that figure is the runs' own cost and what they cause (the status document
rewritten), given also per run.

With ``--baseline TREE`` each row is followed by its twin run from that tree (the
agent before a change, in the same run). The status page (``/`` and ``/status.json``
of an agent running 1,000 HTTP checks) is timed after the rows, each GET a fresh render.
"""

import contextlib
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from glob import glob

from harness.bench.servers import SMALL_BODY
from harness.checks import REFERENCE
from harness.peers.agent import STATUS_FILE, AgentProcess
from harness.peers.hostile import Mute
from harness.peers.ports import free_port

BEGIN = "<!-- BEGIN scripts/bench --only agent -->"  # where an agent-only run's table goes
END = "<!-- END scripts/bench --only agent -->"
TICK = os.sysconf("SC_CLK_TCK")
TMPFS = "/dev/shm"
WARM_RUNS = 2  # every check runs this often before the window
RSS_LIMIT_MIB = 100
LATENESS_P99_MS = 50
IDLE_LIMIT = 0.2  # % of one core
REST_INTERVAL = 86400.0  # the longest interval a check may have (kachecks.agent.config)
REST_AFTER = 1.5  # seconds after a first run is due before a window at rest starts
REST_BEFORE = 1.0  # seconds before the next one is due when it ends
REST_DOCUMENTS = 90.0  # seconds at most between two status documents at rest
PAGE_CHECKS = 1000
PAGE_INTERVAL = 5.0
PAGE_ROUNDS = 10  # GETs of each of the status page's paths
PAGE_PAUSE = 1.1  # seconds before each: longer than the page is kept (kachecks.agent.page)
PAGE_LIMIT_MS = 50  # serving / with 1,000 checks


class AgentRow:
    """One row: ``count`` checks running ``command`` every ``interval`` (``hung`` more
    against a peer that never answers), compared with a forked C peer and a floor."""

    def __init__(self, label, command, count, interval, timeout, c_peer=None, floor=None,
                 target=None, hung=0, idle=False, skip=None):
        self.label = label
        self.agent = None  # (argv of `kachecks`, environment): another tree's, or the run's
        self.baseline = None  # the label of its twin from the baseline tree
        self.command = command  # argv of one check: every check of the row runs it
        self.count = count
        self.interval = interval
        self.timeout = timeout
        self.c_peer = c_peer  # label of the forked C row
        self.floor = floor  # label of the floor (harness.bench.floor)
        self.target = target  # CPU per run at most target × the C peer's
        self.hung = hung
        self.idle = idle  # the agent at rest: "none due" (read between first runs) or
        # "runs" (first runs spread over the interval): % of a core, below the table
        self.skip = skip
        self.rounds = []  # Round per round

    @property
    def rate(self):
        return self.count / self.interval


class Round:
    """What one round of a row measured."""

    def __init__(self, cpu, runs, seconds, lateness, rss, hwm, threads, fds):
        self.cpu = cpu  # seconds of CPU in the window
        self.runs = runs
        self.seconds = seconds  # the window, between the two documents
        self.lateness = lateness  # seconds, one per run seen (late only: early is 0)
        self.rss, self.hwm = rss, hwm  # MiB
        self.threads, self.fds = threads, fds

    @property
    def ms_per_run(self):
        return self.cpu / self.runs * 1000 if self.runs else None

    @property
    def core_percent(self):
        return self.cpu / self.seconds * 100


def build_rows(peers, only=()):
    """The agent rows against ``peers``: a dict with ``web`` (a Responder's address),
    ``https`` (URL), ``tcp`` (port), ``ldap`` (a Slapd, or why none runs), ``mute``
    (a port that accepts and never answers)."""
    md5 = hashlib.md5(SMALL_BODY).hexdigest()
    web = peers.get("web", "127.0.0.1:1")
    http = ["kachecks-http", "--url", f"http://{web}/small", "--digest", md5]
    ldap = peers.get("ldap", "no LDAP peer")
    no_ldap = ldap if isinstance(ldap, str) else None
    tcp = ["kachecks-tcp", "--host", "127.0.0.1", "--port", str(peers.get("tcp", 1))]
    rows = [
        AgentRow("HTTP --digest", http, 1000, 5.0, 2.0, "check_http", "HTTP --digest probe",
                 target=0.1),
        AgentRow("HTTP --digest, 10,000 checks", http, 10000, 10.0, 2.0, "check_http",
                 "HTTP --digest probe"),
        AgentRow("TLS", ["kachecks-http", "--url", peers.get("https", "https://127.0.0.1:1/")],
                 1000, 5.0, 2.0, "check_http --ssl", "TLS probe", target=0.3),
        AgentRow("TCP", tcp, 1000, 5.0, 2.0, "check_tcp", "TCP probe", target=0.05),
        AgentRow("LDAP", ["kachecks-ldap", "--uri", None if no_ldap else ldap.url, *REFERENCE],
                 1000, 5.0, 2.0, "check_ldap", "LDAP probe", target=0.15, skip=no_ldap),
        AgentRow("HTTP --digest beside 200 hung peers", http, 200, 5.0, 2.0, "check_http",
                 "HTTP --digest probe", hung=200),
        AgentRow("at rest: 10,000 checks, none due", tcp, 10000, REST_INTERVAL, 2.0,
                 idle="none due"),
        AgentRow("at rest, with runs: 10,000 checks every hour", tcp, 10000, 3600.0, 2.0,
                 idle="runs"),
    ]
    if only:
        rows = [r for r in rows if any(word in f"agent, {r.label}" for word in only)]
    return rows


def peers(only):
    """Labels of the forked rows the agent rows matching ``only`` compare with."""
    return {row.c_peer for row in build_rows({}, only) if row.c_peer}


def floors(peers, rows):
    """The floors (harness.bench.floor.Floor) the ``rows`` compare with."""
    from harness.bench.floor import Floor

    md5 = hashlib.md5(SMALL_BODY).hexdigest()
    ldap = peers.get("ldap")
    no_ldap = ldap if isinstance(ldap, str) else None
    search = [] if no_ldap else [ldap.host, str(ldap.port), ldap.BASE, REFERENCE[3], "o"]
    every = [
        Floor("HTTP --digest probe", "probe", ["kachecks-http", "--url",
                                                f"http://{peers['web']}/small", "--digest", md5],
              "check_http"),
        Floor("TLS probe", "probe", ["kachecks-http", "--url", peers["https"]],
              "check_http --ssl"),
        Floor("TCP probe", "probe", ["kachecks-tcp", "--host", "127.0.0.1", "--port",
                                     str(peers["tcp"])], "check_tcp"),
        Floor("LDAP probe", "probe", ["kachecks-ldap", "--uri", None if no_ldap else ldap.url,
                                      *REFERENCE], "check_ldap", skip=no_ldap),
        Floor("ldap3 alone: connect, search, unbind (what the LDAP probe asks)", "ldap3",
              search, "check_ldap", skip=no_ldap),
        Floor("ldap3 alone: connect, bind, search, unbind (what check_ldap asks)",
              "ldap3-bind", search, "check_ldap", skip=no_ldap),
    ]
    wanted = {row.floor for row in rows}
    return [f for f in every if f.label in wanted or (f.kind != "probe" and "LDAP probe"
                                                       in wanted)]


def _proc(pid):
    """(CPU seconds, VmRSS MiB, VmHWM MiB, threads, descriptors) of a running process."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    status = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            status[key] = value.split()
    return (cpu, int(status["VmRSS"][0]) / 1024, int(status["VmHWM"][0]) / 1024,
            int(status["Threads"][0]), len(os.listdir(f"/proc/{pid}/fd")))


@contextlib.contextmanager
def _agent(row, command, env, peers, metrics=""):
    """A running agent for ``row`` in a work directory of its own on tmpfs."""
    workdir = tempfile.mkdtemp(prefix="kachecks-bench-agent-",
                               dir=TMPFS if os.path.isdir(TMPFS) else None)
    checks = [{"name": f"c{i}", "command": row.command} for i in range(row.count)]
    checks += [{"name": f"hung{i}", "command": ["kachecks-http", "--url",
                                                f"http://127.0.0.1:{peers['mute']}/small"]}
               for i in range(row.hung)]
    try:
        with AgentProcess(workdir, checks, env=env, command=command, interval=row.interval,
                          timeout=row.timeout, metrics=metrics) as agent:
            yield agent
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class Documents:
    """The agent's status documents as it writes them: ``next()`` waits for a new one."""

    def __init__(self, agent):
        self.agent = agent
        self.path = agent.track / STATUS_FILE
        self.last = None

    def next(self, timeout):
        """The next document written (and the agent's /proc figures read at once after)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                stamp = os.stat(self.path).st_mtime_ns
            except FileNotFoundError:
                stamp = None
            if stamp is not None and stamp != self.last:
                figures = _proc(self.agent.pid)
                try:
                    document = json.loads(self.path.read_bytes())
                except ValueError:  # replaced while read: the next poll has it whole
                    continue
                self.last = stamp
                return document, figures
            self.agent.assert_running()
            time.sleep(0.02)
        raise RuntimeError(f"no new status document within {timeout:g} s")


def with_baseline(rows, command, env, rev):
    """``rows``, each followed by its twin run from the baseline tree (``command``, ``env``)
    and labelled ``LABEL @REV``: the agent before and after a change, in one run."""
    out = []
    for row in rows:
        twin = AgentRow(f"{row.label} @{rev}", row.command, row.count, row.interval,
                        row.timeout, row.c_peer, row.floor, hung=row.hung, idle=row.idle,
                        skip=row.skip)
        twin.agent = (command, env)
        row.baseline = twin.label
        out += [row, twin]
    return out


def _task_cpu(pid):
    """Seconds of CPU of ``pid``'s threads alive now, to the nanosecond (schedstat)."""
    total = 0
    for task in glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(task) as handle:
                total += int(handle.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):  # a thread that just ended
            pass
    return total / 1e9


def _rest_round(row, agent, documents, window):
    """A Round of ``row`` (none due) from windows between first runs (see the module's
    docstring); RuntimeError when a track file was written in one."""
    gap = row.interval / row.count  # first runs: one every gap seconds, c0 at the start
    first = agent.track / "c0"
    end = time.monotonic() + 30
    while not first.exists():
        agent.assert_running()
        if time.monotonic() > end:
            raise RuntimeError(f"{row.label}: the first check did not run within 30 s")
        time.sleep(0.02)
    start = first.stat().st_mtime  # when the first run's result was written (wall clock)
    windows, cpu, seconds = [], 0.0, 0.0
    k = 1
    while seconds < window:
        begin, stop = start + gap * (k - 1) + REST_AFTER, start + gap * k - REST_BEFORE
        k += 1
        if time.time() > begin:
            continue
        time.sleep(begin - time.time())
        cpu0, clock0 = _task_cpu(agent.pid), time.monotonic()
        time.sleep(max(0.0, stop - time.time()))
        cpu1, clock1 = _task_cpu(agent.pid), time.monotonic()
        windows.append((begin, stop))
        cpu, seconds = cpu + cpu1 - cpu0, seconds + clock1 - clock0
    agent.assert_running()
    _, rss, hwm, threads, fds = _proc(agent.pid)
    written = []  # track files written inside a window: a run that fell there
    for i in range(row.count):
        try:
            stamp = (agent.track / f"c{i}").stat().st_mtime
        except FileNotFoundError:
            continue  # not run yet
        if any(begin <= stamp <= stop for begin, stop in windows):
            written.append(f"c{i}")
    if written:
        raise RuntimeError(f"{row.label}: {len(written)} runs inside the windows at rest,"
                           f" e.g. {written[0]}")
    return Round(cpu, 0, seconds, [], rss, hwm, threads, fds)


def _round(row, command, env, peers, window):
    command, env = row.agent or (command, env)
    with _agent(row, command, env, peers) as agent:
        documents = Documents(agent)
        period = max(1.0, (row.count + row.hung) / 1000)  # the agent's status period
        # ... at rest, routine results alone are written up to a minute late
        wait = period * 2 + 5 if not row.idle else REST_DOCUMENTS
        warm = 60 + (0 if row.idle else row.interval * (WARM_RUNS + 1))
        end = time.monotonic() + warm
        while True:  # every check run twice, or (at rest) every check listed
            document, _ = documents.next(max(1.0, end - time.monotonic()))
            checks = document["checks"]
            if row.idle and len(checks) == row.count or all(
                    c["runs"] >= WARM_RUNS for c in checks[:row.count]):
                break
            if time.monotonic() > end:
                raise RuntimeError(f"{row.label}: not every check ran {WARM_RUNS} times"
                                   f" within {warm:g} s")
        if row.idle == "none due":
            measured = _rest_round(row, agent, documents, window)
            agent.stop()
            return measured
        first, (cpu0, *_) = documents.next(wait)
        runs = {c["name"]: c["runs"] for c in first["checks"]}
        start = first["written"]
        lateness = []
        last = first
        figures = None
        while last["written"] - start < window:
            last, figures = documents.next(wait)
            for check in last["checks"][:row.count]:
                before = runs.get(check["name"], 0)
                if check["runs"] > before and check["lateness"] is not None:
                    lateness.append(max(0.0, check["lateness"]))
                runs[check["name"]] = check["runs"]
        cpu1, rss, hwm, threads, fds = figures
        down = [c["name"] for c in last["checks"][:row.count] if not c["up"] and not row.idle]
        counted = sum(c["runs"] for c in last["checks"]) - sum(c["runs"] for c in first["checks"])
        agent.stop()
    if down:
        raise RuntimeError(f"{row.label}: {len(down)} checks down, e.g. {down[0]}")
    return Round(cpu1 - cpu0, counted, last["written"] - start, lateness, rss, hwm, threads,
                 fds)


def measure(rows, command, env, peers, rounds, window, progress):
    """Fill each row's rounds: ``rounds`` rounds of at least ``window`` seconds each,
    round-robin over the rows, a fresh agent each time."""
    active = [r for r in rows if r.skip is None]
    for i in range(rounds):
        shift = i % len(active) if active else 0
        for row in active[shift:] + active[:shift]:
            if row.skip is not None:
                continue
            try:
                row.rounds.append(_round(row, command, env, peers,
                                         max(window, 2 * row.count / 1000)))
            except (RuntimeError, AssertionError, OSError, ValueError) as exc:
                row.skip = str(exc).splitlines()[0][:160]
            if progress:
                print(f"\r  agent round {i + 1}/{rounds}: {row.label:<40}", end="",
                      file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)


def status_page(command, env, peers):
    """{path: [ms of each GET]} for the status page and /status.json of an agent running
    1,000 HTTP checks (``page_timings``), or None when it serves no page."""
    row = AgentRow("status page", build_rows(peers)[0].command, PAGE_CHECKS, PAGE_INTERVAL, 2.0)
    port = free_port()
    try:
        with _agent(row, command, env, peers, metrics=f"127.0.0.1:{port}") as agent:
            agent.wait_status(lambda d: all(c["runs"] >= WARM_RUNS for c in d["checks"]),
                              timeout=PAGE_INTERVAL * 4 + 30, what="1,000 checks run twice")
            page = page_timings(port)
            agent.stop()
    except (AssertionError, OSError, RuntimeError) as exc:
        print(f"scripts/bench: the status page not timed: {str(exc).splitlines()[0]}",
              file=sys.stderr)
        return None
    return page


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
            if f"c{PAGE_CHECKS - 1}".encode() not in body:
                return None  # not the page of 1,000 checks
            timings[path].append((time.perf_counter() - started) * 1000)
    return timings


def spread(values):
    """(median, p10, p90) of ``values``."""
    if len(values) < 3:
        return statistics.median(values), min(values), max(values)
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    return statistics.median(values), deciles[0], deciles[8]


def percentile(values, q):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def render(rows, floors, by_label, rounds, window, load, page=None):
    """Markdown lines: the agent table, the floors' table, the status page's timings
    (``page``: ``status_page``), the load while measuring.
    ``floors``: harness.bench.floor.Floor; ``by_label``: the forked rows, measured."""
    def peer_ms(label):
        forked = by_label.get(label)
        if forked is None or not forked.samples:
            return None
        return statistics.median(s[0] for s in forked.samples) * 1000

    floor_ms = {f.label: statistics.median(f.samples) for f in floors if f.samples}
    lines = ["", f"`kachecks agent` at the rates directors run ({rounds} rounds per row of at"
             f" least {window:g} s, a fresh agent each, round-robin over the rows; CPU is"
             " user+sys of all the agent's threads per run, median over rounds with p10–p90;"
             " lateness is how late runs started, over every run seen in every round; RSS,"
             " threads and descriptors at the end of the window, the largest over rounds;"
             " track files on tmpfs):", "",
             "| agent row | checks × interval | runs/s | CPU ms per run (p10–p90) | × C peer,"
             " forked | × probe floor | lateness p50 / p99 ms | RSS MiB | threads | fds"
             " | target |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for row in rows:
        if row.idle or row.skip is not None or not row.rounds:
            if row.skip is not None or not row.rounds:
                notes.append(f"- `agent, {row.label}`: not measured: {row.skip}")
            continue
        per_run = [r.ms_per_run for r in row.rounds if r.ms_per_run]
        cpu, low, high = spread(per_run)
        peer = peer_ms(row.c_peer) if row.c_peer else None
        ratio = cpu / peer if peer else None
        floor = floor_ms.get(row.floor)
        late = [s for r in row.rounds for s in r.lateness]
        p50, p99 = percentile(late, 0.5), percentile(late, 0.99)
        rate = statistics.median(r.runs / r.seconds for r in row.rounds)
        rss = max(r.rss for r in row.rounds)
        checks = f"{row.count:,} × {row.interval:g} s" + (f" + {row.hung} hung" if row.hung
                                                          else "")
        verdict = []
        if row.target is not None and ratio is not None:
            verdict.append(f"≤ {row.target}× `{row.c_peer}` "
                           f"{'met' if ratio <= row.target else '**missed**'}")
        if row.count >= 10000:
            verdict.append(f"p99 ≤ {LATENESS_P99_MS} ms "
                           f"{'met' if p99 is not None and p99 * 1000 <= LATENESS_P99_MS else '**missed**'}")
            verdict.append(f"RSS ≤ {RSS_LIMIT_MIB} MiB "
                           f"{'met' if rss <= RSS_LIMIT_MIB else '**missed**'}")
        lines.append(
            f"| `agent, {row.label}` | {checks} | {rate:.0f} | {cpu:.3f} ({low:.3f}–{high:.3f})"
            f" | {f'{ratio:.2f}× `{row.c_peer}`' if ratio else '–'}"
            f" | {f'{cpu / floor:.2f}×' if floor else '–'}"
            f" | {_ms(p50)} / {_ms(p99)} | {rss:.1f} | {max(r.threads for r in row.rounds)}"
            f" | {max(r.fds for r in row.rounds)} | {'; '.join(verdict) or '–'} |")
    for row in rows:
        if not row.idle or not row.rounds:
            continue
        lines += ["", rest_line(row)]
    lines += ["", "Floors: the same probe called back to back in one warm process"
              " (`contract.evaluate` in a loop; for LDAP also ldap3 alone doing the same"
              " exchange, and with the bind check_ldap makes), median over rounds with"
              " p10–p90:", "", "| floor | CPU ms per run (p10–p90) | × C peer, forked |",
              "|---|---|---|"]
    for floor in floors:
        if not floor.samples:
            notes.append(f"- floor `{floor.label}`: not measured: {floor.skip}")
            continue
        ms, low, high = spread(floor.samples)
        peer = peer_ms(floor.c_peer)
        lines.append(f"| {floor.label} | {ms:.3f} ({low:.3f}–{high:.3f}) | "
                     f"{f'{ms / peer:.2f}× `{floor.c_peer}`' if peer else '–'} |")
    by_row = {row.label: row for row in rows}
    for row in rows:
        twin = by_row.get(row.baseline)
        ours = [r.ms_per_run for r in row.rounds if r.ms_per_run]
        theirs = [r.ms_per_run for r in twin.rounds if r.ms_per_run] if twin else []
        if ours and theirs and not row.idle:
            ours, theirs = statistics.median(ours), statistics.median(theirs)
            notes.append(f"- `agent, {row.label}` against `agent, {twin.label}` (the tree"
                         f" before, same run): {ours - theirs:+.3f} ms per run"
                         f" ({(ours - theirs) / theirs * 100:+.0f} %)")
    if page:
        home, data = page["/"], page["/status.json"]
        met = "met" if statistics.median(home) < PAGE_LIMIT_MS else "**missed**"
        lines += ["", f"The status page of an agent running {PAGE_CHECKS:,} HTTP checks every"
                  f" {PAGE_INTERVAL:g} s, each GET a fresh render ({len(home)} GETs"
                  f" {PAGE_PAUSE:g} s apart, while the checks run): `/` median"
                  f" {statistics.median(home):.1f} ms (max {max(home):.1f}),"
                  f" `/status.json` median {statistics.median(data):.1f} ms (max"
                  f" {max(data):.1f}); target: `/` under {PAGE_LIMIT_MS} ms: {met}."]
    if load:
        lines += ["", f"Load while measuring (`/proc/loadavg`, 1 min): {load}."]
    if notes:
        lines += ["", *notes]
    return lines


def rest_line(row):
    """The sentence of an at-rest row (``row.idle``): what it measured and what it includes."""
    share, low, high = spread([r.core_percent for r in row.rounds])
    seconds = sum(r.seconds for r in row.rounds)
    tail = (f" and {max(r.rss for r in row.rounds):.1f} MiB resident,"
            f" {max(r.threads for r in row.rounds)} thread(s),"
            f" {max(r.fds for r in row.rounds)} descriptors.")
    if row.idle == "none due":
        met = "met" if share <= IDLE_LIMIT else "**missed**"
        return (f"At rest (`agent, {row.label}`): one agent with {row.count:,} checks"
                f" configured every {row.interval:g} s (the longest interval; first runs"
                f" spread over it, one every {row.interval / row.count:.1f} s), read only"
                f" between two of them ({REST_AFTER:g} s after one is due to {REST_BEFORE:g} s"
                f" before the next; {seconds / len(row.rounds):.0f} s a round; no track file"
                f" written in them: none due), costs {share:.4f} % of one core"
                f" ({low:.4f}–{high:.4f}; target ≤ {IDLE_LIMIT} %: {met}): its wake-ups, the"
                f" \"agent running\" file every 5 s, and any status-document rewrite of"
                f" results that came in before the window;" + tail)
    runs = sum(r.runs for r in row.rounds) / seconds
    per_run = spread([r.ms_per_run for r in row.rounds if r.ms_per_run])
    return (f"With runs (`agent, {row.label}`, not at rest): the same {row.count:,} checks"
            f" every {row.interval:g} s (first runs spread over the interval: {runs:.1f} runs a"
            f" second) cost {share:.3f} % of one core ({low:.3f}–{high:.3f}), {per_run[0]:.3f}"
            f" ms per run ({per_run[1]:.3f}–{per_run[2]:.3f}): the runs themselves and the"
            " status-document rewrites their results cause (this row was the \"at rest\""
            " figure until the none-due one above);" + tail)


def _ms(seconds):
    return "–" if seconds is None else f"{seconds * 1000:.1f}"


@contextlib.contextmanager
def hung_peer():
    """A peer that accepts and never answers, for the hung row (its connections closed
    after 10 s: long after the checks gave up)."""
    mute = Mute(hold=10)
    try:
        yield mute
    finally:
        mute.close()
