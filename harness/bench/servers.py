"""The local peers the bench measures against, all on loopback, and the worker it hands runs to.

A threaded HTTP server (a 1 KiB page and a large streamed body), the same over TLS, a
TCP listener that accepts and closes, slapd with the reference tree (a syncrepl
consumer, beside its provider, so that `--provider` runs against the same server as
plain ones), and `kachecks worker` in a cgroup of its own.
"""

import http.server
import os
import socket
import ssl
import threading
import time

from harness.peers import certs
from harness.peers.netns import TornDown
from harness.peers.slapd import Replication
from harness.peers.worker import Worker

SMALL_BODY = b"<html><body>kachecks bench page: " + b"ok " * 300 + b"</body></html>\n"
BLOCK = 1 << 20


class _Handler(http.server.BaseHTTPRequestHandler):
    """/small: a 1 KiB page; /big: ``server.big_size`` bytes streamed from one block."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        big = self.path.startswith("/big")
        size = self.server.big_size if big else len(SMALL_BODY)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        try:
            if not big:
                self.wfile.write(SMALL_BODY)
                return
            block = memoryview(self.server.block)
            left = size
            while left:
                chunk = block[:min(left, len(block))]
                self.connection.sendall(chunk)
                left -= len(chunk)
        except OSError:
            pass  # the client hung up: its business

    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass  # a client that resets (check_tcp, a TLS probe) is not our failure


def _serve(server):
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    return server


def start_http(big_size):
    server = _Server(("127.0.0.1", 0), _Handler)
    server.big_size = big_size
    server.block = (b"kachecks-bench\n" * (BLOCK // 15 + 1))[:BLOCK]
    return _serve(server)


def start_https(workdir):
    cert, key = certs.self_signed(workdir, "127.0.0.1", alt_names=("127.0.0.1",))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.big_size = 0
    server.block = b""
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return _serve(server)


def start_tcp():
    """A listener that accepts and closes, like a service that only needs to be reachable."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)

    def loop():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=loop, daemon=True).start()
    return listener


class Servers(TornDown):
    """Every peer of one bench run; ``ldap`` is a Slapd (a consumer of ``provider``), or
    why none runs (a string)."""

    def __init__(self, big_size, workdir):
        self.big_size = big_size
        self.workdir = workdir
        self.http = self.https = self.tcp = self.ldap = self.provider = None
        self.replication = None

    def up(self):
        self.http = start_http(self.big_size)
        self.https = start_https(self.workdir)
        self.tcp = start_tcp()
        try:
            self.replication = Replication().start()
            self.ldap, self.provider = self.replication.consumer, self.replication.providers[0]
        except Exception as exc:  # no slapd: the other rows still count
            self.replication = None
            self.ldap = f"slapd not started: {type(exc).__name__}: {exc}"[:160]

    def down(self):
        if self.replication is not None:
            self.replication.stop()
        self.replication = self.provider = None
        for server in (self.http, self.https):
            if server is not None:
                server.shutdown()
                server.server_close()
        if self.tcp is not None:
            self.tcp.close()
        self.http = self.https = self.tcp = self.ldap = None


class CgroupWorker(Worker):
    """`kachecks worker` in a cgroup (v2) of its own, so that the CPU its forked
    children spend on our requests is counted: they are not our children, and
    the worker lets the kernel reap them (no wait4 rusage to read)."""

    def __init__(self, command, env, workdir):
        self.cgroup = own_cgroup()
        super().__init__(command, os.path.join(workdir, "worker.sock"), env=env,
                         launch=self._into_cgroup, start_timeout=20)

    def _into_cgroup(self, argv):
        if not self.cgroup:
            return argv
        return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.cgroup, *argv]

    def usage(self):
        """CPU seconds of the worker and all its children so far (None: not measurable)."""
        if not self.cgroup:
            return None
        with open(os.path.join(self.cgroup, "cpu.stat")) as handle:
            return int(handle.readline().split()[1]) / 1e6  # usage_usec

    def settle(self):
        """Wait until the child that served the last request has exited (and been counted)."""
        if not self.cgroup:
            return
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            with open(os.path.join(self.cgroup, "cgroup.procs")) as handle:
                if len(handle.read().split()) <= 1:
                    return
            time.sleep(0.0005)

    def rss_mib(self):
        try:
            with open(f"/proc/{self.pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    def stop(self, timeout=10):
        try:
            return super().stop(timeout)
        finally:
            if self.cgroup:
                try:
                    os.rmdir(self.cgroup)
                except OSError:
                    pass


def own_cgroup(name=None):
    """A fresh cgroup v2 directory we may move a process into (``name``: its own, else one
    per bench process), or None."""
    try:
        with open("/proc/mounts") as handle:
            mounts = [line.split()[1] for line in handle if line.split()[2] == "cgroup2"]
    except OSError:
        return None
    for mount in mounts:
        path = os.path.join(mount, name or f"kachecks-bench-{os.getpid()}")
        try:
            os.mkdir(path)
        except OSError:
            continue
        if os.access(os.path.join(path, "cgroup.procs"), os.W_OK) and \
                os.path.exists(os.path.join(path, "cpu.stat")):
            return path
        os.rmdir(path)
    return None
