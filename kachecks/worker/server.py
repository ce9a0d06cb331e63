"""The resident worker: the accept loop, its slots, and each child's run.

keepalived forks a check every ``delay_loop`` seconds per real server; an
LDAP check spends most of its CPU importing ldap3 (a TLS check, ssl) before
it sends one byte. ``kachecks worker`` imports what the checks import once
(kachecks.worker.imports reads it from their source), then forks a child for
every connection from ``kachecks.worker.client``.

The parent only accepts, counts and forks: it reads nothing a client sends,
so no client, however slow or silent, holds up another. It has ``slots``
children at once, and at most ``per_uid`` of them (half, by default) for one
caller uid, so that one user allowed on the socket (a member of --group)
cannot hold every slot with connections it keeps open; beyond either bound a
client is declined at once and runs its check itself.

Each child reads its request under a short timeout (the messages are
kachecks.worker.protocol's), takes its caller's context
(kachecks.worker.context) or declines, and runs the same ``contract.run`` as
the executable would have.
"""

import errno
import fcntl
import os
import signal
import socket
import sys
import time

from kachecks import interrupt
from kachecks.checks import contract, registry
from kachecks.status import ExitCode
from kachecks.worker import protocol
from kachecks.worker.client import unsafe_directory
from kachecks.worker.context import Caller, Own, enter
from kachecks.worker.protocol import Declined

# Seconds a client has to send its request once connected (it sends at once).
REQUEST_TIMEOUT = 1.0
# Children at once (--slots); beyond that a client is declined at once and runs its check itself.
SLOTS = 64
# Signals blocked while the accept loop forks (_start says why).
_HELD_ACROSS_FORK = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}


class Slots:
    """The children under way and whose they are: at most ``total`` at once, and
    at most ``per_uid`` (default: half of ``total``) for one caller uid.

    The SIGCHLD handler frees slots between any two bytecodes of the accept
    loop, so ``take`` runs with SIGCHLD blocked; ``refusal`` reads two counts,
    each at once, which a free can only lower.
    """

    def __init__(self, total=SLOTS, per_uid=None):
        self.total = total
        self.per_uid = max(total // 2, 1) if per_uid is None else per_uid
        self._owner = {}  # child pid -> caller uid
        self._held = {}  # caller uid -> children of it under way

    def __len__(self):
        return len(self._owner)

    def refusal(self, uid):
        """Why a caller of ``uid`` gets no slot now, or None."""
        if len(self._owner) >= self.total:
            return "busy"
        if self._held.get(uid, 0) >= self.per_uid:
            return f"busy: uid {uid} holds {self.per_uid} of the {self.total} slots, its share"
        return None

    def take(self, pid, uid):
        self._owner[pid] = uid
        self._held[uid] = self._held.get(uid, 0) + 1

    def free(self, pid):
        uid = self._owner.pop(pid, None)
        if uid is None:
            return
        left = self._held.pop(uid) - 1
        if left:
            self._held[uid] = left


def checks():
    """Executable name -> check name, for every check in the registry (the allow-list)."""
    return {registry.executable(name): name for name in registry.CHECKS}


def preload():
    """Import every check and what it imports; the names, for the start line."""
    from kachecks.worker import imports

    return imports.preload(registry.CHECKS.values())


def prepare(path):
    """Make the socket's directory; refuse one that lets others replace the socket."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o755, exist_ok=True)
    why = unsafe_directory(path, os.geteuid())
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


def serve(sock, slots):
    """Accept and fork until SIGTERM (which raises Stopped)."""
    def reap(signum, frame):
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slots.free(pid)

    signal.signal(signal.SIGCHLD, reap)
    own = Own()
    sock.settimeout(interrupt.WAKE)  # a SIGTERM or SIGCHLD never waits for a client
    while True:
        try:
            conn, _ = sock.accept()
        except TimeoutError:
            continue  # a signal whose handler is pending runs here (interrupt.WAKE)
        except OSError as exc:  # out of descriptors or memory: wait, do not die
            if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM,
                                 errno.ECONNABORTED):
                raise
            time.sleep(0.1)
            continue
        with conn:
            _start(sock, conn, slots, own)


def _start(sock, conn, slots, own):
    """Fork a child for ``conn`` in a free slot of its caller, or decline it at once."""
    try:
        _pid, uid, _gid = protocol.peer(conn)
    except OSError:
        return  # gone already
    why = slots.refusal(uid)
    if why is not None:
        _decline(conn, why)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    # SIGCHLD: a child that ends before it is counted must not stay counted forever.
    # SIGTERM, SIGINT: os.fork() runs Python's fork hooks (logging's, around every fork),
    # and the Stopped (KeyboardInterrupt) a handler raises inside a hook is printed and
    # dropped: the worker would serve on, deaf to that signal. Held back here, it raises
    # as we unblock it.
    signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_ACROSS_FORK)
    try:
        pid = os.fork()
        if pid == 0:
            code = ExitCode.FAILURE
            try:
                sock.close()
                code = _child(conn, own)
            finally:
                os._exit(code)
        slots.take(pid, uid)
    except OSError as exc:
        _decline(conn, f"cannot fork: {exc.strerror}")
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD_ACROSS_FORK)


def _decline(conn, why):
    try:
        conn.send(protocol.declined(why), socket.MSG_DONTWAIT)
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
            name, prog, env, argv = protocol.read_request(payload, checks())
            enter(caller, own, fds[3])
        except Declined as exc:
            _decline(conn, str(exc))
            return ExitCode.OK
        try:
            conn.send(protocol.ready(os.getpid()))
            go = conn.recv(8)
        except OSError:
            go = b""
        if go != protocol.GO:
            return ExitCode.OK  # the client gave up waiting: it runs the check itself
        conn.settimeout(None)
        return _run(conn, fds, name, prog, env, argv)
    except OSError:
        return ExitCode.FAILURE  # the client left before we could read or answer it
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def _receive(conn):
    """(payload, fds, caller context) of one request."""
    payload, ancillary, flags, _ = conn.recvmsg(protocol.MAX_REQUEST,
                                                socket.CMSG_SPACE(protocol.FDS * 4))
    fds = protocol.read_descriptors(ancillary)
    if not payload:
        raise OSError("client hung up")
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) != protocol.FDS:
        for fd in fds:
            os.close(fd)
        raise Declined("malformed request")
    return payload, fds, Caller.of(conn)


def _run(conn, fds, name, prog, env, argv):
    """Run the check as the caller would have; report its exit code on ``conn``."""
    for target, fd in enumerate(fds[:3]):  # stdin, stdout, stderr
        os.dup2(fd, target)
    os.environb.clear()
    os.environb.update(env)
    interrupt.install()  # a signal passed on from here is the check's to report
    _signals_from(conn)
    # no hand-over from here (we are where runs are handed); --verbose says where it ran
    code = contract.run(registry.load(name), argv, prog,
                        notes=[f"run by kachecks worker {os.getppid()}"])
    sys.stdout.flush()
    sys.stderr.flush()
    conn.send(protocol.code(code))
    return ExitCode.OK


def _signals_from(conn):
    """The client's SIGNAL (it was signalled) or its hang-up (it is gone): deliver
    that signal to ourselves, as it would have reached the check in-process."""
    def on_io(signum, frame):
        try:
            message = conn.recv(16, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            message = b""
        wanted = protocol.read_signal(message) or 0
        if wanted in interrupt.SIGNALS or not message:
            os.kill(os.getpid(), wanted or signal.SIGTERM)

    signal.signal(signal.SIGIO, on_io)
    fcntl.fcntl(conn.fileno(), fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(conn.fileno(), fcntl.F_SETFL, fcntl.fcntl(conn.fileno(), fcntl.F_GETFL) | os.O_ASYNC)
    on_io(signal.SIGIO, None)  # anything sent before we listened


def start_line(path, loaded, slots):
    names = ", ".join(sorted(checks()))
    return (f"listening on {path} for {names} (pid {os.getpid()}, {len(loaded)} modules"
            f" preloaded, {slots.total} slots, {slots.per_uid} per caller uid)")


def announce(path, loaded, slots):
    """One line on start: to syslog, and to stderr unless stderr is that same journal."""
    from kachecks import syslogger

    line = start_line(path, loaded, slots)
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


def main(path=None, group=None, slots=None):
    path = path or protocol.socket_path()
    slots = Slots() if slots is None else slots
    try:
        prepare(path)
        loaded = preload()
        sock = listen(path, group)
    except ImportError as exc:
        sys.stderr.write(f"kachecks worker: cannot preload what the checks import: {exc}\n")
        return ExitCode.FAILURE
    except OSError as exc:
        sys.stderr.write(f"kachecks worker: {exc}\n")
        return ExitCode.FAILURE
    signal.signal(signal.SIGTERM, _stop_serving)
    try:
        announce(path, loaded, slots)
        serve(sock, slots)
    except Stopped:
        return ExitCode.OK
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

    from kachecks.clickcommand import Command

    @click.command(name="worker", cls=Command, epilog="""\b
Examples:
  kachecks worker                                 # root-only socket
  kachecks worker --group keepalived_script --socket /run/kachecks-worker/worker.sock
                       # for checks run as that user, with KACHECKS_WORKER_SOCKET set
  kachecks worker --slots 128                     # more runs at once, 64 per caller uid
  kachecks-ldap --uri ldap://192.168.8.101 ... --verbose   # "(run by kachecks worker N)"
""")
    @click.option("--socket", "path", metavar="PATH", default=None,
                  help=f"listen here (default $KACHECKS_WORKER_SOCKET or"
                       f" {protocol.socket_path()});"
                       " its directory must be root's (or yours) and writable by no one else")
    @click.option("--group", metavar="GROUP", default=None,
                  help="let this group's members use the worker (socket mode 0660)")
    @click.option("--slots", metavar="N", type=click.IntRange(1, 4096), default=SLOTS,
                  show_default=True,
                  help="runs at once; a check beyond them is declined and runs in-process")
    @click.option("--slots-per-uid", "per_uid", metavar="N", type=click.IntRange(1, 4096),
                  default=None,
                  help="runs at once for one caller uid (default: half of --slots), so that"
                       " no one user of the socket can take them all")
    def worker(path, group, slots, per_uid):
        """Run checks forked from a warm process (optional accelerator).

        kachecks-ldap, and the TLS modes of kachecks-http and kachecks-tcp,
        hand their run to this worker when its socket exists: the check then
        costs little more than Python's start instead of importing ldap3 or
        ssl every time. Each run is forked into its caller's uid, groups,
        umask, working directory and namespaces. Same options, output and
        exit codes either way; when the worker is absent, not trusted or
        declines (all --slots, or the caller's share of them, taken), the
        check runs in-process (--verbose says which).
        """
        gid = None
        if group is not None:
            import grp

            try:
                gid = grp.getgrnam(group).gr_gid
            except KeyError:
                raise click.BadParameter(f"no such group {group!r}", param_hint="--group") from None
        if per_uid is not None and per_uid > slots:
            raise click.BadParameter(f"{per_uid} is more than --slots {slots}",
                                     param_hint="--slots-per-uid")
        return main(path, gid, Slots(slots, per_uid))

    return worker
