"""The pair watcher under a flood: its CPU while the watched interface carries as many
other packets a second as one core can send (``scripts/bench --vrrp``).

A director forwards a lot of traffic on the interface its VRRP instance uses. In
network namespaces on a bridge: ``flood`` sends small UDP packets to lvs1 (its MAC,
its address) from one pinned core, as fast as that core sends them; ``client``
advertises VI_1 once a second (so the watcher has its real work too); on lvs1,
``kachecks vrrp watch`` runs, its output thrown away. Three variants, interleaved
round by round: no watcher, the watcher as shipped (classic BPF in the kernel), and
the same watcher with the filter left off (every frame copied to it). Measured: the
watcher's CPU (its time on a CPU from /proc/PID/schedstat over the window, % of one
core), the
flood's rate (packets a second it sent), the adverts the watcher printed.

``scripts/bench --vrrp-agent`` (``run_agent``) measures the same for ``kachecks agent``:
one agent with ten TCP checks, interleaved round by round with and without its
``[vrrp]`` table (and with it but the kernel filter left off), each under the flood;
its whole CPU (every thread and child, from a cgroup v2 of its own) while the flood runs.

Needs root (namespaces) and this repository; not pytest.
"""

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from harness import signalled
from harness.peers.keepalived import secure_dir, vrrp_config
from harness.peers.netns import Network, cleanup_stale, run_prefix
from harness.peers.vrrp import HOSTS, VIP, Advertiser

BEGIN, END = "<!-- BEGIN scripts/bench --vrrp -->", "<!-- END scripts/bench --vrrp -->"
AGENT_BEGIN = "<!-- BEGIN scripts/bench --vrrp-agent -->"
AGENT_END = "<!-- END scripts/bench --vrrp-agent -->"
AGENT_VARIANTS = ("agent without [vrrp]", "agent with [vrrp] (as shipped)",
                  "agent with [vrrp], filter left off")
# The agent of the shipped tree, with kachecks.vrrp.bpf.attach replaced by a no-op: what the
# kernel filter saves the agent (the same trick as RUNNER's).
AGENT_RUNNER = r"""
import sys
from kachecks.vrrp import bpf
bpf.attach = lambda sock, program: None
from kachecks.cli import main
sys.exit(main(sys.argv[1:]))
"""
AGENT_CHECKS = 10  # kachecks-tcp to a listener on lvs1's loopback, every AGENT_INTERVAL s
AGENT_INTERVAL = 5
LISTENER = "127.0.0.1:8080"
TARGET = 1.0  # % of one core: what [vrrp] may add under the flood
VARIANTS = ("flood alone, no watcher", "watcher, kernel filter (as shipped)",
            "watcher, filter left off")

FLOOD = r"""
import ctypes, os, socket, struct, sys, time
cpu, dev, mac, src, dst, seconds = int(sys.argv[1]), sys.argv[2], bytes.fromhex(sys.argv[3]), \
    sys.argv[4], sys.argv[5], float(sys.argv[6])
os.sched_setaffinity(0, {cpu})
udp = struct.pack("!HHHH", 40000, 9, 8 + 18, 0) + b"not vrrp, ignore me"[:18]
head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                   socket.inet_aton(src), socket.inet_aton(dst))
total = sum(struct.unpack("!10H", head))
while total >> 16:
    total = (total & 0xFFFF) + (total >> 16)
packet = head[:10] + struct.pack("!H", ~total & 0xFFFF) + head[12:] + udp
sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM)
# sendmmsg(2): BATCH packets a system call, so the core is spent sending, not in Python
BATCH = 1024
class Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
class Msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(Iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]
class Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", Msghdr), ("len", ctypes.c_uint)]
buffer = ctypes.create_string_buffer(packet, len(packet))
iov = Iovec(ctypes.cast(buffer, ctypes.c_void_p), len(packet))
address = ctypes.create_string_buffer(struct.pack("=HHiHBB8s", socket.AF_PACKET, socket.htons(0x0800),
                                                  socket.if_nametoindex(dev), 0, 0, 6, mac), 20)
messages = (Mmsghdr * BATCH)()
for m in messages:
    m.hdr = Msghdr(ctypes.cast(address, ctypes.c_void_p), 20, ctypes.pointer(iov), 1, None, 0, 0)
libc = ctypes.CDLL(None, use_errno=True)
sent = 0
started = time.monotonic()
end = started + seconds
while time.monotonic() < end:
    done = libc.sendmmsg(sock.fileno(), messages, BATCH, 0)
    if done < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    sent += done
print(sent / (time.monotonic() - started))
"""

# The watch of the shipped tree, with kachecks.vrrp.bpf.attach replaced by a no-op when
# asked (the filter left off): the only difference between the two watcher variants.
RUNNER = r"""
import sys
if sys.argv[1] == "off":
    from kachecks.vrrp import bpf
    bpf.attach = lambda sock, program: None
from kachecks.vrrp.cli import main
sys.exit(main(conf=sys.argv[2], out=open("/dev/null", "w")))
"""


def cpu_seconds(pid):
    """Seconds ``pid`` has run on a CPU (/proc/PID/schedstat: nanoseconds, not ticks)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


def run(rounds=3, window=8.0, tree=None, python=sys.executable, progress=True):
    """{variant: {"cpu": [% of a core…], "rate": [packets/s…], "adverts": [n…]}}."""
    tree = tree or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    results = {v: {"cpu": [], "rate": [], "adverts": []} for v in VARIANTS}
    workdir = tempfile.mkdtemp(prefix="kachecks-bench-vrrp-")
    with testbed("kcvb", workdir) as (net, conf, mac):
        env = dict(os.environ, PYTHONPATH=tree)
        for number in range(rounds):
            for variant in VARIANTS:
                sample = _one(net, variant, conf, mac, window, python, env, workdir)
                for key, value in sample.items():
                    results[variant][key].append(value)
                if progress:
                    print(f"round {number + 1}/{rounds} {variant}: {sample}", file=sys.stderr)
    return results


@contextlib.contextmanager
def testbed(base, workdir):
    """(network, lvs1's keepalived.conf, lvs1's MAC without colons): lvs1 to watch, flood
    to flood it, client advertising VI_1 once a second meanwhile."""
    from kachecks.vrrp import wire

    cleanup_stale(base)
    hosts = {"lvs1": HOSTS["lvs1"], "client": HOSTS["client"], "flood": "192.168.8.25"}
    with Network(run_prefix(base), hosts) as net:
        conf = secure_dir(os.path.join(workdir, "etc")) / "keepalived.conf"
        conf.write_text(vrrp_config("lvs1", 100, VIP))
        advert = wire.encode(4, HOSTS["client"], "224.0.0.18", 50, 100, [VIP],
                             auth_type=wire.AUTH_PASS, password=b"toto")
        with Advertiser(net["client"], lambda: [advert]):
            yield net, conf, net["lvs1"].mac().replace(":", "")


def _one(net, variant, conf, mac, window, python, env, workdir):
    watcher = None
    log = os.path.join(workdir, "watch.err")
    if variant != VARIANTS[0]:
        mode = "on" if variant == VARIANTS[1] else "off"
        watcher = net["lvs1"].start([python, "-c", RUNNER, mode, str(conf)], log=log, env=env)
        time.sleep(1.0)  # sockets open, first advert heard
    flood = subprocess.Popen(net["flood"].argv([python, "-c", FLOOD, "0", "eth0", mac,
                                                "192.168.8.25", HOSTS["lvs1"], str(window)]),
                             stdout=subprocess.PIPE, text=True)
    before = cpu_seconds(watcher.pid) if watcher else None
    started = time.monotonic()
    out, _ = flood.communicate(timeout=window + 30)
    sample = {"rate": float(out.strip() or 0)}
    if watcher is not None:
        elapsed = time.monotonic() - started
        sample["cpu"] = 100 * (cpu_seconds(watcher.pid) - before) / elapsed
        signalled.stop(watcher.popen, signal.SIGINT, 10, what="the VRRP watcher", group=True)
        with open(log) as f:
            summary = f.read()
        os.unlink(log)
        sample["adverts"] = int(summary.split(": ", 1)[1].split()[0]) if ": " in summary else 0
    return sample


def render(results, rounds, window, info):
    lines = ["",
             f"{rounds} rounds of {window:g} s per variant, interleaved; medians (min–max).",
             "",
             "| variant | flood, packets/s | watcher CPU, % of one core | adverts shown |",
             "|---|---:|---:|---:|"]
    for variant in VARIANTS:
        row = results[variant]
        rate = _median(row["rate"], "{:,.0f}")
        cpu = _median(row["cpu"], "{:.2f}") if row["cpu"] else "—"
        adverts = _median(row["adverts"], "{:.0f}") if row["adverts"] else "—"
        lines.append(f"| {variant} | {rate} | {cpu} | {adverts} |")
    lines += ["", *(f"- {key}: {value}" for key, value in info), ""]
    return "\n".join(lines) + "\n"


def _median(values, spec):
    if not values:
        return "—"
    return (f"{spec.format(statistics.median(values))} "
            f"({spec.format(min(values))}–{spec.format(max(values))})")


# --- the agent with and without [vrrp] -------------------------------------------------


def run_agent(rounds=5, window=10.0, tree=None, python=sys.executable, progress=True):
    """{variant: {"cpu": [% of a core…], "rate": [packets/s…], "adverts": [n…]}} and the
    per-round differences (with − without, % of a core)."""
    from harness.bench.servers import own_cgroup
    from harness.config import toml_text

    tree = tree or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    results = {v: {"cpu": [], "rate": [], "adverts": []} for v in AGENT_VARIANTS}
    differences = []
    workdir = tempfile.mkdtemp(prefix="kachecks-bench-vrrp-agent-")
    try:
        with testbed("kcva", workdir) as (net, conf, mac):
            env = dict(os.environ, PYTHONPATH=tree,
                       KACHECKS_SYSLOG_SOCKET=os.path.join(workdir, "no-syslog"))
            host, port = LISTENER.rsplit(":", 1)
            net["lvs1"].start([python, "-m", "http.server", "--bind", host, port],
                              log=os.path.join(workdir, "listener.log"))
            checks = [{"name": f"c{i}", "command": ["kachecks-tcp", LISTENER]}
                      for i in range(AGENT_CHECKS)]
            for number in range(rounds):
                samples = {}
                shift = number % len(AGENT_VARIANTS)
                for variant in AGENT_VARIANTS[shift:] + AGENT_VARIANTS[:shift]:
                    tables = {"agent": {"track_dir": os.path.join(workdir, "track"),
                                        "metrics": "", "interval": AGENT_INTERVAL,
                                        "timeout": 2},
                              "check": checks,
                              "spool": {"dir": os.path.join(workdir, "spool")}}
                    if variant != AGENT_VARIANTS[0]:
                        tables["vrrp"] = {"keepalived_conf": str(conf)}
                    config = os.path.join(workdir, "kachecks.toml")
                    with open(config, "w") as handle:
                        handle.write(toml_text(tables))
                    cgroup = own_cgroup(f"kachecks-bench-vrrp-agent-{os.getpid()}")
                    try:
                        sample = _agent_round(net, config, cgroup, mac, window, python, env,
                                              workdir, variant == AGENT_VARIANTS[2])
                    finally:
                        if cgroup:
                            os.rmdir(cgroup)
                    samples[variant] = sample
                    for key, value in sample.items():
                        results[variant][key].append(value)
                    if progress:
                        print(f"round {number + 1}/{rounds} {variant}: {sample}",
                              file=sys.stderr)
                differences.append(samples[AGENT_VARIANTS[1]]["cpu"]
                                   - samples[AGENT_VARIANTS[0]]["cpu"])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results, differences


def _agent_round(net, config, cgroup, mac, window, python, env, workdir, unfiltered=False):
    """One agent (fresh), settled, then ``window`` s of flood: its CPU, the flood's rate,
    the adverts its [vrrp] counted meanwhile. ``unfiltered``: the kernel filter left off."""
    import json

    from harness.peers.netns import Process

    start = ["-c", AGENT_RUNNER] if unfiltered else ["-m", "kachecks"]
    argv = net["lvs1"].argv([python, *start, "agent", "--config", config])
    if cgroup:  # joined before entering the namespace: `ip netns exec` mounts its own /sys
        argv = ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, *argv]
    log = os.path.join(workdir, "agent.log")
    with open(log, "ab") as out:
        agent = Process(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         env=env), argv, log)
    status = os.path.join(workdir, "track", ".kachecks-agent.json")

    def document():
        try:
            with open(status) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def adverts(found):
        pair = (found or {}).get("vrrp") or {}
        return sum(i["adverts"] for i in pair.get("instances", []))

    def settled():
        found = document()
        if not agent.running():
            raise RuntimeError(f"the agent exited: {agent.output()[-500:]}")
        return found and found["state"] == "running" and all(c["runs"] >= 2 and c["up"]
                                                               for c in found["checks"]) \
            and (found["vrrp"] is None or (found["vrrp"]["watching"] and adverts(found) >= 2))

    end = time.monotonic() + 3 * AGENT_INTERVAL + 30
    while not settled():
        if time.monotonic() > end:
            raise RuntimeError(f"the agent did not settle: {agent.output()[-500:]}")
        time.sleep(0.2)
    before_adverts = adverts(document())
    flood = subprocess.Popen(net["flood"].argv([python, "-c", FLOOD, "0", "eth0", mac,
                                                "192.168.8.25", HOSTS["lvs1"], str(window)]),
                             stdout=subprocess.PIPE, text=True)
    before, started = _agent_cpu(cgroup, agent.pid), time.monotonic()
    out, _ = flood.communicate(timeout=window + 30)
    elapsed = time.monotonic() - started
    sample = {"rate": float(out.strip() or 0),
              "cpu": 100 * (_agent_cpu(cgroup, agent.pid) - before) / elapsed}
    time.sleep(1.5)  # the status document follows the counters within a second
    found = document()
    if found["vrrp"] is not None:
        sample["adverts"] = adverts(found) - before_adverts
        problems = [p["code"] for i in found["vrrp"]["instances"] for p in i["problems"]]
        if problems:
            raise RuntimeError(f"the watch saw {problems}: the bench's pair is not healthy")
    agent.stop()
    os.unlink(status)
    return sample


def _agent_cpu(cgroup, pid):
    """CPU seconds of the agent: every thread and child, from its cgroup (exact); else
    /proc/PID/stat's user + system ticks."""
    if cgroup:
        with open(os.path.join(cgroup, "cpu.stat")) as handle:
            return int(handle.readline().split()[1]) / 1e6  # usage_usec
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def render_agent(results, differences, rounds, window, info):
    lines = ["",
             f"{rounds} rounds of {window:g} s per variant, interleaved (the order alternates);"
             " medians (min–max).", "",
             "| variant | flood, packets/s | agent CPU, % of one core | adverts counted |",
             "|---|---:|---:|---:|"]
    for variant in AGENT_VARIANTS:
        row = results[variant]
        adverts = _median(row["adverts"], "{:.0f}") if row["adverts"] else "—"
        lines.append(f"| {variant} | {_median(row['rate'], '{:,.0f}')} |"
                     f" {_median(row['cpu'], '{:.2f}')} | {adverts} |")
    median = statistics.median(differences) if differences else float("nan")
    verdict = "met" if median < TARGET else "NOT met"
    lines += ["", f"[vrrp] as shipped adds {_median(differences, '{:.2f}')} % of one core (with −"
                  f" without, per round): target < {TARGET:g} % {verdict}.",
              "", *(f"- {key}: {value}" for key, value in info), ""]
    return "\n".join(lines) + "\n"
