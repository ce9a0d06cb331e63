"""The base of the small socket peers: one socket, closed on exit of a ``with``; and
the copy loop of the peers that relay (a proxy, a mangler)."""

import socket


class SocketPeer:
    """Holds ``self.sock``; ``with Peer(...) as peer:`` closes it at the end."""

    sock = None

    def close(self):
        """Shut down, then close: on Linux, close() alone does not wake a thread blocked in
        accept() on the socket, which then keeps listening and answers one more client (in
        a later test that was given the same port)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # not connected (a datagram socket) or already shut
            pass
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def pipe(source, sink):
    """Copy ``source`` to ``sink`` until EOF (or an error), then half-close ``sink``."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    try:
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass
