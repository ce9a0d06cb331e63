"""VRRP on a test bridge: crafted adverts, a firewall that drops VRRP, the watcher as a process.

- ``Advertiser``: a router that is not keepalived (a foreign cluster, a mismatched
  peer, or the witness replaying what it likes), sending adverts made by
  kachecks.vrrp.wire.encode from a namespace, every ``interval`` seconds, from
  a thread of this process through a packet socket created in that namespace.
- ``drop_vrrp`` / ``allow_vrrp``: a local firewall dropping IP protocol 112 at a
  director's ingress. This kernel has no ``act_gact`` (``tc … action drop``
  fails), so it is a classic-BPF ``tc`` filter in direct-action mode
  (docs/reference.md, "VRRP on the wire").
- ``Watch``: ``kachecks vrrp watch --json`` running in a namespace, its lines read
  back as dictionaries, waited on by condition.
- ``keepalived_version()``: the installed keepalived's (2, 2, 7) or (2, 3, 3).
- ``Pair``: the reference pair (lvs1, lvs2, a witness); with ``agent(host)`` a
  ``kachecks agent`` watching it from a director (its ``[vrrp]`` table), mailing the
  witness's SMTP sink (``mail()``).
"""

import json
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from harness.peers.keepalived import KEEPALIVED
from harness.peers.netns import IFACE, made_in

# tc's classic BPF "bytecode" (cBPF over the Ethernet frame): the IP protocol / IPv6 next
# header byte (offset 23 / 20) equal to 112 returns 2 (TC_ACT_SHOT), else -1 (go on).
DROP = {
    4: "4,48 0 0 23,21 0 1 112,6 0 0 2,6 0 0 4294967295",
    6: "4,48 0 0 20,21 0 1 112,6 0 0 2,6 0 0 4294967295",
}
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD


def keepalived_version():
    """The installed keepalived's version as a tuple of ints."""
    done = subprocess.run([KEEPALIVED, "--version"], capture_output=True, text=True, timeout=10)
    found = re.search(r"v(\d+)\.(\d+)\.(\d+)", done.stdout + done.stderr)
    return tuple(int(part) for part in found.groups())


def drop_vrrp(ns, families=(4, 6), dev=IFACE):
    """Drop IP protocol 112 arriving at ``dev`` in namespace ``ns`` (what a firewall does)."""
    ns.run(["tc", "qdisc", "add", "dev", dev, "clsact"], check=True)
    for family in families:
        protocol = "ip" if family == 4 else "ipv6"
        ns.run(["tc", "filter", "add", "dev", dev, "ingress", "protocol", protocol, "bpf",
                "bytecode", DROP[family], "da"], check=True)


def allow_vrrp(ns, dev=IFACE):
    ns.run(["tc", "qdisc", "del", "dev", dev, "clsact"], check=True)


def multicast_mac(destination):
    """The Ethernet destination of an IP destination (text): multicast MAC, or broadcast."""
    if ":" in destination:
        packed = socket.inet_pton(socket.AF_INET6, destination)
        return b"\x33\x33" + packed[12:] if packed[0] == 0xFF else b"\xff" * 6
    packed = socket.inet_aton(destination)
    if 224 <= packed[0] < 240:
        return bytes([0x01, 0x00, 0x5E, packed[1] & 0x7F, packed[2], packed[3]])
    return b"\xff" * 6


class Sender:
    """A packet socket in namespace ``ns`` sending whole IP packets out of ``dev``."""

    def __init__(self, ns, dev=IFACE):
        self.dev = dev
        self.sock = made_in(ns.name, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0))

    def send(self, packet, mac=None):
        """Send ``packet`` (IPv4 or IPv6, header included) to ``mac`` (default: from its
        destination: the multicast MAC, else broadcast, which a bridge floods to all)."""
        family = packet[0] >> 4
        if mac is None:
            offset = (16, 20) if family == 4 else (24, 40)
            raw = packet[offset[0]:offset[1]]
            text = socket.inet_ntop(socket.AF_INET if family == 4 else socket.AF_INET6, raw)
            mac = multicast_mac(text)
        proto = ETH_P_IP if family == 4 else ETH_P_IPV6
        self.sock.sendto(packet, (self.dev, proto, 0, 0, mac))

    def close(self):
        self.sock.close()


class Advertiser:
    """Send ``packets()`` (a callable returning the packets of one round) every
    ``interval`` seconds from namespace ``ns`` until stopped; a context manager."""

    def __init__(self, ns, packets, interval=1.0, dev=IFACE):
        self.sender = Sender(ns, dev)
        self.packets = packets
        self.interval = interval
        self.sent = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stopping.is_set():
            for packet in self.packets():
                self.sender.send(packet)
                self.sent += 1
            self.stopping.wait(self.interval)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def stop(self):
        self.stopping.set()
        self.thread.join(5)
        self.sender.close()


class Watch:
    """``kachecks vrrp watch --json ARGS`` in namespace ``ns``; ``events()`` parses its
    output so far; ``wait(predicate, timeout)`` waits for an event that matches."""

    def __init__(self, ns, command, log, *args):
        self.log = log
        self.started = time.time()
        self.proc = ns.start([*command, "vrrp", "watch", "--json", *map(str, args)], log=log)

    def events(self):
        found = []
        for line in self.proc.output().splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    pass  # a line being written
        return found

    def problems(self, state="start"):
        return [e for e in self.events() if e["event"] == "problem" and e["state"] == state]

    def wait(self, predicate, timeout, what="an event"):
        end = time.monotonic() + timeout
        while True:
            for event in self.events():
                if predicate(event):
                    return event
            if time.monotonic() >= end or not self.proc.running():
                tail = "\n".join(self.proc.output().splitlines()[-12:])
                raise TimeoutError(f"no {what} within {timeout} s; last output:\n{tail}")
            time.sleep(0.1)

    def wait_problem(self, code, timeout, state="start"):
        return self.wait(lambda e: e["event"] == "problem" and e["code"] == code
                         and e["state"] == state, timeout, f"{code} {state}")

    def stop(self):
        return self.proc.stop()


class Syslog:
    """What a process sends to syslog at ``path`` (point KACHECKS_SYSLOG_SOCKET there),
    drained by a thread of its own: a Unix datagram socket queues only a few lines
    (net.unix.max_dgram_qlen), and a sender that finds the queue full drops its line."""

    def __init__(self, path):
        from harness.peers.syslog import SyslogSink

        self.sink = SyslogSink(path)
        self.path = self.sink.path
        self.seen = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self):
        while not self.stopping.wait(0.02):
            found = self.sink.messages()
            with self.lock:
                self.seen += found

    def lines(self):
        with self.lock:
            return list(self.seen)

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        self.sink.close()

    def wait(self, needle, timeout):
        """The first line holding ``needle``; AssertionError with the lines after ``timeout``."""
        end = time.monotonic() + timeout
        while True:
            for line in self.lines():
                if needle in line:
                    return line
            if time.monotonic() > end:
                raise AssertionError(f"no syslog line with {needle!r} within {timeout} s:"
                                     f" {self.lines()[-10:]}")
            time.sleep(0.05)


# --- the reference pair -------------------------------------------------------

HOSTS = {"lvs1": "192.168.8.100", "lvs2": "192.168.8.110", "client": "192.168.8.10"}
SMTP_PORT = 2525  # the witness's SMTP sink, on HOSTS["client"]
REPO = Path(__file__).resolve().parents[2]
VIP = "192.168.8.142"
VIP6 = "2001:db8::142"
PRIORITIES = {"lvs1": 100, "lvs2": 50}


class Pair:
    """lvs1 and lvs2 running keepalived with ``configs`` ({director: keepalived.conf text})
    on one bridge, and ``client`` as a witness; a context manager that tears it all down.

    ``check(host, *args)`` runs ``kachecks-vrrp`` in a namespace against that
    director's keepalived.conf (the witness reads lvs1's); ``checks`` runs several at
    once; ``watch(host, *args)`` starts ``kachecks vrrp watch --json``; ``agent(host)``
    starts ``kachecks agent`` with a ``[vrrp]`` table on a director, mailing ``mail()``.
    ``hostnames``: each host its own host name (what a notification's subject shows).
    """

    def __init__(self, prefix, workdir, configs, command, check_command, hostnames=False):
        from harness.peers.netns import Network

        self.net = Network(prefix, HOSTS, hostnames=hostnames)
        self.workdir = workdir
        self.configs = configs
        self.command = command  # argv prefix of `kachecks`
        self.check_command = check_command  # argv prefix of `kachecks-vrrp`
        self.keepalived = {}
        self.watches = []
        self.agents = {}
        self.sink = None

    def __enter__(self):
        from harness.peers.keepalived import Keepalived

        self.net.__enter__()
        try:
            for host, text in self.configs.items():
                self.keepalived[host] = Keepalived(self.net[host], self.workdir / host, text)
            for director in self.keepalived.values():
                director.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for agent in self.agents.values():
            agent.__exit__()
            agent.syslog.close()
        if self.sink is not None:
            self.sink.stop()
        for watch in self.watches:
            watch.stop()
        for director in self.keepalived.values():
            director.stop()
        self.net.__exit__(*exc)
        return False

    def __getitem__(self, host):
        return self.net[host]

    def conf(self, host):
        return self.keepalived.get(host, self.keepalived["lvs1"]).conf

    def argv(self, host, *args):
        return [*self.check_command, "--keepalived-conf", self.conf(host), *map(str, args)]

    def check(self, host, *args, timeout=60):
        return self.net[host].run(self.argv(host, *args), timeout=timeout)

    def checks(self, runs, timeout=60):
        """{host: CompletedProcess-like (returncode, stdout, stderr)} of ``{host: args}``,
        all run at the same time."""
        started = {host: subprocess.Popen(self.net[host].argv(self.argv(host, *args)),
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True)
                   for host, args in runs.items()}
        done = {}
        for host, proc in started.items():
            out, err = proc.communicate(timeout=timeout)
            done[host] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        return done

    def watch(self, host, *args):
        watch = Watch(self.net[host], self.command, self.workdir / f"watch-{host}-{len(self.watches)}.log",
                      "--keepalived-conf", self.conf(host), *args)
        self.watches.append(watch)
        return watch

    def mail(self):
        """The administrators' SMTP sink on the witness (harness.peers.smtp.NamespaceSink),
        started on first use."""
        if self.sink is None:
            from harness.peers.smtp import NamespaceSink

            self.sink = NamespaceSink(self.net["client"], HOSTS["client"], SMTP_PORT,
                                      self.workdir / "mbox", self.workdir / "smtp.log", REPO)
        return self.sink

    def agent_tables(self, host, vrrp=None, spool=None):
        """The tables of ``host``'s kachecks.toml beside [agent]: ``[vrrp]`` (its
        keepalived.conf, plus ``vrrp``; None: no table) and mail to the witness's sink."""
        tables = {"smtp": {"host": HOSTS["client"], "port": SMTP_PORT, "security": "none",
                           "timeout": 5},
                  "mail": {"from": f"kachecks@{host}.example.org", "to": ["admin@example.org"]},
                  "spool": {"dir": str(spool or self.workdir / f"agent-{host}" / "spool"),
                            "batch_window": 0}}
        if vrrp is not None:
            tables["vrrp"] = {"keepalived_conf": str(self.conf(host)), **vrrp}
        return tables

    def agent(self, host, vrrp=None, checks=(), metrics="", **agent):
        """``kachecks agent`` on director ``host`` (harness.peers.agent.AgentProcess), its
        ``[vrrp]`` watching this pair (``vrrp``: keys added to the table), started."""
        from harness.peers.agent import AgentProcess

        self.mail()
        workdir = self.workdir / f"agent-{host}"
        workdir.mkdir(exist_ok=True)
        syslog = Syslog(workdir / "syslog.sock")
        process = AgentProcess(workdir, checks, metrics, launch=self.net[host].argv,
                               command=self.command, env={"KACHECKS_SYSLOG_SOCKET": syslog.path},
                               tables=self.agent_tables(host, vrrp or {}), **agent)
        process.syslog = syslog
        self.agents[host] = process
        return process.start()

    def fetch(self, host, url, timeout=10):
        """GET ``url`` from namespace ``host``: the body (a director's metrics endpoint)."""
        code = ("import sys, urllib.request as u\n"
                "sys.stdout.write(u.urlopen(sys.argv[1], timeout=5).read().decode())")
        done = self.net[host].run([sys.executable, "-c", code, url], timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"GET {url} in {host}: {done.stderr.strip()[-500:]}")
        return done.stdout

    def holds(self, host, address=VIP):
        text = self.net[host].ip("addr", "show", "dev", IFACE).stdout
        return f" {address}/" in text
