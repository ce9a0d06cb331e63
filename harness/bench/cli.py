"""Per-invocation cost of the kachecks executables beside their C peers.

keepalived forks a check every delay_loop for every real server, so what a
check costs is whole-process CPU (user+sys of the child, from wait4: exact,
unlike /usr/bin/time's 10 ms ticks) and wall time, measured here in ONE run,
interleaved (round-robin over the commands, so load drifts hit all alike),
against local servers this script starts on loopback: a threaded HTTP server,
a TLS one with an openssl-made self-signed certificate, a TCP listener and
slapd (harness/peers/slapd.py). Ratios are to the bare interpreter
(``python3 -I -c pass``) and to the C peer (monitoring-plugins, keepalived's
genhash). The table is printed and written between the markers of
docs/performance.md.

    scripts/bench                       dev tree, run by Debian's /usr/bin/python3
    scripts/bench --bin-dir /usr/bin    the installed .deb's own executables
    scripts/bench --runs 10 --big-mib 64 --no-write     a quick look

    scripts/bench --baseline ../before --only kachecks-http --no-agent --no-write
                                        a change against the tree before it, same run

Needs this repository (harness/) and any python3 >= 3.11; not pytest.
"""

import argparse
import datetime
import os
import shutil
import sys
import tempfile
import time

from harness.bench import agent as agent_rows
from harness.bench.measure import (DEV_PYTHON, REPO, Launcher, build_commands, machine, measure,
                                   revision, validate, with_baseline)
from harness.bench.render import render, write_doc
from harness.bench.servers import CgroupWorker, Servers
from harness.peers.worker import WorkerError

DOC = os.path.join(REPO, "docs", "performance.md")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description="\n\n".join(__doc__.split("\n\n")[:2]),
        epilog="examples:\n" + "\n\n".join(__doc__.split("\n\n")[2:4]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30, help="runs per command (default 30)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="unmeasured rounds first (page cache, pyc files; default 2)")
    parser.add_argument("--bin-dir", help="run the executables installed here (e.g. /usr/bin)"
                        " instead of the dev tree")
    parser.add_argument("--tree", default=REPO, help="dev tree to measure (default: this"
                        " repository; another worktree measures a branch before it lands)")
    parser.add_argument("--baseline", metavar="TREE",
                        help="also run each in-process kachecks row from this dev tree (e.g. a"
                        " worktree of the commit before a change), interleaved in the same run;"
                        " its rows follow their counterparts, labelled with its commit")
    parser.add_argument("--python", help="interpreter to run the kachecks executables with "
                        "(default: /usr/bin/python3 for the dev tree; the scripts' own "
                        "shebang with --bin-dir)")
    parser.add_argument("--big-mib", type=int, default=1024,
                        help="body size of the genhash throughput case, MiB (0: skip; "
                             "default 1024)")
    parser.add_argument("--only", action="append", default=[],
                        help="measure only rows whose label contains this (repeatable;"
                             " the floor is always measured)")
    parser.add_argument("--output", default=DOC, help="markdown file to update (default "
                        "docs/performance.md)")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--no-worker", action="store_true",
                        help="leave out the rows handed to `kachecks worker`")
    parser.add_argument("--no-agent", action="store_true",
                        help="leave out the `kachecks agent` rows (CPU per check run in-process)")
    parser.add_argument("--agent-rounds", type=int, default=5,
                        help="rounds per agent row, a fresh agent each, and per floor"
                             " (default 5)")
    parser.add_argument("--agent-window", type=float, default=10.0,
                        help="seconds measured per agent round at least (default 10;"
                             " 10,000 checks: 20)")
    parser.add_argument("--vrrp", action="store_true",
                        help="measure only the pair watcher under a flood (its own table:"
                             " harness/bench/vrrp.py; needs root)")
    parser.add_argument("--vrrp-rounds", type=int, default=3,
                        help="rounds per --vrrp variant (default 3)")
    parser.add_argument("--vrrp-window", type=float, default=8.0,
                        help="seconds of flood per --vrrp round (default 8)")
    parser.add_argument("--vrrp-agent", action="store_true",
                        help="measure only `kachecks agent` with and without its [vrrp] table"
                             " under a flood (its own table: harness/bench/vrrp.py; needs root)")
    parser.add_argument("--vrrp-agent-rounds", type=int, default=5,
                        help="rounds per --vrrp-agent variant (default 5)")
    parser.add_argument("--vrrp-agent-window", type=float, default=10.0,
                        help="seconds of flood per --vrrp-agent round (default 10)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.vrrp:
        return main_vrrp(args, argv)
    if args.vrrp_agent:
        return main_vrrp_agent(args, argv)
    workdir = tempfile.mkdtemp(prefix="kachecks-bench-")
    try:
        table = run(args, argv, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.write(table)
    if not args.no_write:
        try:
            # the agent rows alone (with the forked C peers they compare with) go in a
            # table of their own: they leave the full table of every command as it is
            write_doc(table, args.output, *((agent_rows.BEGIN, agent_rows.END)
                                            if agent_only(args) else ()))
        except (OSError, ValueError) as exc:
            print(f"scripts/bench: {exc}", file=sys.stderr)
            return 1
        print(f"\nwritten to {args.output}", file=sys.stderr)
    return 0


def agent_only(args):
    """Whether this run measures the agent rows only (``--only agent``…)."""
    return bool(args.only) and not args.no_agent and all(
        word.startswith("agent") for word in args.only)


def run(args, argv, workdir):
    """Start the peers (and the worker), measure every command, return the table."""
    started = datetime.datetime.now(datetime.timezone.utc)
    clock = time.monotonic()
    launcher = Launcher(args.bin_dir, args.python, workdir, os.path.abspath(args.tree))
    interpreter = launcher.interpreter()
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "KACHECKS_STATE_DIR": os.path.join(workdir, "state"),
           "KACHECKS_SYSLOG_SOCKET": os.path.join(workdir, "no-syslog")}
    os.mkdir(env["KACHECKS_STATE_DIR"])
    if launcher.dev:
        env["PYTHONPATH"] = launcher.tree
    with Servers(args.big_mib * 2**20, workdir) as servers:
        worker = None
        worker_skip = "--no-worker" if args.no_worker else launcher.missing("kachecks.worker.server")
        if worker_skip is None:
            try:
                worker = CgroupWorker(launcher.argv("kachecks"), env, workdir).start()
            except (OSError, WorkerError) as exc:
                worker_skip = str(exc)
        try:
            commands = build_commands(launcher, servers, interpreter, worker_skip)
            if args.only:
                compared = set() if args.no_agent else agent_rows.peers(args.only)
                commands = [c for c in commands if c.kind == "floor" or c.label in compared
                            or any(word in c.label for word in args.only)]
            if args.baseline:
                commands = with_baseline(commands, os.path.abspath(args.baseline), servers,
                                         args.python or DEV_PYTHON, workdir)
            for c in commands:
                # in-process rows must not reach a worker, not even an installed one
                socket = str(worker.socket) if c.worker and worker else \
                    os.path.join(workdir, "no-worker.sock")
                c.env = dict(env, KACHECKS_WORKER_SOCKET=socket, **c.extra_env)
                if c.skip is None:
                    c.skip = validate(c)
                if c.skip is not None:
                    print(f"skip {c.label}: {c.skip}", file=sys.stderr)
            measure(commands, args.runs, args.warmup, sys.stderr.isatty(), workdir, worker)
            worker_rss = worker.rss_mib() if worker else None
            worker_counted = worker is None or worker.cgroup is not None
        finally:
            if worker is not None:
                worker.stop()
        agent_lines = [] if args.no_agent else run_agent(args, launcher, servers, commands, env)
        info = machine(launcher, interpreter)
        if args.baseline:
            rev = revision(os.path.abspath(args.baseline))
            info.append(("Baseline", f"source tree at {rev} (rows `… @{rev}`), wrappers like the"
                                     f" .deb's, run by {args.python or DEV_PYTHON}"))
        return render(commands, args.runs, info, started,
                      time.monotonic() - clock, argv, worker_counted, worker_rss) + \
            "".join(line + "\n" for line in agent_lines)


def run_agent(args, launcher, servers, commands, env):
    """The agent rows and their floors, measured after the forked ones against the same
    peers (plain HTTP from a loopback responder that costs next to nothing per request,
    so that a thousand requests a second do not queue in the bench's threaded server)."""
    from harness.bench import floor as floors
    from harness.peers.rawhttp import http_response
    from harness.peers.responder import Responder

    missing = launcher.missing("kachecks.agent.runner")
    agent_env = dict(env, KACHECKS_WORKER_SOCKET=os.path.join(env["KACHECKS_STATE_DIR"],
                                                               "no-worker.sock"))
    command = launcher.argv("kachecks")
    with Responder(http_response(agent_rows.SMALL_BODY)) as web, \
            agent_rows.hung_peer() as mute:
        peers = {"web": web.address, "tcp": servers.tcp.getsockname()[1],
                 "https": f"https://127.0.0.1:{servers.https.server_address[1]}/small",
                 "ldap": servers.ldap, "mute": mute.port}
        rows = agent_rows.build_rows(peers, args.only)
        if not rows:
            return []
        for row in rows:
            row.skip = row.skip or missing
        if args.baseline:
            tree = os.path.abspath(args.baseline)
            before = Launcher(None, args.python or DEV_PYTHON, os.path.join(
                env["KACHECKS_STATE_DIR"], "baseline-agent"), tree)
            rows = agent_rows.with_baseline(rows, before.argv("kachecks"),
                                            dict(agent_env, PYTHONPATH=tree), revision(tree))
        under = agent_rows.floors(peers, rows)
        progress = sys.stderr.isatty()
        load = [_load()]
        floors.measure(under, launcher.interpreter(), floors.environment(agent_env,
                                                                          launcher.tree),
                       args.agent_rounds, progress)
        agent_rows.measure(rows, command, agent_env, peers, args.agent_rounds,
                           args.agent_window, progress)
        load.append(_load())
        page = None if missing else agent_rows.status_page(command, agent_env, peers)
    by_label = {c.label: c for c in commands}
    return agent_rows.render(rows, under, by_label, args.agent_rounds, args.agent_window,
                             f"{load[0]} at the start, {load[1]} at the end of the agent rows"
                             f" ({os.cpu_count()} cores)", page)


def _load():
    with open("/proc/loadavg") as handle:
        return handle.read().split()[0]


def main_vrrp(args, argv):
    """``scripts/bench --vrrp``: the pair watcher's table (harness/bench/vrrp.py)."""
    from harness.bench import vrrp

    python = args.python or DEV_PYTHON
    started = time.monotonic()
    results = vrrp.run(args.vrrp_rounds, args.vrrp_window, os.path.abspath(args.tree), python,
                       sys.stderr.isatty())
    info = _vrrp_info(args, argv, python, "the watcher", started)
    return _vrrp_table(vrrp.render(results, args.vrrp_rounds, args.vrrp_window, info), args,
                       vrrp.BEGIN, vrrp.END)


def main_vrrp_agent(args, argv):
    """``scripts/bench --vrrp-agent``: the agent's [vrrp] under a flood (harness/bench/vrrp.py)."""
    from harness.bench import vrrp

    python = args.python or DEV_PYTHON
    started = time.monotonic()
    results, differences = vrrp.run_agent(args.vrrp_agent_rounds, args.vrrp_agent_window,
                                          os.path.abspath(args.tree), python, sys.stderr.isatty())
    agent = (f"{vrrp.AGENT_CHECKS} kachecks-tcp checks every {vrrp.AGENT_INTERVAL} s (a listener"
             " on lvs1's loopback); [vrrp] watching VI_1 on eth0, advertised once a second by"
             " another namespace")
    info = _vrrp_info(args, argv, python, "the agent", started, [("Agent", agent)])
    return _vrrp_table(vrrp.render_agent(results, differences, args.vrrp_agent_rounds,
                                         args.vrrp_agent_window, info), args,
                       vrrp.AGENT_BEGIN, vrrp.AGENT_END)


def _vrrp_info(args, argv, python, who, started, more=()):
    return [("Command", "`scripts/bench " + " ".join(argv) + "`"),
            ("Tree", revision(os.path.abspath(args.tree))),
            ("Interpreter", f"{python} ({who} and the flood)"), *more,
            ("Machine", f"{os.cpu_count()} CPUs, {machine_kernel()}"),
            ("Took", f"{time.monotonic() - started:.0f} s")]


def _vrrp_table(table, args, begin, end):
    """Print ``table`` and put it between ``begin`` and ``end`` of the document."""
    sys.stdout.write(table)
    if not args.no_write:
        try:
            write_doc(table, args.output, begin, end)
        except (OSError, ValueError) as exc:
            print(f"scripts/bench: {exc}", file=sys.stderr)
            return 1
        print(f"\nwritten to {args.output}", file=sys.stderr)
    return 0


def machine_kernel():
    return f"Linux {os.uname().release}"
