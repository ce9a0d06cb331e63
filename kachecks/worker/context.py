"""The caller's context: who asked the worker for a run, and becoming them, or Declined.

The worker runs as root (or as one user); a check it runs for a caller must do
exactly what that caller's own process would have done. So a worker's child
takes the caller's uid, gid, supplementary groups and umask (read from
SO_PEERCRED and /proc/<pid>/status when the connection is accepted, while a
pidfd proves the process is still the peer), joins the caller's network, mount,
UTS, IPC and cgroup namespaces (setns, through descriptors opened at accept),
enters a chrooted caller's root and the caller's working directory — and
declines (the client then runs the check itself) when the caller is in another
user, PID or time namespace, holds fewer capabilities than the child would, or
when any of this cannot be read or done. Joining rather than refusing keeps the
worker useful to a keepalived that runs in a ``net_namespace``, and under a
systemd unit whose sandbox gives the worker a mount namespace of its own.

This is the worker's only privileged code: ``Caller.of`` (capture, in the child
before anything of the request is acted on) and ``enter`` (the one way into the
caller's context). Nothing else in kachecks.worker changes credentials.
"""

import os
import signal
import socket

from kachecks.worker.protocol import Declined, peer

SO_PEERPIDFD = getattr(socket, "SO_PEERPIDFD", None)  # Linux >= 6.5, where Python names it
# Namespaces a child enters to act where its caller is; any other kind must be ours.
JOINABLE = {"net": getattr(os, "CLONE_NEWNET", 0x40000000),
            "uts": getattr(os, "CLONE_NEWUTS", 0x04000000),
            "ipc": getattr(os, "CLONE_NEWIPC", 0x08000000),
            "cgroup": getattr(os, "CLONE_NEWCGROUP", 0x02000000),
            "mnt": getattr(os, "CLONE_NEWNS", 0x00020000)}  # last: it resets root and cwd


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
        pid, uid, gid = peer(conn)
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


def enter(caller, own, cwd):
    """Enter the caller's namespaces, credentials and working directory, or raise Declined.

    Closes the caller's namespace and root descriptors whatever happens; ``cwd`` (the
    descriptor the caller passed) stays the caller's to close.
    """
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
