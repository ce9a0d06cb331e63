"""Classic BPF programs that keep every packet but VRRP in the kernel.

A director forwards a lot of traffic on the interface its VRRP instance
uses; a packet socket without a filter would copy every frame to us. These
programs run in the kernel for each packet (SO_ATTACH_FILTER) and let
through only IPv4/IPv6 packets whose protocol is VRRP (112), or IPsec AH (51)
carrying VRRP, and no VLAN-tagged frame (those belong to the VLAN
interface, watched on its own if configured).

The packet socket is a SOCK_DGRAM one: offsets count from the network
header, the EtherType comes from the kernel (SKF_AD_PROTOCOL), so the same
program serves any link type. The program is attached before the socket is
bound to an interface and a protocol, so nothing unfiltered is ever queued.
"""

import array
import socket
import struct

SO_ATTACH_FILTER = 26

# opcodes (linux/filter.h, linux/bpf_common.h)
LD_W_ABS = 0x20
LD_B_ABS = 0x30
LD_B_IND = 0x50
LDX_B_MSH = 0xB1
JEQ_K = 0x15
RET_K = 0x06
SKF_AD_OFF = -0x1000
SKF_AD_PROTOCOL = 0
SKF_AD_VLAN_TAG_PRESENT = 48
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ACCEPT = 0xFFFF  # bytes of the packet kept: all of an advert
PROTO_VRRP = 112
PROTO_AH = 51


def _k(value):
    return value & 0xFFFFFFFF


def assemble(lines):
    """[(code, jt, jf, k)] from ``(label, code, k, jump if true, jump if false)`` lines,
    jumps given as labels (None: the next instruction)."""
    where = {line[0]: i for i, line in enumerate(lines) if line[0]}
    program = []
    for i, (_label, code, k, true, false) in enumerate(lines):
        jt = where[true] - i - 1 if true else 0
        jf = where[false] - i - 1 if false else 0
        program.append((code, jt, jf, _k(k)))
    return program


def packet_program():
    """For a SOCK_DGRAM packet socket: VRRP, or AH carrying VRRP, over IPv4 or IPv6."""
    return assemble([
        (None, LD_W_ABS, SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT, None, None),
        (None, JEQ_K, 0, None, "drop"),  # a tagged frame belongs to its VLAN interface
        (None, LD_W_ABS, SKF_AD_OFF + SKF_AD_PROTOCOL, None, None),
        (None, JEQ_K, ETH_P_IP, None, "ipv6"),
        (None, LD_B_ABS, 9, None, None),  # IPv4 protocol
        (None, JEQ_K, PROTO_VRRP, "accept", None),
        (None, JEQ_K, PROTO_AH, None, "drop"),
        (None, LDX_B_MSH, 0, None, None),  # X = IPv4 header length
        (None, LD_B_IND, 0, None, None),  # AH next header
        (None, JEQ_K, PROTO_VRRP, "accept", "drop"),
        ("ipv6", JEQ_K, ETH_P_IPV6, None, "drop"),
        (None, LD_B_ABS, 6, None, None),  # IPv6 next header
        (None, JEQ_K, PROTO_VRRP, "accept", None),
        (None, JEQ_K, PROTO_AH, None, "drop"),
        (None, LD_B_ABS, 40, None, None),  # AH next header
        (None, JEQ_K, PROTO_VRRP, "accept", "drop"),
        ("accept", RET_K, ACCEPT, None, None),
        ("drop", RET_K, 0, None, None),
    ])


def raw_ah_program():
    """For a raw IPv4 socket of protocol 51: only AH packets that carry VRRP."""
    return assemble([
        (None, LDX_B_MSH, 0, None, None),  # X = IPv4 header length
        (None, LD_B_IND, 0, None, None),  # AH next header
        (None, JEQ_K, PROTO_VRRP, None, "drop"),
        (None, RET_K, ACCEPT, None, None),
        ("drop", RET_K, 0, None, None),
    ])


def attach(sock, program):
    """Attach ``program`` to ``sock`` (the kernel copies it)."""
    code = array.array("B", b"".join(struct.pack("=HBBI", *insn) for insn in program))
    address, _length = code.buffer_info()
    fprog = struct.pack("@HP", len(program), address)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
