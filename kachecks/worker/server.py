"""The resident worker: the accept loop, its slots, and each child's run.

keepalived forks a check every ``delay_loop`` seconds per real server; an
LDAP check spends most of its CPU importing ldap3 (a TLS check, ssl) before
it sends one byte. ``kachecks worker`` imports what the checks import once
(kachecks.worker.imports reads it from their source), then forks a child for
every connection from ``kachecks.worker.client``.

The parent only accepts, counts and forks: it reads nothing a client sends,
so no client, however slow or silent, holds up another. Beyond MAX_CHILDREN
children at once a client is declined at once and runs its check itself.

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
from kachecks.worker import protocol
from kachecks.worker.client import unsafe_directory
from kachecks.worker.context import Caller, Own, enter
from kachecks.worker.protocol import Declined

# Seconds a client has to send its request once connected (it sends at once).
REQUEST_TIMEOUT = 1.0
# Children at once; beyond that a client is declined at once and runs its check itself.
MAX_CHILDREN = 64


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
            return 0
        try:
            conn.send(protocol.ready(os.getpid()))
            go = conn.recv(8)
        except OSError:
            go = b""
        if go != protocol.GO:
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
    return 0


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
    path = path or protocol.socket_path()
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
                  help=f"listen here (default $KACHECKS_WORKER_SOCKET or"
                       f" {protocol.socket_path()});"
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
