"""VRRP adverts as they travel: decoding (docs/reference.md, "VRRP on the wire").

VRRPv2 (RFC 3768) and VRRPv3 (RFC 5798) over IPv4 and IPv6 (keepalived sends v2 over
IPv6 when ``version 2`` stands above an instance's first IPv6 address), inside
IPsec AH (keepalived's ``auth_type AH``) or not. Both vantage points hand
over an IP packet: the packet socket the whole packet, the raw IPv4 socket
too; the raw IPv6 socket only the VRRP part, its addresses and hop limit
coming from ancillary data (``decode_vrrp``).

A PASS password travels in clear text: an Advert keeps only its digest
(``auth_digest``), never the bytes.
"""

import socket
import struct

PROTO_VRRP = 112
PROTO_AH = 51
TYPE_ADVERT = 1
AUTH_NONE, AUTH_PASS, AUTH_AH = 0, 1, 2
AUTH_NAMES = {AUTH_NONE: "none", AUTH_PASS: "pass", AUTH_AH: "ah"}
MULTICAST = {4: "224.0.0.18", 6: "ff02::12"}
PASS_LENGTH = 8  # keepalived truncates auth_pass to 8 bytes, padded with NULs
_FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}


class Malformed(ValueError):
    """Not a VRRP advert this decoder can read (too short, another protocol)."""


def pass_digest(password_bytes):
    """The digest a PASS password is compared by: the 8 bytes on the wire, hashed."""
    import hashlib

    return hashlib.sha256(password_bytes[:PASS_LENGTH].ljust(PASS_LENGTH, b"\0")).digest()


def address_text(family, packed):
    return socket.inet_ntop(_FAMILY[family], packed)


def address_bytes(text):
    """(family, packed) of an address literal, or ValueError."""
    family = 6 if ":" in text else 4
    try:
        return family, socket.inet_pton(_FAMILY[family], text)
    except OSError:
        raise ValueError(f"not an IP address: {text!r}") from None


def is_multicast(family, packed):
    return packed[0] >= 224 and packed[0] < 240 if family == 4 else packed[0] == 0xFF


class Advert:
    """One VRRP packet as decoded.

    ``family`` 4 or 6; ``source``/``destination`` packed addresses (``src``/
    ``dst`` as text); ``ttl`` the TTL or hop limit; ``ah`` carried in IPsec AH;
    ``version``, ``kind`` (1 = advertisement), ``vrid``, ``priority``;
    ``interval`` in seconds (v2: whole seconds; v3: centiseconds on the wire);
    ``addresses`` packed, in wire order; ``auth_type`` (v2; None in v3);
    ``auth_digest`` (PASS only); ``checksum_ok``; ``checksum_as_v2`` (a v3 IPv4
    advert whose checksum leaves out the pseudo-header: keepalived's
    ``v3_checksum_as_v2``).
    """

    __slots__ = ("family", "source", "destination", "ttl", "ah", "version", "kind", "vrid",
                 "priority", "count", "interval", "addresses", "auth_type", "auth_digest",
                 "checksum_ok", "checksum_as_v2")

    def __init__(self, **fields):
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    @property
    def src(self):
        return address_text(self.family, self.source)

    @property
    def dst(self):
        return address_text(self.family, self.destination)

    def address_texts(self):
        return [address_text(self.family, a) for a in self.addresses]

    @property
    def auth_name(self):
        """``none``, ``pass``, ``ah`` (v2); None for v3, which carries no authentication."""
        if self.version != 2:
            return None
        return "ah" if self.ah else AUTH_NAMES.get(self.auth_type, str(self.auth_type))

    def __repr__(self):
        return (f"Advert(v{self.version} {self.src} > {self.dst} vrid {self.vrid} prio "
                f"{self.priority})")


def checksum(data):
    """The Internet checksum (RFC 1071) of ``data``; 0 when ``data`` holds a valid one."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def decode_ip(packet):
    """The Advert in an IPv4 or IPv6 packet (header included); Malformed otherwise."""
    if len(packet) < 20:
        raise Malformed("shorter than an IP header")
    version = packet[0] >> 4
    if version == 4:
        header = (packet[0] & 0x0F) * 4
        total = int.from_bytes(packet[2:4], "big")
        if header < 20 or total < header or len(packet) < total:
            raise Malformed("truncated IPv4 packet")
        proto, ttl = packet[9], packet[8]
        source, destination = packet[12:16], packet[16:20]
        payload = packet[header:total]
        family = 4
    elif version == 6:
        if len(packet) < 40:
            raise Malformed("shorter than an IPv6 header")
        length = int.from_bytes(packet[4:6], "big")
        proto, ttl = packet[6], packet[7]
        source, destination = packet[8:24], packet[24:40]
        payload = packet[40:40 + length]
        family = 6
    else:
        raise Malformed(f"IP version {version}")
    ah = False
    if proto == PROTO_AH:
        if len(payload) < 12:
            raise Malformed("truncated AH header")
        proto, ah = payload[0], True
        payload = payload[(payload[1] + 2) * 4:]
    if proto != PROTO_VRRP:
        raise Malformed(f"IP protocol {proto}")
    return decode_vrrp(payload, family, source, destination, ttl, ah)


def decode_vrrp(data, family, source, destination, ttl, ah=False):
    """The Advert in ``data`` (the VRRP part alone) with its IP header's fields."""
    if len(data) < 8:
        raise Malformed("shorter than a VRRP header")
    version, kind = data[0] >> 4, data[0] & 0x0F
    vrid, priority, count = data[1], data[2], data[3]
    size = 4 if family == 4 else 16
    end = 8 + count * size
    if version not in (2, 3):
        raise Malformed(f"VRRP version {version}")
    if len(data) < end:
        raise Malformed("truncated address list")
    as_v2, digest = False, None
    if version == 2 and family == 4:
        auth_type, interval = data[4], float(data[5])
        auth = data[end:end + PASS_LENGTH]
        ok = checksum(data[:end + PASS_LENGTH]) == 0
        digest = pass_digest(auth) if auth_type == AUTH_PASS and not ah else None
    else:  # v3; or v2 over IPv6 (`version 2` above the first IPv6 address): no auth data
        auth_type, interval = (data[4], float(data[5])) if version == 2 else \
            (None, (int.from_bytes(data[4:6], "big") & 0x0FFF) / 100)
        body = data[:end]
        ok = checksum(_pseudo(family, source, destination, end) + body) == 0
        as_v2 = not ok and version == 3 and family == 4 and checksum(body) == 0
        ok = ok or as_v2
    addresses = tuple(bytes(data[i:i + size]) for i in range(8, end, size))
    return Advert(family=family, source=bytes(source), destination=bytes(destination), ttl=ttl,
                  ah=ah, version=version, kind=kind, vrid=vrid, priority=priority, count=count,
                  interval=interval, addresses=addresses, auth_type=auth_type, auth_digest=digest,
                  checksum_ok=ok, checksum_as_v2=as_v2)


def _pseudo(family, source, destination, length):
    """The IP pseudo-header of a VRRP checksum (v3; and v2 over IPv6, whose checksum the
    kernel computes)."""
    if family == 4:
        return source + destination + struct.pack("!BBH", 0, PROTO_VRRP, length)
    return source + destination + struct.pack("!I3xB", length, PROTO_VRRP)


# --- crafting (tests, the lab's foreign router, the benchmark) ----------------

def encode(family, source, destination, vrid, priority, addresses, version=None, interval=1.0,
           auth_type=AUTH_NONE, password=b"", ttl=255, bad_checksum=False):
    """An IP packet carrying one advert, as keepalived builds it (text addresses)."""
    version = version or (2 if family == 4 else 3)
    src = address_bytes(source)[1]
    dst = address_bytes(destination)[1]
    packed = b"".join(address_bytes(a)[1] for a in addresses)
    if version == 2 and family == 4:
        auth = password[:PASS_LENGTH].ljust(PASS_LENGTH, b"\0") if auth_type == AUTH_PASS else bytes(8)
        head = struct.pack("!BBBBBBH", 0x21, vrid, priority, len(addresses), auth_type, int(interval), 0)
        body = head + packed + auth
        value = checksum(body)
    else:
        head = struct.pack("!BBBBBBH", 0x21, vrid, priority, len(addresses), auth_type,
                           int(interval), 0) if version == 2 else \
            struct.pack("!BBBBHH", 0x31, vrid, priority, len(addresses),
                        round(interval * 100) & 0x0FFF, 0)
        body = head + packed
        value = checksum(_pseudo(family, src, dst, len(body)) + body)
    if bad_checksum:
        value ^= 0x5A5A
    body = body[:6] + struct.pack("!H", value) + body[8:]
    if family == 4:
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(body), 0, 0, ttl, PROTO_VRRP,
                             0, src, dst)
        header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
        return header + body
    return struct.pack("!IHBB16s16s", 0x60000000, len(body), PROTO_VRRP, ttl, src, dst) + body


# --- what the sockets hand over -----------------------------------------------

WIRE = "wire"  # a packet socket: what reached the interface, before any firewall
STACK = "stack"  # a raw VRRP socket: what keepalived's VRRP stack receives


class Capture:
    """One advert as received: ``time`` (monotonic seconds), ``wall`` (epoch
    seconds), ``vantage`` (WIRE or STACK), ``interface``, ``advert``,
    ``outgoing`` (sent by this host: the packet socket sees its own adverts),
    ``mac`` (the sender's link-layer address, wire vantage, else None)."""

    __slots__ = ("time", "wall", "vantage", "interface", "advert", "outgoing", "mac")

    def __init__(self, time, wall, vantage, interface, advert, outgoing=False, mac=None):
        self.time = time
        self.wall = wall
        self.vantage = vantage
        self.interface = interface
        self.advert = advert
        self.outgoing = outgoing
        self.mac = mac

    def __repr__(self):
        return f"Capture({self.time:.3f} {self.vantage} {self.interface} {self.advert!r})"
