"""PROXY protocol headers (HAProxy's proxy-protocol.txt, versions 1 and 2).

A backend behind an HAProxy-style listener expects this header before any
other byte; a check that connects directly must send it too, or the
backend rejects the connection. We announce our own connection: source is
the local socket address, destination the peer we connected to.
"""

import _socket

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V2_PROXY_COMMAND = 0x21  # version 2, command PROXY
_V2_FAMILY = {_socket.AF_INET: 0x11, _socket.AF_INET6: 0x21}  # TCP over IPv4 / IPv6


def v1(family, source, destination):
    """``PROXY TCP4 src dst sport dport\\r\\n`` (TCP6 for IPv6)."""
    proto = "TCP6" if family == _socket.AF_INET6 else "TCP4"
    line = f"PROXY {proto} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n"
    return line.encode("ascii")


def v2(family, source, destination):
    """The binary v2 header: signature, PROXY command, TCP, addresses, ports."""
    packed = (_socket.inet_pton(family, source[0]) + _socket.inet_pton(family, destination[0])
              + source[1].to_bytes(2, "big") + destination[1].to_bytes(2, "big"))
    return (V2_SIGNATURE + bytes((_V2_PROXY_COMMAND, _V2_FAMILY[family]))
            + len(packed).to_bytes(2, "big") + packed)


def header(version, sock, family):
    """The header for connected ``sock``, version 1 or 2."""
    build = v1 if version == 1 else v2
    return build(family, sock.getsockname(), sock.getpeername())
