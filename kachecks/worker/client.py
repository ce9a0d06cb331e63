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
the run to us; anything odd after is an error, exit 1 with one line. The
messages are kachecks.worker.protocol's.

``delegate`` is the hand-over kachecks.executables gives ``contract.run``.
"""

import _signal
import _socket
import os
import stat
import time

from kachecks import files, interrupt
from kachecks.errors import WorkerError
from kachecks.worker import protocol

# Seconds the worker has to start the check once we connect (and never past the
# check's own deadline); after that we run it ourselves.
START_TIMEOUT = 1.0
# Seconds past the check's own bound (its --timeout and watchdog) before we give up on it.
REPORT_SLACK = 0.5
# Seconds a signalled check has to report: a third of our own watchdog's grace is
# left for us to report the signal ourselves (the child's watchdog ends it too).
STOP_GRACE = interrupt.GRACE * 2 / 3


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


def delegate(executable, prog, argv, codes, within, deadline, notes):
    """Exit code of the run in the worker, or None to run it in-process.

    ``executable``: ``kachecks-http``; ``codes``: the exit codes this run may
    end with; ``within``: seconds the run may take once started (its
    --timeout and watchdog grace); ``deadline``: the check's own, which a
    worker slow to take the run must not eat; ``notes``: where we say why the
    worker did not run it (--verbose prints them). Raises WorkerError when the
    worker took the run and then broke the protocol, and interrupt.Stop for a
    signal that came before it took the run (or that it did not report in
    time): the check reports that as it would in-process.
    """
    path = protocol.socket_path()
    try:
        why = untrusted(path)
    except OSError:
        return None  # no worker, or nowhere we could check
    if why is not None:
        notes.append(f"kachecks worker not used: {why}")
        return None
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    except OSError:
        return None
    try:
        start_by = time.monotonic() + min(START_TIMEOUT, deadline.expires - time.monotonic())
        request = protocol.request(executable, prog, argv, os.environb)
        return _delegate(sock, path, request, codes, within, start_by, notes)
    finally:
        sock.close()
        # whatever ended the hand-over (a Stop just after blocking them), signals flow again
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, interrupt.SIGNALS)


def _delegate(sock, path, request, codes, within, start_by, notes):
    def start_timeout():
        sock.settimeout(max(start_by - time.monotonic(), 0.001))

    signals = list(interrupt.SIGNALS)
    try:
        # The worker runs the check in our working directory: one we cannot open (a
        # user's check started in root's 0700 home) cannot be handed over.
        cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        notes.append(f"kachecks worker not used: the working directory cannot be opened:"
                     f" {exc.strerror}")
        return None
    try:
        start_timeout()
        sock.connect(path)
        _pid, uid, _gid = protocol.peer(sock)
        if uid not in (0, os.geteuid()):
            notes.append(f"kachecks worker not used: {path} is served by uid {uid}")
            return None
        start_timeout()
        sock.sendmsg([request], protocol.descriptors((0, 1, 2, cwd)))
        start_timeout()
        reply = sock.recv(256)
        child = protocol.read_ready(reply)
        if child is None:
            why = protocol.read_declined(reply)
            if why is not None:
                notes.append(f"kachecks worker declined: {why}")
            return None
        # Until GO the child runs nothing (if we hang up, it never will); a signal must
        # not fall between sending it and knowing that the check now runs there.
        _signal.pthread_sigmask(_signal.SIG_BLOCK, signals)
        sock.send(protocol.GO)
    except OSError:  # no worker, a full one, a silent one: the check runs here
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, signals)
        _note_declined(sock, notes)
        return None
    finally:
        os.close(cwd)
    try:
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, signals)  # a pending one raises Stop
        reply = _report(sock, time.monotonic() + within + REPORT_SLACK)
    except interrupt.Stop as stop:
        return _stop(sock, child, stop, codes)
    except OSError:
        _ask_to_stop(sock, _signal.SIGTERM)
        raise WorkerError(f"no exit code from kachecks worker (child {child}) within"
                          f" {within + REPORT_SLACK:g} s") from None
    return _exit_code(reply, child, codes)


def _report(sock, end):
    """The child's report, waited for in ``interrupt.WAKE`` slices: a signal whose handler
    became pending as the wait began stops the check within one, not at the child's end.
    TimeoutError at ``end``."""
    for timeout in interrupt.slices(end):
        sock.settimeout(timeout)
        try:
            return sock.recv(64)
        except TimeoutError:
            pass
    raise TimeoutError


def _note_declined(sock, notes):
    """A worker that declines at once (no slot for us) may close before it read our
    request: the send or the reset fails first, its reason is still queued."""
    try:
        why = protocol.read_declined(sock.recv(256, _socket.MSG_DONTWAIT))
    except OSError:
        return
    if why is not None:
        notes.append(f"kachecks worker declined: {why}")


def _ask_to_stop(sock, signum):
    try:
        sock.send(protocol.signal(signum))
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
    if reply[:1] != protocol.CODE:
        raise stop
    return _exit_code(reply, child, codes)


def _exit_code(reply, child, codes):
    if not reply:
        raise WorkerError(f"the check in kachecks worker (child {child}) ended without"
                          f" an exit code")
    code = protocol.read_code(reply)
    if code is not None and code in codes:
        return code
    text = reply[:40].decode("ascii", "replace")
    raise WorkerError(f"kachecks worker (child {child}) replied {text!r}, not an exit code"
                      f" this check can return")
