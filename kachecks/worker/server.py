"""The resident worker: checks with expensive imports, forked from a warm parent.

keepalived forks a check every ``delay_loop`` seconds per real server; an
LDAP check spends most of its CPU importing ldap3 (a TLS check, ssl) before
it sends one byte.
``kachecks worker`` imports the check modules and their libraries once, then
for each request from ``kachecks.worker.client`` forks a child that takes
the client's stdin/stdout/stderr, argv, environment, working directory and
uid, and runs the same ``main()`` the executable would have run. Children
are reaped by the kernel (SIGCHLD ignored); the socket is root-only by
default (``--group`` opens it to one group, e.g. keepalived_script).
"""

import os
import signal
import socket
import struct
import sys

from kachecks.http import digests
from kachecks.worker import client
from kachecks.worker.client import MAGIC, socket_path

# Only these modules may be run: a request names one, never arbitrary code.
CHECK_MODULES = ("kachecks.checks.http", "kachecks.checks.tcp", "kachecks.checks.ldap")
# Everything the checks import lazily, so a child pays for none of it (the hash
# modules are whichever digests.new(fast_start=True) uses: _sha256 is _sha2 on 3.12+).
PRELOAD = ("ssl", "ldap3", "hashlib",
           *(type(digests.new(name, fast_start=True)).__module__ for name in digests.ALGORITHMS),
           "re", "base64", "binascii", "faulthandler", "encodings.idna", "kachecks.syslogger",
           "kachecks.deadline", "kachecks.net.connect", "kachecks.net.tls", "kachecks.http.fetch",
           "kachecks.checks.tlsopts", "kachecks.checks.replication") + CHECK_MODULES

def decode_request(payload):
    """(module, prog, cwd, env, argv) from the client's bytes, or ValueError."""
    fields = payload.split(b"\0")
    if len(fields) < 5 or fields[0] != MAGIC:
        raise ValueError("not a kachecks worker request")
    module, prog, cwd = fields[1].decode(), fields[2].decode(), os.fsdecode(fields[3])
    count = int(fields[4])
    env = dict(item.split(b"=", 1) for item in fields[5:5 + count])
    argv = [os.fsdecode(a) for a in fields[5 + count:]]
    if module not in CHECK_MODULES:
        raise ValueError(f"module {module!r} is not a check")
    return module, prog, cwd, env, argv


def preload():
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)


def listen(path, group=None):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    if group is not None:
        os.chown(path, -1, group)
        os.chmod(path, 0o660)
    sock.listen(128)
    return sock


def serve(sock, stop_after=None):
    """Accept requests until SIGTERM (or ``stop_after`` requests, for tests)."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    served = 0
    while stop_after is None or served < stop_after:
        try:
            conn, _ = sock.accept()
        except InterruptedError:
            continue
        served += 1
        try:
            _handle(sock, conn)
        except Exception as exc:  # one bad request must not stop the worker
            sys.stderr.write(f"kachecks worker: request dropped: {exc}\n")
        finally:
            conn.close()


def _handle(listener, conn):
    fd_size = socket.CMSG_SPACE(3 * 4)
    payload, ancillary, _, _ = conn.recvmsg(1 << 20, fd_size)
    fds = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += [int.from_bytes(data[i:i + 4], sys.byteorder, signed=True)
                    for i in range(0, len(data) - len(data) % 4, 4)]
    try:
        pid_, uid, gid = struct.unpack("3i", conn.getsockopt(
            socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        if len(fds) != 3 or (uid != os.geteuid() and os.geteuid() != 0):
            conn.send(b"X")
            return
        try:
            request = decode_request(payload)
        except ValueError:
            conn.send(b"X")
            return
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fork() == 0:
            code = 1
            try:
                listener.close()
                code = _child(conn, fds, uid, gid, *request)
            finally:
                os._exit(code)
    finally:
        for fd in fds:
            os.close(fd)


def _child(conn, fds, uid, gid, module, prog, cwd, env, argv):
    """Become the client's check process; report the exit code on ``conn``."""
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    os.setpgid(0, 0)
    if uid != os.geteuid():
        os.setgroups([gid])
        os.setgid(gid)
        os.setuid(uid)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    try:
        os.chdir(cwd)
    except OSError:
        pass
    os.environb.clear()
    os.environb.update(env)
    client.IN_WORKER.append(os.getppid())  # no second hand-over, and --verbose says where
    conn.send(b"P%d" % os.getpid())
    mod = sys.modules[module]
    code = mod.main(argv, prog=prog)
    sys.stdout.flush()
    sys.stderr.flush()
    conn.send(b"C%d" % code)
    return 0


def main(path=None, group=None):
    preload()
    sock = listen(path or socket_path(), group)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        serve(sock)
    finally:
        try:
            os.unlink(sock.getsockname())
        except OSError:
            pass
    return 0


def __getattr__(name):
    """``kachecks.worker.server:worker``, built on first use so click loads only here."""
    if name == "worker":
        return _command()
    raise AttributeError(name)


def _command():
    import click

    @click.command(name="worker", epilog="""\b
Examples:
  kachecks worker                                 # root-only socket
  kachecks worker --group keepalived_script       # for checks run as that user
  KACHECKS_WORKER_SOCKET=/run/kachecks/worker.sock kachecks-ldap --uri ldap://192.168.8.101 ...
""")
    @click.option("--socket", "path", metavar="PATH", default=None,
                  help=f"listen here (default $KACHECKS_WORKER_SOCKET or {socket_path()})")
    @click.option("--group", metavar="GROUP", default=None,
                  help="let this group's members use the worker (socket mode 0660)")
    def worker(path, group):
        """Run checks forked from a warm process (optional accelerator).

        kachecks-ldap, and the TLS modes of kachecks-http and kachecks-tcp,
        hand their run to this worker when its socket exists: the check then
        costs little more than Python's start instead of importing ldap3 or
        ssl every time. Same options, output and exit codes either way; when
        the worker is absent or declines, the check runs in-process.
        """
        gid = None
        if group is not None:
            import grp

            try:
                gid = grp.getgrnam(group).gr_gid
            except KeyError:
                raise click.BadParameter(f"no such group {group!r}", param_hint="--group")
        sys.exit(main(path, gid))

    return worker
