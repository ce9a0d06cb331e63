"""The resident worker: checks with expensive imports, forked from a warm parent.

keepalived forks a check every ``delay_loop`` seconds per real server; an
LDAP check spends most of its CPU importing ldap3 (a TLS check, ssl) before
it sends one byte. ``kachecks worker`` imports what the checks import once
(kachecks.worker.imports reads it from their source), then forks a child for
every connection from ``kachecks.worker.client``. The parent only accepts
and forks, so no client, however slow or silent, holds up another; each
child reads its request under a short timeout.

A child acts in its caller's context or not at all: it takes the caller's
uid, gid, supplementary groups and umask (read from SO_PEERCRED and
/proc/<pid>/status when the connection is accepted), joins the caller's
network, mount, UTS, IPC and cgroup namespaces (setns, through descriptors
opened at accept), and declines (the client then runs the check itself)
when the caller is in another user, PID or time namespace, holds fewer
capabilities than the child would, or when any of this cannot be read or
done; a chrooted caller's root directory is entered too. Joining rather
than refusing keeps the worker useful to a keepalived that runs in a
``net_namespace``, and under a systemd unit whose sandbox gives the worker
a mount namespace of its own.
"""

import errno
import fcntl
import os
import signal
import socket
import struct
import sys
import time

from kachecks import interrupt
from kachecks.checks import contract, registry
from kachecks.worker import client
from kachecks.worker.client import MAGIC, socket_path

# Seconds a client has to send its request once connected (it sends at once).
REQUEST_TIMEOUT = 1.0
# Children at once; beyond that a client is declined at once and runs its check itself.
MAX_CHILDREN = 64
MAX_REQUEST = 1 << 20
FDS = 4  # stdin, stdout, stderr, working directory
SO_PEERPIDFD = getattr(socket, "SO_PEERPIDFD", None)  # Linux >= 6.5, where Python names it
# Namespaces a child enters to act where its caller is; any other kind must be ours.
JOINABLE = {"net": getattr(os, "CLONE_NEWNET", 0x40000000),
            "uts": getattr(os, "CLONE_NEWUTS", 0x04000000),
            "ipc": getattr(os, "CLONE_NEWIPC", 0x08000000),
            "cgroup": getattr(os, "CLONE_NEWCGROUP", 0x02000000),
            "mnt": getattr(os, "CLONE_NEWNS", 0x00020000)}  # last: it resets root and cwd


class Declined(Exception):
    """This request is not run here; the message says why (sent to the client)."""


def checks():
    """Executable name -> check name, for every check in the registry (the allow-list)."""
    return {registry.executable(name): name for name in registry.CHECKS}


def decode_request(payload):
    """(check name, prog, env, argv) from the client's bytes, or Declined."""
    fields = payload.split(b"\0")
    if len(fields) < 4 or fields[0] != MAGIC:
        raise Declined("not a request of this version")
    executable, prog = fields[1].decode("ascii", "replace"), os.fsdecode(fields[2])
    if executable not in checks():
        raise Declined(f"{executable!r} is not a check")
    try:
        count = int(fields[3])
    except ValueError:
        raise Declined("malformed request") from None
    env = dict(item.partition(b"=")[::2] for item in fields[4:4 + count])
    argv = [os.fsdecode(a) for a in fields[4 + count:]]
    return checks()[executable], prog, env, argv


def preload():
    """Import every check and what it imports; the names, for the start line."""
    from kachecks.worker import imports

    return imports.preload(registry.CHECKS.values())


def prepare(path):
    """Make the socket's directory; refuse one that lets others replace the socket."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o755, exist_ok=True)
    why = client.unsafe_directory(path, os.geteuid())
    if why is not None:
        raise OSError(f"refusing {path}: {why}; checks would not trust it")


def listen(path, group=None):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
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


def serve(sock):
    """Accept and fork until SIGTERM (which raises Stopped)."""
    children = set()

    def reap(signum, frame):
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            children.discard(pid)

    signal.signal(signal.SIGCHLD, reap)
    own = Own()
    while True:
        try:
            conn, _ = sock.accept()
        except OSError as exc:  # out of descriptors or memory: wait, do not die
            if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM,
                                 errno.ECONNABORTED):
                raise
            time.sleep(0.1)
            continue
        with conn:
            if len(children) >= MAX_CHILDREN:
                _decline(conn, "busy")
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            # a child that ends before it is counted must not stay counted forever
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
            try:
                pid = os.fork()
                if pid == 0:
                    code = 1
                    try:
                        sock.close()
                        code = _child(conn, own)
                    finally:
                        os._exit(code)
                children.add(pid)
            except OSError as exc:
                _decline(conn, f"cannot fork: {exc.strerror}")
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})


def _decline(conn, why):
    try:
        conn.send(b"X" + why.encode("ascii", "replace")[:200], socket.MSG_DONTWAIT)
    except OSError:
        pass


def _child(conn, own):
    """Serve one connection: become the caller's check process, or decline."""
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    os.setpgid(0, 0)  # a Ctrl-C for a worker run in a terminal is not for its checks
    fds = []
    try:
        conn.settimeout(REQUEST_TIMEOUT)
        try:
            payload, fds, caller = _receive(conn)
            name, prog, env, argv = decode_request(payload)
            _become(caller, own, fds[3])
        except Declined as exc:
            _decline(conn, str(exc))
            return 0
        try:
            conn.send(b"P%d" % os.getpid())
            go = conn.recv(8)
        except OSError:
            go = b""
        if go != b"G":
            return 0  # the client gave up waiting: it runs the check itself
        conn.settimeout(None)
        return _run(conn, fds, name, prog, env, argv)
    except OSError:
        return 1  # the client left before we could read or answer it
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def _receive(conn):
    """(payload, fds, caller context) of one request."""
    payload, ancillary, flags, _ = conn.recvmsg(MAX_REQUEST, socket.CMSG_SPACE(FDS * 4))
    fds = [int.from_bytes(data[i:i + 4], sys.byteorder)
           for level, kind, data in ancillary
           if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
           for i in range(0, len(data) - len(data) % 4, 4)]
    if not payload:
        raise OSError("client hung up")
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) != FDS:
        for fd in fds:
            os.close(fd)
        raise Declined("malformed request")
    return payload, fds, Caller.of(conn)


class Own:
    """This worker's namespaces and capabilities, read once: every child compares."""

    def __init__(self):
        self.namespaces = {kind: _identity(os.stat(f"/proc/self/ns/{kind}"))
                           for kind in os.listdir("/proc/self/ns")}
        self.capabilities = int(_status("self")["CapEff"], 16)


def _identity(info):
    return info.st_dev, info.st_ino


class Caller:
    """Who is on the other end: credentials and namespaces, pinned at accept."""

    def __init__(self, uid, gid, groups, umask, capabilities, namespaces, root):
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.umask = umask
        self.capabilities = capabilities
        self.namespaces = namespaces  # kind -> open descriptor of the caller's namespace
        self.root = root  # open descriptor of the caller's root directory

    @classmethod
    def of(cls, conn):
        """Read from /proc while a pidfd proves the process is still the peer."""
        pid, uid, gid = struct.unpack("3i", conn.getsockopt(
            socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        if uid != os.geteuid() and os.geteuid() != 0:
            raise Declined(f"uid {uid} is not this worker's")
        pidfd = _pidfd(conn, pid)
        namespaces = {}
        try:
            status = _status(pid)
            for kind in os.listdir(f"/proc/{pid}/ns"):
                namespaces[kind] = os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
            namespaces["root"] = os.open(f"/proc/{pid}/root",
                                         os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            signal.pidfd_send_signal(pidfd, 0)  # still alive: /proc/<pid> was our peer
            effective = int(status["Uid"].split()[1]), int(status["Gid"].split()[1])
            groups = [int(g) for g in status["Groups"].split()]
            umask, capabilities = int(status["Umask"], 8), int(status["CapEff"], 16)
        except (OSError, KeyError, IndexError, ValueError):
            effective = None
        finally:
            os.close(pidfd)
        if effective != (uid, gid):
            for fd in namespaces.values():
                os.close(fd)
            raise Declined("cannot read the caller's credentials and namespaces")
        root = namespaces.pop("root")
        return cls(uid, gid, groups, umask, capabilities, namespaces, root)


def _pidfd(conn, pid):
    """A descriptor of the peer process: exact with SO_PEERPIDFD; else opened by pid,
    which the credential check in Caller.of backs (the peer waits for our answer,
    so its pid cannot have been reused unless it died within these milliseconds)."""
    if SO_PEERPIDFD is not None:
        try:
            return conn.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
        except OSError:
            pass
    try:
        return os.pidfd_open(pid)
    except OSError:
        raise Declined("cannot pin the caller's process") from None


def _status(pid):
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
        return dict(line.rstrip("\n").partition(":\t")[::2] for line in status)


def _become(caller, own, cwd):
    """Enter the caller's namespaces, credentials and working directory, or raise Declined."""
    # setuid() from root to another uid clears the capabilities; otherwise we keep ours
    keeps = own.capabilities if caller.uid == 0 or os.geteuid() != 0 else 0
    try:
        if keeps & ~caller.capabilities:
            raise Declined("the check would hold capabilities its caller does not")
        to_join = []
        for kind, fd in caller.namespaces.items():
            if _identity(os.fstat(fd)) == own.namespaces.get(kind):
                continue
            if kind not in JOINABLE:
                raise Declined(f"the caller is in another {kind} namespace")
            to_join.append(kind)
        for kind in sorted(to_join, key=list(JOINABLE).index):
            _setns(caller.namespaces[kind], JOINABLE[kind])
        # the caller's root (a chroot), which joining its mount namespace also resets
        if _identity(os.fstat(caller.root)) != _identity(os.stat("/")):
            os.fchdir(caller.root)
            os.chroot(".")
    except OSError as exc:
        raise Declined(f"cannot enter the caller's namespaces and root: {exc.strerror}") from None
    finally:
        for fd in (*caller.namespaces.values(), caller.root):
            os.close(fd)
    if (caller.uid, caller.gid, sorted(caller.groups)) != (
            os.geteuid(), os.getegid(), sorted(os.getgroups())):
        try:
            os.setgroups(caller.groups)
            os.setgid(caller.gid)
            os.setuid(caller.uid)
        except OSError as exc:
            raise Declined(f"cannot take the caller's credentials: {exc.strerror}") from None
    os.umask(caller.umask)
    try:
        os.fchdir(cwd)
    except OSError as exc:
        raise Declined(f"cannot enter the caller's working directory: {exc.strerror}") from None


if hasattr(os, "setns"):  # Python >= 3.12
    _setns = os.setns
else:
    import ctypes

    _libc = ctypes.CDLL(None, use_errno=True)

    def _setns(fd, kind):
        if _libc.setns(fd, kind) != 0:
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number))


def _run(conn, fds, name, prog, env, argv):
    """Run the check as the caller would have; report its exit code on ``conn``."""
    for target, fd in enumerate(fds[:3]):  # stdin, stdout, stderr
        os.dup2(fd, target)
    os.environb.clear()
    os.environb.update(env)
    client.IN_WORKER.append(os.getppid())  # no second hand-over, and --verbose says where
    interrupt.install()  # a signal passed on from here is the check's to report
    _signals_from(conn)
    code = contract.run(registry.load(name), argv, prog)
    sys.stdout.flush()
    sys.stderr.flush()
    conn.send(b"C%d" % code)
    return 0


def _signals_from(conn):
    """The client's b"S<signum>" (it was signalled) or its hang-up (it is gone):
    deliver that signal to ourselves, as it would have reached the check in-process."""
    def on_io(signum, frame):
        try:
            message = conn.recv(16, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            message = b""
        wanted = int(message[1:]) if message[:1] == b"S" and message[1:].isdigit() else 0
        if wanted in interrupt.SIGNALS or not message:
            os.kill(os.getpid(), wanted or signal.SIGTERM)

    signal.signal(signal.SIGIO, on_io)
    fcntl.fcntl(conn.fileno(), fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(conn.fileno(), fcntl.F_SETFL, fcntl.fcntl(conn.fileno(), fcntl.F_GETFL) | os.O_ASYNC)
    on_io(signal.SIGIO, None)  # anything sent before we listened


def start_line(path, loaded):
    names = ", ".join(sorted(checks()))
    return f"listening on {path} for {names} (pid {os.getpid()}, {len(loaded)} modules preloaded)"


def announce(path, loaded):
    """One line on start: to syslog, and to stderr unless stderr is that same journal."""
    from kachecks import syslogger

    line = start_line(path, loaded)
    syslogger.send("kachecks-worker", line, syslogger.LOG_INFO)
    if not _stderr_is_journal():
        sys.stderr.write(f"kachecks worker: {line}\n")
        sys.stderr.flush()
    _notify_systemd(b"READY=1")


def _stderr_is_journal():
    """systemd sets JOURNAL_STREAM=dev:ino for a service whose stderr is the journal."""
    try:
        dev, ino = (int(v) for v in os.environ.get("JOURNAL_STREAM", "").split(":"))
        info = os.fstat(2)
    except (ValueError, OSError):
        return False
    return (info.st_dev, info.st_ino) == (dev, ino)


def _notify_systemd(message):
    """sd_notify(3) for Type=notify: the socket listens, keepalived may start."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message, path)
    except OSError as exc:
        sys.stderr.write(f"kachecks worker: cannot notify systemd: {exc}\n")


def main(path=None, group=None):
    path = path or socket_path()
    try:
        prepare(path)
        loaded = preload()
        sock = listen(path, group)
    except ImportError as exc:
        sys.stderr.write(f"kachecks worker: cannot preload what the checks import: {exc}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"kachecks worker: {exc}\n")
        return 1
    signal.signal(signal.SIGTERM, _stop_serving)
    try:
        announce(path, loaded)
        serve(sock)
    except Stopped:
        return 0
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


class Stopped(BaseException):
    """SIGTERM to the worker: stop accepting (runs under way end on their own)."""


def _stop_serving(signum, frame):
    raise Stopped()


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
  kachecks worker --group keepalived_script --socket /run/kachecks-worker/worker.sock
                       # for checks run as that user, with KACHECKS_WORKER_SOCKET set
  kachecks-ldap --uri ldap://192.168.8.101 ... --verbose   # "(run by kachecks worker N)"
""")
    @click.option("--socket", "path", metavar="PATH", default=None,
                  help=f"listen here (default $KACHECKS_WORKER_SOCKET or {socket_path()});"
                       " its directory must be root's (or yours) and writable by no one else")
    @click.option("--group", metavar="GROUP", default=None,
                  help="let this group's members use the worker (socket mode 0660)")
    def worker(path, group):
        """Run checks forked from a warm process (optional accelerator).

        kachecks-ldap, and the TLS modes of kachecks-http and kachecks-tcp,
        hand their run to this worker when its socket exists: the check then
        costs little more than Python's start instead of importing ldap3 or
        ssl every time. Each run is forked into its caller's uid, groups,
        umask, working directory and namespaces. Same options, output and
        exit codes either way; when the worker is absent, not trusted or
        declines, the check runs in-process (--verbose says which).
        """
        gid = None
        if group is not None:
            import grp

            try:
                gid = grp.getgrnam(group).gr_gid
            except KeyError:
                raise click.BadParameter(f"no such group {group!r}", param_hint="--group")
        return main(path, gid)

    return worker
