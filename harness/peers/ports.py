"""Free loopback ports for servers that must be told their port before they start."""

import socket

from harness.peers.sockets import SocketPeer


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class RefusingPort(SocketPeer):
    """A loopback port that refuses connections and stays so: bound and held, never
    listening (a port merely found free may be taken by any other process meanwhile);
    ``address`` as a check's target says it."""

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.address = f"{host}:{self.sock.getsockname()[1]}"
