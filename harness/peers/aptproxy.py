"""An HTTP proxy listening inside a network namespace, forwarding from this machine's.

The install guide's test runs a fresh Debian root inside the reference
deployment's namespaces, which have no route out; apt in it reaches the Debian
mirror through this proxy (``Acquire::http::Proxy "http://127.0.0.1:PORT"``),
as apt behind a site's proxy does. One process holds both ends: the listening
socket is made inside the namespace (setns on this thread), the connections to
the mirror from this machine's own namespace. Plain HTTP requests in absolute
form and CONNECT tunnels are relayed as bytes; nothing is cached or changed.
"""

import ctypes
import os
import socket
import threading

from harness.peers.sockets import pipe

CLONE_NEWNET = 0x40000000


def _setns(fd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def listen_in(netns, host="127.0.0.1"):
    """A listening TCP socket inside network namespace ``netns`` (``ip netns`` name)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            sock = socket.create_server((host, 0))
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)
    return sock


class AptProxy:
    """``with AptProxy("kcig-lvs1") as proxy: proxy.url`` → ``http://127.0.0.1:PORT``."""

    def __init__(self, netns):
        self.netns = netns
        self.sock = None
        self.requests = 0

    @property
    def url(self):
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def __enter__(self):
        self.sock = listen_in(self.netns)
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def _serve(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client):
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            method, target = head.split(b" ", 2)[:2]
            if method == b"CONNECT":
                host, _, port = target.decode().rpartition(":")
                first = b""
                reply = b"HTTP/1.1 200 Connection established\r\n\r\n"
            else:
                authority = target.split(b"://", 1)[1].split(b"/", 1)[0].decode()
                host, _, port = authority.partition(":")
                first, reply = head, b""
            self.requests += 1
            try:
                upstream = socket.create_connection((host, int(port or 80)), timeout=60)
            except OSError as exc:
                client.sendall(f"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                               f"X-Error: {exc}\r\n\r\n".encode())
                return
            with upstream:
                upstream.settimeout(None)
                client.sendall(reply)
                upstream.sendall(first)
                back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
                back.start()
                pipe(client, upstream)
                back.join(600)

