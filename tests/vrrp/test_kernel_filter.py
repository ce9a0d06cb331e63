"""The kernel hands the watcher's packet socket VRRP and nothing else (classic BPF).

Packets of every kind go from one namespace to another over the bridge; an unfiltered
packet socket beside the watcher's proves each one reached the interface.
"""

import socket
import struct

import pytest

from harness.peers.netns import Network, cleanup_stale, made_in, run_prefix, wait_for
from harness.peers.vrrp import Sender
from kachecks.vrrp import wire
from kachecks.vrrp.sockets import WireSocket

pytestmark = pytest.mark.netns

A, B = "192.168.8.100", "192.168.8.110"
A6, B6 = "fe80::a", "fe80::b"


def ipv4(proto, payload, src=A, dst=B):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, proto, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    # a valid header checksum: a bridge that calls netfilter drops a bad one
    return header[:10] + struct.pack("!H", wire.checksum(header)) + header[12:] + payload


def ipv6(next_header, payload, src=A6, dst=B6):
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), next_header, 64,
                       socket.inet_pton(socket.AF_INET6, src),
                       socket.inet_pton(socket.AF_INET6, dst)) + payload


def ah(next_header, payload):
    return struct.pack("!BBHII", next_header, 4, 0, 0x100, 1) + bytes(12) + payload


VRRP4 = wire.encode(4, A, "224.0.0.18", 50, 100, ["192.168.8.142"])
VRRP6 = wire.encode(6, A6, "ff02::12", 50, 100, ["2001:db8::142"])
UDP = struct.pack("!HHHH", 5000, 5001, 12, 0) + b"data"
SENT = [
    ("udp", ipv4(17, UDP)),
    ("tcp", ipv4(6, bytes(20))),
    ("icmp", ipv4(1, bytes([8, 0, 0, 0, 0, 0, 0, 0]))),
    ("vrrp", VRRP4),
    ("ah-vrrp", ipv4(51, ah(112, VRRP4[20:]))),
    ("ah-tcp", ipv4(51, ah(6, bytes(20)))),
    ("udp6", ipv6(17, UDP)),
    ("vrrp6", VRRP6),
]


@pytest.fixture
def segment():
    cleanup_stale("kcvf")
    with Network(run_prefix("kcvf"), {"a": A, "b": B}) as net:
        yield net


def drain(sock):
    found = []
    while True:
        try:
            found.append(sock.recv(4096))
        except BlockingIOError:
            return found


def test_only_vrrp_and_ah_carrying_vrrp_reach_the_watcher(segment):
    watcher = made_in(segment["b"].name, lambda: WireSocket("eth0"))
    everything = made_in(segment["b"].name, lambda: socket.socket(
        socket.AF_PACKET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK, socket.htons(0x0003)))
    everything.bind(("eth0", 0x0003))
    sender = Sender(segment["a"])
    try:
        for _name, packet in SENT:
            sender.send(packet, mac=b"\xff" * 6)
        wanted = {packet for _name, packet in SENT}
        seen = set()

        def arrived():
            seen.update(drain(everything))
            return wanted <= seen

        wait_for(arrived, 5, what="every packet on the interface")
        got = [c.advert for c in watcher.read()]
        assert [(a.family, a.ah, a.vrid) for a in got] == [(4, False, 50), (4, True, 50), (6, False, 50)]
        assert watcher.malformed == 0
    finally:
        sender.close()
        watcher.close()
        everything.close()


def test_a_flood_of_other_traffic_never_reaches_the_watcher(segment):
    watcher = made_in(segment["b"].name, lambda: WireSocket("eth0"))
    sender = Sender(segment["a"])
    try:
        for _ in range(2000):
            sender.send(ipv4(17, UDP), mac=b"\xff" * 6)
        sender.send(VRRP4)
        wait_for(lambda: watcher.sock.recv(4096, socket.MSG_PEEK), 5, what="the advert")
        assert [c.advert.vrid for c in watcher.read()] == [50]  # one packet of 2001
    finally:
        sender.close()
        watcher.close()


def test_vrrp_tagged_for_a_vlan_is_not_the_untagged_interface_s(segment):
    """An 802.1Q frame (VLAN 7) carrying an advert: the kernel takes the tag off into
    the packet's metadata, so without the filter's tag test it would look untagged."""
    watcher = made_in(segment["b"].name, lambda: WireSocket("eth0"))
    raw = made_in(segment["a"].name, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
    plain = Sender(segment["a"])
    try:
        source = bytes.fromhex(segment["a"].mac().replace(":", ""))
        frame = (bytes.fromhex("01005e000012") + source + struct.pack("!HHH", 0x8100, 7, 0x0800)
                 + VRRP4)
        raw.sendto(frame, ("eth0", 0))
        plain.send(wire.encode(4, A, "224.0.0.18", 51, 100, ["192.168.8.142"]))
        wait_for(lambda: watcher.sock.recv(4096, socket.MSG_PEEK), 5, what="the untagged advert")
        assert [c.advert.vrid for c in watcher.read()] == [51]
    finally:
        raw.close()
        plain.close()
        watcher.close()
