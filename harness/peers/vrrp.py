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
  back as dictionaries, waited on by condition (``Pair.watch`` in
  harness/peers/pair.py starts one on a director or the witness).
- ``keepalived_version()``: the installed keepalived's (2, 2, 7) or (2, 3, 3).
"""

import json
import re
import socket
import subprocess
import threading
import time

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


# --- the reference addresses (harness/peers/pair.py runs the pair) --------------

HOSTS = {"lvs1": "192.168.8.100", "lvs2": "192.168.8.110", "client": "192.168.8.10"}
VIP = "192.168.8.142"
VIP6 = "2001:db8::142"
