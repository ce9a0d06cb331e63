"""Rendering: the samples of a bench run as the markdown table of docs/performance.md."""

import statistics

from harness.bench.measure import RSS_RUNS

BEGIN, END = "<!-- BEGIN scripts/bench -->", "<!-- END scripts/bench -->"
# Targets of issue 8: median CPU as a multiple of the bare interpreter.
CPU_TARGETS = {"kachecks-tcp": 2.0, "kachecks-http": 2.5, "kachecks-http TLS": 3.5,
               "kachecks-ldap": 4.0, "kachecks-ldap ldaps": 4.0}
BIG_RSS_LIMIT_MIB = 64


def spread(values):
    """(median, p10, p90)."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    return statistics.median(values), deciles[0], deciles[8]


def _ms(seconds):
    return f"{seconds * 1000:.1f}"


def render(commands, runs, info, started, elapsed, argv, worker_counted=True, worker_rss=None):
    """The markdown: a header saying how it was measured (``argv``: the bench's own), the
    per-run table, the large-body table and notes. ``worker_counted``: the worker's side
    of a handed-over run was measured (a cgroup of its own); ``worker_rss``: its MiB."""
    by_label = {c.label: c for c in commands}
    floor = by_label["python3 -I -c pass"]
    floor_cpu = statistics.median(s[0] for s in floor.samples)
    lines = [
        f"Measured {started:%Y-%m-%d %H:%M} UTC by `{' '.join(['scripts/bench', *argv])}` "
        f"in {elapsed:.0f} s: {runs} runs of each command, interleaved round-robin;"
        " CPU is user+sys of the child process (wait4), median with p10–p90;"
        f" peak RSS is the maximum of {RSS_RUNS} more runs under GNU time.",
        "",
        *[f"- {key}: {value}" for key, value in info],
        "",
        "| command | CPU ms (p10–p90) | wall ms (p10–p90) | CPU × floor | CPU × C peer "
        "| peak RSS MiB | target |",
        "|---|---|---|---|---|---|---|",
    ]
    notes = []
    for c in commands:
        if c.body:
            continue
        if c.skip is not None:
            notes.append(f"- `{c.label}`: not measured: {c.skip}")
            continue
        cpu, cpu_lo, cpu_hi = spread([s[0] for s in c.samples])
        wall, wall_lo, wall_hi = spread([s[1] for s in c.samples])
        rss = c.peak_rss / 1024
        ratio = cpu / floor_cpu
        peer = by_label.get(c.peer)
        peer_ratio = "–"
        if peer is not None and peer.samples:
            peer_cpu = statistics.median(s[0] for s in peer.samples)
            peer_ratio = f"{cpu / peer_cpu:.1f}× `{peer.label}`"
        target = CPU_TARGETS.get(c.label.removesuffix(", worker"))
        verdict = "–" if target is None else \
            f"≤ {target}× {'met' if ratio <= target else '**missed**'}"
        if c.worker:
            served = statistics.median(s[2] for s in c.samples)
            if not worker_counted:
                verdict = "– (worker side not measured)"
                notes.append(f"- `{c.label}`: CPU of the forked client only: no writable"
                             " cgroup v2 to count what the worker's child spent")
            else:
                notes.append(f"- `{c.label}`: median {_ms(cpu - served)} ms in the forked"
                             f" client + {_ms(served)} ms in `kachecks worker` (the child it"
                             " forks, counted through the worker's own cgroup); peak RSS is"
                             " the client's")
        lines.append(f"| `{c.label}` | {_ms(cpu)} ({_ms(cpu_lo)}–{_ms(cpu_hi)}) "
                     f"| {_ms(wall)} ({_ms(wall_lo)}–{_ms(wall_hi)}) | {ratio:.2f}× "
                     f"| {peer_ratio} | {rss:.1f} | {verdict} |")
        if c.failures:
            notes.append(f"- `{c.label}`: {c.failures} of {runs} runs exited otherwise "
                         f"than {c.expect}")
        for base in (by_label.get(c.over), by_label.get(c.baseline)):
            if base is None or not base.samples:
                continue
            extra = [statistics.median(s[i] for s in c.samples)
                     - statistics.median(s[i] for s in base.samples) for i in (0, 1)]
            notes.append(f"- `{c.label}`: {extra[0] * 1000:+.1f} ms CPU, {extra[1] * 1000:+.1f} ms"
                         f" wall against `{base.label}` (difference of the medians, same"
                         " server)")
    big = [c for c in commands if c.body]
    if big:
        lines += ["", "Large body (throughput = body bytes / wall time; 1 MB = 10⁶ bytes):",
                  "", "| command | wall s (p10–p90) | CPU s | MB/s | × genhash | peak RSS MiB "
                  "| target |", "|---|---|---|---|---|---|---|"]
        for c in big:
            if c.skip is not None:
                notes.append(f"- `{c.label}`: not measured: {c.skip}")
                continue
            wall, wall_lo, wall_hi = spread([s[1] for s in c.samples])
            cpu = statistics.median(s[0] for s in c.samples)
            rss = c.peak_rss / 1024
            rate = c.body / wall / 1e6
            peer = by_label.get(c.peer)
            peer_ratio, verdict = "–", "–"
            if peer is not None and peer.samples:
                peer_rate = peer.body / statistics.median(s[1] for s in peer.samples) / 1e6
                peer_ratio = f"{rate / peer_rate:.2f}×"
                met = rate >= peer_rate and rss < BIG_RSS_LIMIT_MIB
                verdict = (f"≥ 1.0× and < {BIG_RSS_LIMIT_MIB} MiB "
                           f"{'met' if met else '**missed**'}")
            lines.append(f"| `{c.label}` | {wall:.2f} ({wall_lo:.2f}–{wall_hi:.2f}) "
                         f"| {cpu:.2f} | {rate:.0f} | {peer_ratio} | {rss:.1f} | {verdict} |")
            if c.failures:
                notes.append(f"- `{c.label}`: {c.failures} of {runs} runs exited otherwise "
                             f"than {c.expect}")
        lines.append("")
    if worker_rss is not None:
        notes.append(f"- `kachecks worker` resident set after the run: {worker_rss:.1f} MiB"
                     " (its libraries loaded once; its children share them copy-on-write)")
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines) + "\n"


def write_doc(table, path, begin=BEGIN, end=END):
    """Put ``table`` between the markers ``begin`` and ``end`` of ``path``; ValueError if
    they are missing."""
    block = f"{begin}\n{table}{end}"
    try:
        with open(path) as handle:
            text = handle.read()
    except FileNotFoundError:
        text = f"# Performance\n\n{begin}\n{end}\n"
    head, found, rest = text.partition(begin)
    if not found:
        raise ValueError(f"{path}: no {begin} marker; add one where the table goes")
    _, found, tail = rest.partition(end)
    if not found:
        raise ValueError(f"{path}: {begin} without {end}")
    with open(path, "w") as handle:
        handle.write(head + block + tail)
