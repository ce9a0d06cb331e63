"""Measuring: the commands of the table, run interleaved, and what they cost.

keepalived forks a check every delay_loop for every real server, so what a check
costs is whole-process CPU (user+sys of the child, from wait4: exact, unlike
/usr/bin/time's 10 ms ticks) and wall time, measured in ONE run, interleaved
(round-robin over the commands, so load drifts hit all alike).
"""

import hashlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from harness import entrypoints
from harness.bench.servers import SMALL_BODY
from harness.checks import BASE, REFERENCE

REPO = str(Path(__file__).resolve().parents[2])
PLUGINS = "/usr/lib/nagios/plugins"
GENHASH = "/usr/bin/genhash"
TIME = "/usr/bin/time"
DEV_PYTHON = "/usr/bin/python3"  # runs a dev tree's wrappers: Debian's interpreter
BIG_TIMEOUT = "120"  # seconds, for both genhashes: a loaded machine must not fail a 1 GiB run
RSS_RUNS = 3  # peak RSS: the maximum of this many extra runs


class Command:
    """One row of the table: an argv and what it must exit with to count."""

    def __init__(self, label, argv, peer=None, expect=0, kind="check", body=0, skip=None,
                 worker=False, env=None, over=None):
        self.label = label
        self.over = over  # label of the row this one adds to (its extra cost is noted)
        self.baseline = None  # label of the same row run from --baseline's tree (noted too)
        self.extra_env = env or {}
        self.argv = argv
        self.worker = worker  # handed to `kachecks worker`: its CPU counts too
        self.env = None  # set by main: the run's environment
        self.peer = peer  # label of the C row to compare with
        self.expect = expect
        self.kind = kind  # floor | check | c
        self.body = body  # bytes of body fetched, for throughput rows
        self.skip = skip  # why it is not measured (None: measured)
        self.samples = []  # (cpu s, wall s, worker-side cpu s)
        self.peak_rss = 0  # KiB, from /usr/bin/time (see peak_rss)
        self.failures = 0


class Launcher:
    """How to start a kachecks executable: dev-tree wrappers or installed scripts."""

    def __init__(self, bin_dir, python, workdir, tree=REPO):
        self.dev = bin_dir is None
        self.tree = tree
        self.python = python or (DEV_PYTHON if self.dev else None)
        self.bin_dir = bin_dir or self._dev_wrappers(workdir)

    def _dev_wrappers(self, workdir):
        """The same wrappers the .deb installs, by its own writer: import the entry point,
        nothing else (run by ``self.python``, whatever their first line says)."""
        return str(entrypoints.write(os.path.join(workdir, "bin"), self.tree))

    def argv(self, name, *args):
        script = os.path.join(self.bin_dir, name)
        prefix = [self.python, script] if self.python else [script]
        return prefix + list(args)

    def interpreter(self):
        if self.python:
            return self.python
        with open(os.path.join(self.bin_dir, "kachecks")) as handle:
            return handle.readline()[2:].split()[0]

    def missing(self, module):
        """Why ``module`` cannot run (not landed in the tree), or None."""
        if not self.dev:
            return None
        path = os.path.join(self.tree, *module.split("."))
        if os.path.exists(path + ".py") or os.path.isdir(path):
            return None
        return f"not landed yet ({module.replace('.', '/')}.py missing)"


def build_commands(launcher, servers, floor_python, worker_skip):
    """The rows of the table, against ``servers`` (a harness.bench.servers.Servers)."""
    big_size = servers.big_size
    http_port = servers.http.server_address[1]
    https_port = servers.https.server_address[1]
    tcp_port = servers.tcp.getsockname()[1]
    small_url = f"http://127.0.0.1:{http_port}/small"
    md5 = hashlib.md5(SMALL_BODY).hexdigest()
    http_miss = launcher.missing("kachecks.checks.http")
    tcp_miss = launcher.missing("kachecks.checks.tcp")
    ldap_miss = launcher.missing("kachecks.checks.ldap")
    gen_miss = launcher.missing("kachecks.genhash.cli")
    plug = PLUGINS + "/"
    rows = [
        Command("python3 -I -c pass", [floor_python, "-I", "-c", "pass"], kind="floor"),
        Command("kachecks-tcp", launcher.argv("kachecks-tcp", "--host", "127.0.0.1", "--port",
                                              str(tcp_port)), peer="check_tcp", skip=tcp_miss),
        Command("kachecks check tcp", launcher.argv("kachecks", "check", "tcp", "--host",
                                                    "127.0.0.1", "--port", str(tcp_port)),
                peer="check_tcp", skip=tcp_miss),
        Command("check_tcp", [plug + "check_tcp", "-H", "127.0.0.1", "-p", str(tcp_port)],
                kind="c"),
        Command("kachecks-http", launcher.argv("kachecks-http", "--url", small_url),
                peer="check_http", skip=http_miss),
        Command("kachecks-http --digest", launcher.argv("kachecks-http", "--url", small_url,
                                                        "--digest", md5),
                peer="check_http -s", skip=http_miss),
        Command("check_http", [plug + "check_http", "-I", "127.0.0.1", "-p", str(http_port),
                               "-u", "/small"], kind="c"),
        Command("check_http -s", [plug + "check_http", "-I", "127.0.0.1", "-p", str(http_port),
                                  "-u", "/small", "-s", "kachecks bench page"], kind="c"),
        Command("kachecks-http TLS", launcher.argv("kachecks-http", "--url",
                                                   f"https://127.0.0.1:{https_port}/small"),
                peer="check_http --ssl", skip=http_miss),
        Command("kachecks-http TLS, worker", launcher.argv(
            "kachecks-http", "--url", f"https://127.0.0.1:{https_port}/small"),
            peer="check_http --ssl", skip=http_miss or worker_skip, worker=True),
        Command("check_http --ssl", [plug + "check_http", "-I", "127.0.0.1", "-p",
                                     str(https_port), "--ssl", "-u", "/small"], kind="c"),
    ]
    ldap = servers.ldap
    if isinstance(ldap, str):
        rows.append(Command("kachecks-ldap", [], skip=ldap))
        rows.append(Command("check_ldap", [], kind="c", skip=ldap))
        rows.append(Command("kachecks-ldap ldaps", [], skip=ldap))
        rows.append(Command("check_ldap --ssl", [], kind="c", skip=ldap))
        rows.append(Command("kachecks-ldap --provider", [], skip=ldap))
    else:
        slapd, search = ldap, REFERENCE
        fresh = ["--provider", servers.provider.url]
        rows += [
            Command("kachecks-ldap", launcher.argv("kachecks-ldap", "--uri", slapd.url, *search),
                    peer="check_ldap", skip=ldap_miss),
            Command("kachecks-ldap, worker", launcher.argv(
                "kachecks-ldap", "--uri", slapd.url, *search), peer="check_ldap",
                skip=ldap_miss or worker_skip, worker=True),
            Command("kachecks-ldap --provider", launcher.argv(
                "kachecks-ldap", "--uri", slapd.url, *search, *fresh), peer="check_ldap",
                skip=ldap_miss, over="kachecks-ldap"),
            Command("kachecks-ldap --provider, worker", launcher.argv(
                "kachecks-ldap", "--uri", slapd.url, *search, *fresh), peer="check_ldap",
                skip=ldap_miss or worker_skip, worker=True, over="kachecks-ldap, worker"),
            Command("check_ldap", [plug + "check_ldap", "-H", slapd.host, "-p", str(slapd.port),
                                   "-b", BASE, "-3"], kind="c"),
            Command("kachecks-ldap ldaps", launcher.argv("kachecks-ldap", "--uri", slapd.ldaps_url,
                                                         *search),
                    peer="check_ldap --ssl", skip=ldap_miss),
            Command("kachecks-ldap ldaps, worker", launcher.argv(
                "kachecks-ldap", "--uri", slapd.ldaps_url, *search), peer="check_ldap --ssl",
                skip=ldap_miss or worker_skip, worker=True),
            Command("check_ldap --ssl", [plug + "check_ldap", "-H", slapd.host, "-p",
                                         str(slapd.tls_port), "-b", BASE, "-3", "--ssl"],
                    kind="c", env={"LDAPTLS_REQCERT": "never"}),  # like kachecks' default
        ]
    genhash_args = ["-s", "127.0.0.1", "-p", str(http_port), "-u"]
    rows += [
        Command("kachecks genhash", launcher.argv("kachecks", "genhash", *genhash_args,
                                                  "/small"),
                peer="genhash", skip=gen_miss),
        Command("genhash", [GENHASH, *genhash_args, "/small"], kind="c"),
    ]
    if big_size:
        size = f"{big_size / 2**20:g} MiB"
        rows += [
            Command(f"kachecks genhash {size}",
                    launcher.argv("kachecks", "genhash", "-t", BIG_TIMEOUT, *genhash_args, "/big"),
                    peer=f"genhash {size}", body=big_size, skip=gen_miss),
            Command(f"genhash {size}", [GENHASH, "-t", BIG_TIMEOUT, *genhash_args, "/big"], kind="c",
                    body=big_size),
        ]
    return rows


def with_baseline(commands, tree, servers, python, workdir):
    """``commands`` with, after each in-process kachecks row, the same row run from dev
    tree ``tree`` and labelled ``LABEL @REV``: a change and what it replaces, in one run."""
    launcher = Launcher(None, python, os.path.join(workdir, "baseline"), tree)
    rev = revision(tree)
    theirs = {c.label: c for c in build_commands(launcher, servers, python, "not a baseline row")}
    rows = []
    for c in commands:
        rows.append(c)
        twin = theirs.get(c.label)
        if c.kind == "check" and not c.worker and not c.body and twin is not None:
            c.baseline = twin.label = f"{c.label} @{rev}"
            twin.over = f"{c.over} @{rev}" if c.over else None
            twin.extra_env = dict(twin.extra_env, PYTHONPATH=tree)
            rows.append(twin)
    return rows


# --------------------------------------------------------------------------- measuring

_DEVNULL_ACTIONS = [
    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
    (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
]


def measure_once(command, worker=None):
    """(exit code, cpu s, wall s, worker-side cpu s) of one run.

    CPU is the child's, from wait4, plus — for a run handed to the worker —
    what the worker and the child it forked spent meanwhile (its cgroup).
    """
    before = worker.usage() if command.worker else None
    started = time.perf_counter()
    pid = os.posix_spawn(command.argv[0], command.argv, command.env,
                         file_actions=_DEVNULL_ACTIONS)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    cpu = usage.ru_utime + usage.ru_stime
    served = 0.0
    if before is not None:
        worker.settle()
        served = worker.usage() - before
    return os.waitstatus_to_exitcode(status), cpu + served, wall, served


def peak_rss(argv, env, workdir):
    """Peak RSS in KiB, through GNU time's fork+exec.

    wait4's ru_maxrss of our own child is useless here: Linux records the
    high-water mark of the address space the child replaced at exec, and a
    spawned child's is ours (the bench, ~30 MiB). GNU time is small.
    """
    out = os.path.join(workdir, "rss")
    subprocess.run([TIME, "-f", "%M", "-o", out, *argv], env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=300)
    with open(out) as handle:
        return int(handle.read().split()[-1])


def validate(command):
    """Run once with output captured (also compiles pyc files): does it do its job?"""
    argv = command.argv + (["--verbose"] if command.worker else [])
    try:
        done = subprocess.run(argv, env=command.env, capture_output=True, text=True,
                              timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run: {exc}"
    if command.worker and "run by kachecks worker" not in done.stdout:
        return f"not run by the worker: {done.stdout.strip()[:120]}"
    if done.returncode == command.expect:
        return None
    text = (done.stderr.strip() or done.stdout.strip()).splitlines()
    return f"exit {done.returncode}, not {command.expect}: {text[-1] if text else ''}"[:160]


def measure(commands, runs, warmup, progress, workdir, worker):
    active = [c for c in commands if c.skip is None]
    for c in active:
        c.peak_rss = max(peak_rss(c.argv, c.env, workdir) for _ in range(RSS_RUNS))
    for _ in range(warmup):
        for c in active:
            measure_once(c, worker)
    for i in range(runs):
        # round-robin, starting one further each round: no command always follows another
        shift = i % len(active)
        for c in active[shift:] + active[:shift]:
            code, cpu, wall, served = measure_once(c, worker)
            if code != c.expect:
                c.failures += 1
            c.samples.append((cpu, wall, served))
        if progress:
            print(f"\r  round {i + 1}/{runs}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)


def _version(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except OSError:
        return "?"
    return (out.stdout.strip() or out.stderr.strip()).splitlines()[0] if out.returncode == 0 \
        else "?"


def _deb_version(package):
    return _version(["dpkg-query", "-W", "-f", "${Version}", package])


def revision(tree):
    """The commit of a git tree (``-dirty`` when it has changes)."""
    return _version(["git", "-C", tree, "describe", "--always", "--dirty"])


def machine(launcher, interpreter):
    model = "?"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    # the commit, not the checkout's path: the table is published
    where = (f"source tree at {revision(launcher.tree)}, wrappers like the .deb's,"
             " PYTHONPATH=tree"
             if launcher.dev else f"installed executables in {launcher.bin_dir}"
             f" (kachecks {_deb_version('kachecks')})")
    if launcher.dev and not os.access(os.path.join(launcher.tree, "kachecks"), os.W_OK):
        where += "; **tree not writable: no .pyc files, every run compiles**"
    return [
        ("CPU", f"{model}, {os.cpu_count()} cores"),
        ("Kernel", f"{platform.system()} {platform.release()}"),
        ("Checks run by", f"{interpreter} (Python "
                          f"{_version([interpreter, '-c', 'import sys; print(sys.version.split()[0])'])})"),
        ("Bench run by", f"{sys.executable} (Python {platform.python_version()})"),
        ("kachecks", where),
        ("C peers", f"monitoring-plugins {_deb_version('monitoring-plugins-basic')},"
                    f" keepalived genhash {_deb_version('keepalived')}"),
    ]
