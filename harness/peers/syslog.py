"""A datagram socket standing in for /dev/log: point KACHECKS_SYSLOG_SOCKET at ``path``."""

import os
import socket

from harness.peers.sockets import SocketPeer


class SyslogSink(SocketPeer):
    """Collects the lines the executables send to syslog.

    ``mode``: permissions of the socket file (0o777 lets a check run as
    another user write to it).
    """

    def __init__(self, path, mode=None):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        if mode is not None:
            os.chmod(self.path, mode)
        self.sock.setblocking(False)

    def messages(self):
        """The lines received since the last call."""
        out = []
        while True:
            try:
                out.append(self.sock.recv(65536).decode("utf-8", "replace"))
            except BlockingIOError:
                return out
