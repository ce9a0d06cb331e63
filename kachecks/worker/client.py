"""Hand a check run to the resident worker, if a trustworthy one listens.

Runs before anything heavy is imported, so a check whose libraries cost more
than the interpreter itself (ldap3, ssl) pays only for Python's start, a
UNIX-socket round trip and a fork in the worker. The worker runs the very
same check with our stdin/stdout/stderr and working directory (passed as
file descriptors), our argv and environment, in our uid, groups and
namespaces, so the exit-code contract is identical in both paths.

What we send includes our environment (KACHECKS_LDAP_PASSWORD…) and our
stdio, so it goes only to a socket that no one but root or we could have
put there, served by a process of root or ours (SO_PEERCRED), decided
before a byte is sent. What comes back is believed only if well formed: an
exit code this run could have returned. Anything odd before the worker
starts the check (no socket, an untrusted one, a refusal, silence) leaves
the run to us; anything odd after is an error, exit 1 with one line.

Protocol (SOCK_SEQPACKET, one message each):
  client -> worker  MAGIC, check, prog, env, argv (NUL-separated) + fds 0, 1, 2, cwd
  worker -> client  b"P<pid>": child <pid> is ready, in our context;  b"X<why>": declined
  client -> worker  b"G": run it (a client that gave up hangs up instead: nothing runs)
  client -> worker  b"S<signum>": we got SIGTERM/SIGINT/SIGHUP, stop as you would have
  worker -> client  b"C<code>": the check's exit code
"""

import _signal
import os
import stat
import sys
import time

from kachecks import files, interrupt
from kachecks.errors import WorkerError

DEFAULT_SOCKET = "/run/kachecks/worker.sock"
MAGIC = b"KAW2"
# Seconds the worker has to start the check once we connect (and never past the
# check's own deadline); after that we run it ourselves.
START_TIMEOUT = 1.0
# Seconds past the check's own bound (its --timeout and watchdog) before we give up on it.
REPORT_SLACK = 0.5
# Seconds a signalled check has to report: a third of our own watchdog's grace is
# left for us to report the signal ourselves (the child's watchdog ends it too).
STOP_GRACE = interrupt.GRACE * 2 / 3
IN_WORKER = []  # the worker's pid, inside a worker's child
NOTES = []  # why the worker did not run this check, for --verbose


def socket_path():
    return os.environ.get("KACHECKS_WORKER_SOCKET") or DEFAULT_SOCKET


def encode_request(check, prog, argv):
    env = [k + b"=" + v for k, v in os.environb.items()]
    fields = [MAGIC, check.encode(), os.fsencode(prog), str(len(env)).encode(), *env,
              *(os.fsencode(a) for a in argv)]
    return b"\0".join(fields)


def untrusted(path):
    """Why a worker socket at ``path`` may not be trusted by us, or None if it may;
    OSError if there is none.

    The socket and every directory above it must belong to root or us; its
    own directory must not be writable by group or others, and the
    directories above only if sticky (as /tmp is). The worker checks its own
    --socket by the same rule, so it never listens where no client would come.
    """
    uid = os.geteuid()
    info = os.lstat(path)  # FileNotFoundError: no worker
    if not stat.S_ISSOCK(info.st_mode):
        return f"{path} is not a socket"
    if info.st_uid not in (0, uid):
        return f"{path} belongs to uid {info.st_uid}"
    return unsafe_directory(path, uid)


def unsafe_directory(path, uid):
    """Why the directories holding ``path`` would let someone else replace it, or None
    (``uid``: ours; kachecks.files.untrusted_path says the rule)."""
    return files.untrusted_path(os.path.dirname(os.path.abspath(path)), ancestors=True)


def delegate(check, prog, argv, codes, within, deadline):
    """Exit code of the run in the worker, or None to run it in-process.

    ``check``: the executable's name (``kachecks-http``); ``codes``: the exit
    codes this run may end with; ``within``: seconds the run may take once
    started (its --timeout and watchdog grace); ``deadline``: the check's own,
    which a worker slow to take the run must not eat. Raises WorkerError when
    the worker took the run and then broke the protocol, and interrupt.Stop
    for a signal that came before it took the run (or that it did not report
    in time): the check reports that as it would in-process.
    """
    if IN_WORKER:
        return None
    path = socket_path()
    try:
        why = untrusted(path)
    except OSError:
        return None  # no worker, or nowhere we could check
    if why is not None:
        NOTES.append(f"kachecks worker not used: {why}")
        return None
    import _socket

    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    except OSError:
        return None
    try:
        start_by = time.monotonic() + min(START_TIMEOUT, deadline.expires - time.monotonic())
        return _delegate(sock, path, encode_request(check, prog, argv), codes, within, start_by)
    finally:
        sock.close()
        # whatever ended the hand-over (a Stop just after blocking them), signals flow again
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, interrupt.SIGNALS)


def _delegate(sock, path, request, codes, within, start_by):
    import _socket

    def start_timeout():
        sock.settimeout(max(start_by - time.monotonic(), 0.001))

    signals = list(interrupt.SIGNALS)
    try:
        start_timeout()
        sock.connect(path)
        _pid, uid, _gid = _peer(sock)
        if uid not in (0, os.geteuid()):
            NOTES.append(f"kachecks worker not used: {path} is served by uid {uid}")
            return None
        cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2, cwd))
            start_timeout()
            sock.sendmsg([request], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        finally:
            os.close(cwd)
        start_timeout()
        child = _ready(sock.recv(256))
        if child is None:
            return None
        # Until b"G" the child runs nothing (if we hang up, it never will); a signal must
        # not fall between sending it and knowing that the check now runs there.
        _signal.pthread_sigmask(_signal.SIG_BLOCK, signals)
        sock.send(b"G")
    except OSError:  # no worker, a full one, a silent one: the check runs here
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, signals)
        return None
    try:
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, signals)  # a pending one raises Stop
        sock.settimeout(within + REPORT_SLACK)
        reply = sock.recv(64)
    except interrupt.Stop as stop:
        return _stop(sock, child, stop, codes)
    except OSError:
        _ask_to_stop(sock, _signal.SIGTERM)
        raise WorkerError(f"no exit code from kachecks worker (child {child}) within"
                          f" {within + REPORT_SLACK:g} s") from None
    return _exit_code(reply, child, codes)


def _peer(sock):
    import _socket

    creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    return tuple(int.from_bytes(creds[i:i + 4], sys.byteorder, signed=True) for i in (0, 4, 8))


def _ready(reply):
    """The pid of the child ready to run the check, or None if the worker declined."""
    if reply[:1] == b"P" and reply[1:].isdigit() and len(reply) < 12:
        return int(reply[1:])
    if reply[:1] == b"X":
        NOTES.append(f"kachecks worker declined: {reply[1:].decode('ascii', 'replace')}")
    return None


def _ask_to_stop(sock, signum):
    try:
        sock.send(b"S%d" % signum)
    except OSError:
        pass


def _stop(sock, child, stop, codes):
    """We were signalled while the child ran: pass it on, and let the child report
    (its status line, its code); if it cannot in time, the signal is ours to report.
    Further signals are only recorded (kachecks.interrupt raises Stop once)."""
    _ask_to_stop(sock, stop.signum)
    try:
        sock.settimeout(STOP_GRACE)
        reply = sock.recv(64)
    except OSError:
        reply = b""
    if reply[:1] != b"C":
        raise stop
    return _exit_code(reply, child, codes)


def _exit_code(reply, child, codes):
    if not reply:
        raise WorkerError(f"the check in kachecks worker (child {child}) ended without"
                          f" an exit code")
    if reply[:1] == b"C" and reply[1:].isdigit() and len(reply) < 8 and int(reply[1:]) in codes:
        return int(reply[1:])
    text = reply[:40].decode("ascii", "replace")
    raise WorkerError(f"kachecks worker (child {child}) replied {text!r}, not an exit code"
                      f" this check can return")
