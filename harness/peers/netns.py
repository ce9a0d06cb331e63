"""Network namespaces for tests and the lab: hosts on a private bridge, torn down for sure.

Every host is a namespace ``<prefix>-<host>`` with one interface ``eth0`` plugged into
a bridge that lives in its own switch namespace ``<prefix>-sw``: nothing is created in
the root namespace, so deleting the namespaces removes every link and address.
Addresses (192.168.8.0/24 by default, as in the reference deployment) exist only inside
those namespaces.

    with Network("kcx", {"lvs1": "192.168.8.100", "web1": "192.168.8.101"}) as net:
        net["web1"].start(["python3", "-m", "http.server", "80"], log=path)
        net["lvs1"].run(["curl", "-s", "http://192.168.8.101/"])

``cleanup(prefix)`` removes what a crashed run left behind (processes, namespaces).
Needs root and iproute2.
"""

import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path

from harness import signalled
from harness.wait import wait_for  # noqa: F401 - where the namespace tests have imported it from

SWITCH = "sw"
BRIDGE = "br0"
IFACE = "eth0"
CLONE_NEWNET = 0x40000000  # sched.h; os.CLONE_NEWNET from Python 3.12
_made = 0


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def all_namespaces():
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def namespaces(prefix):
    """Names of the existing namespaces that belong to ``prefix``."""
    return [n for n in all_namespaces() if n.startswith(prefix + "-")]


def namespace_pids(name):
    out = _ip("netns", "pids", name, check=False).stdout
    return [int(p) for p in out.split()]


def _kill_all(name, grace=2.0):
    """TERM then KILL every process still inside namespace ``name``."""
    signalled.stop_pids(namespace_pids(name), signal.SIGTERM, grace,
                        what=f"a process in network namespace {name}", strict=False)


def cleanup(prefix):
    """Remove everything a previous (crashed) run under ``prefix`` left: processes, namespaces."""
    names = namespaces(prefix)
    for name in names:
        _kill_all(name)
    for name in names:
        _ip("netns", "del", name, check=False)
    return names


def run_prefix(base):
    """``base`` + this process id, for tests: several checkouts on one machine may run
    the same tests at once, and a fixed prefix would let one run's ``cleanup`` kill
    another's namespaces. ``cleanup_stale(base)`` removes what dead runs left."""
    return f"{base}{os.getpid()}"


def cleanup_stale(base):
    """Remove the namespaces of ``run_prefix(base)`` runs whose process is gone."""
    pattern = re.compile(rf"{re.escape(base)}(\d+)-")
    removed = []
    for pid in sorted({int(m[1]) for n in all_namespaces() if (m := pattern.match(n))}):
        if not Path(f"/proc/{pid}").exists():
            removed += cleanup(f"{base}{pid}")
    return removed


class Process:
    """A background process inside a namespace, in its own process group."""

    def __init__(self, popen, argv, log):
        self.popen = popen
        self.argv = argv
        self.log = log

    @property
    def pid(self):
        return self.popen.pid

    def running(self):
        return self.popen.poll() is None

    def signal(self, sig):
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout=5.0):
        """SIGTERM the group, SIGKILL after ``timeout``; return the exit status."""
        if self.running():
            what = " ".join(map(str, self.argv[:2]))  # argv may hold paths
            signalled.stop(self.popen, signal.SIGTERM, timeout, what=what, strict=False,
                           group=True)
        self.signal(signal.SIGKILL)  # children left in the group
        return self.popen.returncode

    def output(self):
        return Path(self.log).read_text(errors="replace") if self.log else ""


class Namespace:
    """One host: ``exec`` commands in it, start background processes in it.

    With ``hostname`` set, commands also get their own UTS namespace carrying that
    name, so programs that put the host name in what they send (mail subjects,
    syslog) say ``lvs1`` rather than the machine's name.
    """

    def __init__(self, name, address=None, hostname=None, binds=()):
        self.name = name
        self.address = address
        self.hostname = hostname
        self.binds = tuple(binds)  # (file, over this file): what commands here see instead
        self.processes = []

    def argv(self, args):
        args = [str(a) for a in args]
        if self.hostname:
            set_name = 'hostname "$0" && exec "$@"'
            args = ["unshare", "--uts", "--", "sh", "-c", set_name, self.hostname, *args]
        if self.binds:
            # `ip netns exec` runs the command in a mount namespace of its own: the mounts
            # stay there
            mount = ('while [ "$1" != -- ]; do mount --bind "$1" "$2" || exit 1; shift 2; done;'
                     ' shift; exec "$@"')
            args = ["sh", "-c", mount, "sh", *(str(f) for pair in self.binds for f in pair),
                    "--", *args]
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, args, check=False, timeout=30, env=None, **kwargs):
        """Run ``args`` in the namespace and wait; text output captured unless redirected.

        ``env`` adds to this process's environment.
        """
        if env is not None:
            kwargs["env"] = {**os.environ, **{k: str(v) for k, v in env.items()}}
        kwargs.setdefault("capture_output", "stdout" not in kwargs and "stderr" not in kwargs)
        kwargs.setdefault("text", True)
        return subprocess.run(self.argv(args), check=check, timeout=timeout, **kwargs)

    def start(self, args, log=None, env=None, cwd=None):
        """Start ``args`` in the background; stdout+stderr go to file ``log`` (or /dev/null).

        ``env`` adds to (does not replace) this process's environment.
        """
        if env is not None:
            env = {**os.environ, **{k: str(v) for k, v in env.items()}}
        out = open(log, "ab") if log else subprocess.DEVNULL
        try:
            popen = subprocess.Popen(
                self.argv(args),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                cwd=cwd,
            )
        finally:
            if log:
                out.close()
        proc = Process(popen, list(args), log)
        self.processes.append(proc)
        return proc

    def ip(self, *args, check=True):
        return _ip("-n", self.name, *args, check=check)

    def addresses(self, dev=IFACE):
        """IPv4 addresses on ``dev`` (without prefix length)."""
        out = self.ip("-4", "-o", "addr", "show", "dev", dev).stdout
        return [f.split("/")[0] for line in out.splitlines() for f in line.split()[3:4]]

    def mac(self, dev=IFACE):
        out = self.ip("-o", "link", "show", "dev", dev).stdout
        return out.split("link/ether")[1].split()[0]

    def stop_all(self):
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()


def made():
    """How many namespaces this process has made (tests/conftest.py: a test that made one
    must carry the ``netns`` marker)."""
    return _made


def create_namespace(name):
    global _made
    _ip("netns", "add", name)
    _made += 1
    ns = Namespace(name)
    ns.ip("link", "set", "lo", "up")
    return ns


@contextlib.contextmanager
def offline(name, directory):
    """A namespace with loopback only, whose commands resolve names through /etc/hosts
    and a DNS server on that loopback (where nothing listens): no lookup leaves it, not
    even through a resolver reached by a UNIX socket outside it (nss-resolve's
    systemd-resolved). Its resolv.conf and nsswitch.conf are written in ``directory``;
    the namespace is deleted on exit.

        with offline(f"kcld-dns-{os.getpid()}", tmp_path) as ns:
            ns.run(["kachecks-ldap", "--uri", "ldap://no-such-host.invalid", ...])
    """
    directory = Path(directory)
    binds = []
    resolv = directory / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\n")
    if os.path.exists("/etc/resolv.conf"):  # else glibc asks 127.0.0.1 anyway
        binds.append((resolv, "/etc/resolv.conf"))
    if os.path.exists("/etc/nsswitch.conf"):  # else glibc's default for hosts: files dns
        nsswitch = directory / "nsswitch.conf"
        lines = Path("/etc/nsswitch.conf").read_text().splitlines()
        nsswitch.write_text("".join(("hosts: files dns" if line.split(":")[0].strip() == "hosts"
                                     else line) + "\n" for line in lines))
        binds.append((nsswitch, "/etc/nsswitch.conf"))
    ns = create_namespace(name)
    ns.binds = tuple(binds)
    try:
        yield ns
    finally:
        _kill_all(name)
        _ip("netns", "del", name, check=False)


def made_in(name, factory):
    """``factory()`` called with this thread in network namespace ``name`` (an ``ip netns``
    name), then back in its own: the sockets it creates belong to ``name``, wherever
    they are used from."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            return factory()
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)


def _setns(fd):
    if hasattr(os, "setns"):  # Python >= 3.12
        os.setns(fd, os.CLONE_NEWNET)
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


class TornDown:
    """Context manager for things built by ``up()``: ``down()`` runs on exit and if ``up`` fails.

    ``down()`` must cope with a half-built state and with being called twice.
    """

    def __enter__(self):
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc):
        self.down()
        return False


class Network(TornDown):
    """Hosts ``{name: address}`` on one bridge; a context manager that always tears down."""

    def __init__(self, prefix, hosts, prefixlen=24, hostnames=False):
        self.prefix = prefix
        self.hosts = dict(hosts)
        self.prefixlen = prefixlen
        self.hostnames = hostnames
        self.switch = None
        self.nodes = {}

    def __getitem__(self, host):
        return self.nodes[host]

    def up(self):
        cleanup(self.prefix)
        self.switch = create_namespace(f"{self.prefix}-{SWITCH}")
        self.switch.ip("link", "add", BRIDGE, "type", "bridge")
        self.switch.ip("link", "set", BRIDGE, "up")
        for host, address in self.hosts.items():
            self.add_host(host, address)

    def add_host(self, host, address):
        """Create namespace ``<prefix>-<host>`` and plug its eth0 into the bridge."""
        ns = create_namespace(f"{self.prefix}-{host}")
        ns.address = address
        ns.hostname = host if self.hostnames else None
        self.nodes[host] = ns
        port = f"v-{host}"[:15]
        peer = f"h-{host}"[:15]
        self.switch.ip("link", "add", port, "type", "veth", "peer", "name", peer, "netns", ns.name)
        self.switch.ip("link", "set", port, "master", BRIDGE, "up")
        ns.ip("link", "set", peer, "name", IFACE)
        if address:
            ns.ip("addr", "add", f"{address}/{self.prefixlen}", "dev", IFACE)
        ns.ip("link", "set", IFACE, "up")
        return ns

    def down(self):
        """Stop tracked processes, kill stragglers, delete every namespace of the prefix."""
        for ns in self.nodes.values():
            ns.stop_all()
        cleanup(self.prefix)
        self.nodes.clear()
        self.switch = None
