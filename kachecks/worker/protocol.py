"""The wire between a check and ``kachecks worker``: the one place its messages are
made and read, imported by both ends (kachecks.worker.client, kachecks.worker.server).

SOCK_SEQPACKET on a UNIX socket, one message each way at a time:

  client -> worker  the request: MAGIC, executable, prog, len(env), env, argv
                    (NUL-separated), with SCM_RIGHTS descriptors 0, 1, 2 and the cwd
  worker -> client  READY b"P<pid>": child <pid> is ready, in the caller's context;
                    or DECLINED b"X<why>": not run here, the client runs it itself
  client -> worker  GO b"G": run it (a client that gave up hangs up: nothing runs)
  client -> worker  SIGNAL b"S<signum>": the client got SIGTERM/SIGINT/SIGHUP
  worker -> client  CODE b"C<code>": the check's exit code

Either end may be anyone who can reach the socket, so every reader here takes
only what is well formed and bounded, and says None (or raises Declined) for the
rest. Imported by a forked check on its way to the worker: standard library
built-ins only.
"""

import _socket
import os
import sys

DEFAULT_SOCKET = "/run/kachecks/worker.sock"
MAGIC = b"KAW2"  # the request's first field: a request of another version is declined
FDS = 4  # stdin, stdout, stderr, working directory
MAX_REQUEST = 1 << 20  # bytes of one request (argv and environment)
MAX_REASON = 200  # bytes of a DECLINED reason

READY = b"P"
DECLINED = b"X"
GO = b"G"
SIGNAL = b"S"
CODE = b"C"


class Declined(Exception):
    """This request is not run in the worker; the text says why (sent as DECLINED)."""


def socket_path():
    return os.environ.get("KACHECKS_WORKER_SOCKET") or DEFAULT_SOCKET


def peer(sock):
    """(pid, uid, gid) of the process at the other end, from SO_PEERCRED."""
    creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    return tuple(int.from_bytes(creds[i:i + 4], sys.byteorder, signed=True) for i in (0, 4, 8))


# --- the request ---------------------------------------------------------------

def request(executable, prog, argv, environ):
    """The request's bytes: run ``executable`` (``kachecks-http``) as ``prog`` with
    ``argv`` and ``environ`` (bytes -> bytes)."""
    env = [k + b"=" + v for k, v in environ.items()]
    fields = [MAGIC, executable.encode(), os.fsencode(prog), str(len(env)).encode(), *env,
              *(os.fsencode(a) for a in argv)]
    return b"\0".join(fields)


def read_request(payload, checks):
    """(check name, prog, env, argv) from a request's bytes, or Declined.

    ``checks``: executable name -> check name, the only executables a request may name.
    """
    fields = payload.split(b"\0")
    if len(fields) < 4 or fields[0] != MAGIC:
        raise Declined("not a request of this version")
    executable, prog = fields[1].decode("ascii", "replace"), os.fsdecode(fields[2])
    if executable not in checks:
        raise Declined(f"{executable!r} is not a check")
    try:
        count = int(fields[3])
    except ValueError:
        raise Declined("malformed request") from None
    env = dict(item.partition(b"=")[::2] for item in fields[4:4 + count])
    argv = [os.fsdecode(a) for a in fields[4 + count:]]
    return checks[executable], prog, env, argv


def descriptors(fds):
    """The SCM_RIGHTS message that passes ``fds`` (stdin, stdout, stderr, cwd)."""
    data = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
    return [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, data)]


def read_descriptors(ancillary):
    """The descriptors a received message carried (each now ours to close)."""
    return [int.from_bytes(data[i:i + 4], sys.byteorder)
            for level, kind, data in ancillary
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS
            for i in range(0, len(data) - len(data) % 4, 4)]


# --- the replies and the signals --------------------------------------------------

def ready(pid):
    return READY + b"%d" % pid


def declined(why):
    return DECLINED + why.encode("ascii", "replace")[:MAX_REASON]


def signal(signum):
    return SIGNAL + b"%d" % signum


def code(number):
    return CODE + b"%d" % number


def read_ready(reply):
    """The pid of READY, or None (a decline, or anything else)."""
    if reply[:1] == READY and reply[1:].isdigit() and len(reply) < 12:
        return int(reply[1:])
    return None


def read_declined(reply):
    """The reason of DECLINED (the worker's text, not yet fit to print), or None."""
    if reply[:1] == DECLINED:
        return reply[1:].decode("ascii", "replace")
    return None


def read_signal(message):
    """The signal number of SIGNAL, or None."""
    if message[:1] == SIGNAL and message[1:].isdigit() and len(message) < 8:
        return int(message[1:])
    return None


def read_code(reply):
    """The exit code of CODE, or None."""
    if reply[:1] == CODE and reply[1:].isdigit() and len(reply) < 8:
        return int(reply[1:])
    return None
