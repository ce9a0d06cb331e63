"""Hand a check run to the resident worker, if one listens; else return None.

Runs before anything heavy is imported, so a check whose libraries cost more
than the interpreter itself (ldap3, ssl) pays only for Python's start, a
UNIX-socket round trip and a fork in the worker. The worker runs the very
same ``main()`` with our stdin/stdout/stderr (passed as file descriptors),
our argv, environment and working directory, under our uid, so the exit-code
contract is identical in both paths; anything odd on the way (no socket, a
refusal, a worker from another version) falls back to running in-process.
"""

import os
import sys

DEFAULT_SOCKET = "/run/kachecks/worker.sock"
MAGIC = b"KAW1"
IN_WORKER = []  # the worker's pid, inside a worker's child
# Replies: b"P<pid>" when the worker's child starts, b"C<code>" when it ends,
# b"X" when the worker declines (the client then runs the check itself).


def socket_path():
    return os.environ.get("KACHECKS_WORKER_SOCKET") or DEFAULT_SOCKET


def encode_request(module, prog, argv):
    env = [k + b"=" + v for k, v in os.environb.items()]
    fields = [MAGIC, module.encode(), prog.encode(), os.fsencode(os.getcwd()),
              str(len(env)).encode(), *env, *(os.fsencode(a) for a in argv)]
    return b"\0".join(fields)


def delegate(module, prog, argv):
    """Exit code of the run in the worker, or None to run in-process."""
    if IN_WORKER:
        return None
    import _socket

    path = socket_path()
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    except OSError:
        return None
    try:
        sock.settimeout(1.0)
        sock.connect(path)
        fds = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in (0, 1, 2))
        sock.sendmsg([encode_request(module, prog, argv)],
                     [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        first = sock.recv(64)
    except OSError:
        sock.close()
        return None
    if not first.startswith(b"P"):
        sock.close()
        return None  # declined (b"X") or gone before starting: run it ourselves
    return _await_code(sock, int(first[1:]))


def _await_code(sock, child):
    """Wait for the child's exit code; forward SIGTERM/SIGINT to it, as keepalived
    would have sent them to an in-process check."""
    import _signal

    def forward(signum, frame):
        try:
            os.kill(child, signum)
        except OSError:
            pass
        sock.settimeout(0.4)  # the child reports within its terminate grace

    _signal.signal(_signal.SIGTERM, forward)
    _signal.signal(_signal.SIGINT, forward)
    sock.settimeout(None)
    try:
        reply = sock.recv(64)
    except OSError:
        reply = b""
    finally:
        sock.close()
    if reply.startswith(b"C"):
        return int(reply[1:])
    return 1  # the child died without a word (watchdog, kill): a failed check
