"""The addresses on each interface, followed through rtnetlink: who holds the VIPs.

keepalived adds an instance's ``virtual_ipaddress`` to the director that is
MASTER and removes it when it leaves MASTER, so "this director holds the
instance" is "its addresses are on its interface". One netlink socket dumps
the table once and then receives every change (RTM_NEWADDR / RTM_DELADDR),
as ``ip monitor address`` does: no polling, and a file descriptor a
resident process can wait on with the VRRP sockets. Needs no privilege.
"""

import errno
import socket
import struct

RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFA_ADDRESS, IFA_LOCAL = 1, 2
_HEADER = struct.Struct("=IHHII")  # nlmsghdr
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg
_ATTR = struct.Struct("=HH")  # rtattr
FAMILIES = {socket.AF_INET: 4, socket.AF_INET6: 6}


class Addresses:
    """Every address of every interface, kept current; ``fileno()`` to wait on.

    ``of(index)`` is the set of packed addresses on an interface now;
    ``read()`` takes the pending changes and returns the indexes of the
    interfaces whose addresses changed.
    """

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        self.sock.bind((0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
        self.by_index = {}
        self.seq = 0
        self.dump()
        self.sock.setblocking(False)

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        self.sock.close()

    def of(self, index):
        """The packed addresses on interface ``index`` now."""
        return frozenset(self.by_index.get(index, ()))

    def dump(self):
        """Read the whole table again (at start, and after the kernel dropped changes)."""
        self.seq += 1
        request = _HEADER.pack(_HEADER.size + 8, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP,
                               self.seq, 0) + struct.pack("=B7x", socket.AF_UNSPEC)
        blocking = self.sock.getblocking()
        self.sock.settimeout(5)
        try:
            self.sock.send(request)
            table = {}
            done = False
            while not done:
                data = self.sock.recv(65536)
                for kind, seq, body in _messages(data):
                    if seq != self.seq:
                        continue  # a change notified while dumping: the dump includes it
                    if kind == NLMSG_DONE:
                        done = True
                    elif kind == NLMSG_ERROR:
                        code = -struct.unpack_from("=i", body)[0]
                        raise OSError(code, f"netlink address dump: {errno.errorcode.get(code, code)}")
                    elif kind == RTM_NEWADDR:
                        parsed = _address(body)
                        if parsed:
                            table.setdefault(parsed[0], set()).add(parsed[1])
        finally:
            self.sock.setblocking(blocking)
        touched = set(self.by_index) | set(table)
        self.by_index = table
        return touched

    def read(self):
        """Apply the changes the kernel sent; the indexes of the interfaces they touched."""
        touched = set()
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return touched
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                return touched | self.dump()  # changes were lost: read the table again
            for kind, _seq, body in _messages(data):
                if kind not in (RTM_NEWADDR, RTM_DELADDR):
                    continue
                parsed = _address(body)
                if not parsed:
                    continue
                index, address = parsed
                current = self.by_index.setdefault(index, set())
                if kind == RTM_NEWADDR:
                    current.add(address)
                else:
                    current.discard(address)
                touched.add(index)


def _messages(data):
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, _flags, seq, _pid = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size:
            break
        yield kind, seq, data[offset + _HEADER.size:offset + length]
        offset += (length + 3) & ~3


def _address(body):
    """(interface index, packed address) of an ifaddrmsg, or None."""
    if len(body) < _IFADDR.size:
        return None
    family, _prefix, _flags, _scope, index = _IFADDR.unpack_from(body)
    if family not in FAMILIES:
        return None
    found = {}
    offset = _IFADDR.size
    while offset + _ATTR.size <= len(body):
        length, kind = _ATTR.unpack_from(body, offset)
        if length < _ATTR.size:
            break
        found[kind] = body[offset + _ATTR.size:offset + length]
        offset += (length + 3) & ~3
    # IPv4: IFA_LOCAL is this host's address (IFA_ADDRESS is the peer's on a point-to-point link)
    address = found.get(IFA_LOCAL) or found.get(IFA_ADDRESS)
    return (index, bytes(address)) if address else None
