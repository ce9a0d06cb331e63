"""The base of the small socket peers: one socket, closed on exit of a ``with``."""


class SocketPeer:
    """Holds ``self.sock``; ``with Peer(...) as peer:`` closes it at the end."""

    sock = None

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
