"""The two vantage points on an interface, as non-blocking sockets.

- The **wire**: a packet socket (AF_PACKET, SOCK_DGRAM, every protocol) bound
  to the interface, with a classic BPF program (kachecks.vrrp.bpf) so the
  kernel hands over VRRP and AH-carrying-VRRP only. It sees what reaches the
  interface before any firewall, and this host's own adverts (outgoing).
- The **stack**: a raw socket of IP protocol 112 (51 for ``auth_type AH``)
  per address family, bound to the interface, the VRRP multicast group
  joined: it receives what keepalived's own VRRP socket receives, after the
  firewall.

Each socket's ``read()`` drains what is queued and returns wire.Capture
records, timed by the kernel (SO_TIMESTAMPNS) on the monotonic clock. Opening
needs CAP_NET_RAW: without it, or for an interface that does not exist,
kachecks.errors.Unavailable with one line.
"""

import socket
import struct
import time

from kachecks.errors import Unavailable
from kachecks.vrrp import bpf
from kachecks.vrrp.wire import PROTO_AH, PROTO_VRRP, STACK, WIRE, Capture, Malformed, decode_ip, \
    decode_vrrp

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_MULTICAST = 0
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35  # SCM_TIMESTAMPNS too
IP_PKTINFO = 8
BUFFER = 4096  # an advert is under 1 kB; a longer packet is not one
ANCILLARY = 256
BATCH = 256  # packets read per call at most: a flood cannot starve the caller
_TIMESPEC = struct.Struct("@ll")
NEEDS_PRIVILEGE = ("reading VRRP from the wire needs CAP_NET_RAW: run as root (or give the"
                   " process that capability)")


def interface_index(name):
    """The index of interface ``name``; Unavailable when there is none."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        raise Unavailable(f"{name}: no such interface") from None


def _open(family, kind, proto):
    try:
        return socket.socket(family, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, proto)
    except PermissionError:
        raise Unavailable(NEEDS_PRIVILEGE) from None


def multicast_mac(group):
    """The Ethernet address of a multicast group (packed IPv4 or IPv6)."""
    if len(group) == 4:
        return bytes([0x01, 0x00, 0x5E, group[1] & 0x7F, group[2], group[3]])
    return b"\x33\x33" + group[12:]


class Vantage:
    """One socket of one vantage point on one interface."""

    vantage: "str | None" = None

    def __init__(self, interface, sock):
        self.interface = interface
        self.sock = sock
        self.malformed = 0  # packets the filter let through that are no advert we can read

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        self.sock.close()

    def read(self):
        """Every advert queued now (at most BATCH), as Captures."""
        found = []
        mono, wall = time.monotonic(), time.time()
        for _ in range(BATCH):
            try:
                data, ancillary, _flags, address = self.sock.recvmsg(BUFFER, ANCILLARY)
            except (BlockingIOError, InterruptedError):
                break
            stamp = wall
            info = {}
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = _TIMESPEC.unpack_from(value)
                    stamp = seconds + nanoseconds / 1e9
                else:
                    info[(level, kind)] = value
            try:
                capture = self.capture(data, address, info)
            except Malformed:
                self.malformed += 1
                continue
            if capture is None:
                continue
            capture.wall = stamp
            capture.time = mono - max(0.0, wall - stamp)
            found.append(capture)
        return found

    def capture(self, data, address, info):
        raise NotImplementedError


class WireSocket(Vantage):
    """The packet socket: every VRRP packet on the interface, in or out."""

    vantage = WIRE

    def __init__(self, interface, groups=()):
        index = interface_index(interface)
        sock = _open(socket.AF_PACKET, socket.SOCK_DGRAM, 0)  # protocol 0: nothing queued yet
        try:
            bpf.attach(sock, bpf.packet_program())
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.bind((interface, ETH_P_ALL))
            for group in groups:  # the interface must accept the group's frames
                mreq = struct.pack("iHH8s", index, PACKET_MR_MULTICAST, 6, multicast_mac(group))
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        except OSError as exc:
            sock.close()
            raise Unavailable(f"{interface}: cannot watch it: {exc.strerror}") from None
        super().__init__(interface, sock)

    def capture(self, data, address, info):
        _name, _proto, pkttype, _hatype, mac = address
        return Capture(0.0, 0.0, WIRE, self.interface, decode_ip(data),
                       outgoing=pkttype == PACKET_OUTGOING, mac=mac)


class StackSocket(Vantage):
    """A raw socket of protocol 112 (or 51) for one address family: what the VRRP
    stack of this host receives on the interface."""

    vantage = STACK

    def __init__(self, interface, family, groups=(), proto=PROTO_VRRP):
        self.index = interface_index(interface)
        self.family = family
        af = socket.AF_INET if family == 4 else socket.AF_INET6
        sock = _open(af, socket.SOCK_RAW, proto)
        try:
            if proto == PROTO_AH:
                bpf.attach(sock, bpf.raw_ah_program())
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            if family == 4:
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
                for group in groups:
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                                    struct.pack("4s4si", group, bytes(4), self.index))
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
                for group in groups:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                                    struct.pack("16si", group, self.index))
        except OSError as exc:
            sock.close()
            raise Unavailable(f"{interface}: cannot watch it: {exc.strerror}") from None
        super().__init__(interface, sock)

    def capture(self, data, address, info):
        if self.family == 4:
            pktinfo = info.get((socket.IPPROTO_IP, IP_PKTINFO))
            if pktinfo is not None and struct.unpack_from("i", pktinfo)[0] != self.index:
                return None  # queued before the socket was bound to the interface
            advert = decode_ip(data)
        else:
            pktinfo = info.get((socket.IPPROTO_IPV6, socket.IPV6_PKTINFO))
            hops = info.get((socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT))
            if pktinfo is None:
                return None
            destination, index = struct.unpack_from("16si", pktinfo)
            if index != self.index:
                return None
            source = socket.inet_pton(socket.AF_INET6, address[0].split("%", 1)[0])
            ttl = struct.unpack_from("i", hops)[0] if hops else None
            advert = decode_vrrp(data, 6, source, destination, ttl)
        return Capture(0.0, 0.0, STACK, self.interface, advert)


def open_interface(interface, families, groups, ah=False):
    """The sockets of both vantage points on ``interface``: [WireSocket, StackSocket…].

    ``families``: 4 and/or 6; ``groups``: packed multicast groups to join;
    ``ah``: also a raw socket for IPsec AH (some instance uses auth_type AH).
    """
    opened = []
    try:
        opened.append(WireSocket(interface, groups))
        for family in sorted(families):
            own = [g for g in groups if len(g) == (4 if family == 4 else 16)]
            opened.append(StackSocket(interface, family, own))
            if ah and family == 4:
                opened.append(StackSocket(interface, 4, (), PROTO_AH))
    except BaseException:
        for sock in opened:
            sock.close()
        raise
    return opened
