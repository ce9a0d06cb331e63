"""A real OpenLDAP ``slapd`` for tests and the lab, owned by the test process.

Debian's slapd runs in the foreground (``-d 0``) as our child, from a
throw-away ``slapd.conf`` and mdb database in a short temporary directory,
holding the reference deployment's tree (``dc=mysite,dc=mydmn,dc=org`` with
``o: mysite.mydmn.org``) plus what the LDAP check's failure cases need:
a bind user, an entry set for ``--min-entries``, a referral, a subtree larger
than the server's size limit and a subtree only bound users may read.

Listeners: plain ``ldap://``, ``ldaps://`` and StartTLS with a CA and a server
certificate made by the ``openssl`` CLI, plus an ``ldapi://`` socket in the
directory that the helpers use for administration. The socket is a file, so
the helpers keep working when slapd is started inside a network namespace
(``prefix=["ip", "netns", "exec", NS]``, ``host=`` an address in it).

Start-up is bounded (``start_timeout``) and fails with slapd's own log;
``stop()`` always reaps the process and removes the directory.

    with Slapd() as ldap:
        ldap.url            # ldap://127.0.0.1:PORT
        ldap.set_attribute(ldap.BASE, "o", "other.example")
        ldap.pause(); ldap.resume(); ldap.kill()

Replication (syncprov, syncrepl, serverID) for the freshness checks:
``Replication`` starts a provider (or two multi-provider ones, server IDs 1
and 2) and a consumer of the first, all loaded with the same tree, the same
entryUUIDs and CSNs, so they start in sync. The consumer's syncrepl is
refreshOnly with an interval of a day: it refreshes when it starts and
never again, so a provider write is a lag the test controls, and
``catch_up()`` (a consumer restart) ends it.

    with Replication(providers=2) as repl:
        csn = repl.write(repl.providers[1])   # a change of SID 002
        repl.wait_for(repl.providers[0], csn) # multi-provider: the other has it too
        repl.consumer.context_csn()            # still without SID 002
        repl.catch_up()
"""

import functools
import glob

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from harness import signalled
from harness.peers.ports import free_port
from harness.peers import certs

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SCHEMA_DIR = Path("/etc/ldap/schema")
# Where distributions put slapd's dynamic modules; the package's file list is asked first.
MODULE_DIRS = ("/usr/lib/ldap", "/usr/lib/*/ldap", "/usr/lib*/openldap", "/usr/libexec/openldap")

BASE = "dc=mysite,dc=mydmn,dc=org"
ORGANIZATION = "mysite.mydmn.org"
ROOT_DN = f"cn=admin,{BASE}"
ROOT_PASSWORD = "root-secret"
BIND_DN = f"uid=monitor,ou=people,{BASE}"
BIND_PASSWORD = "monitor secret"
SERVERS_BASE = f"ou=servers,{BASE}"
SERVER_COUNT = 3  # entries under SERVERS_BASE, for --min-entries
BULK_BASE = f"ou=bulk,{BASE}"
PRIVATE_BASE = f"ou=private,{BASE}"
REFERRAL_DN = f"ou=elsewhere,{BASE}"
REFERRAL_URL = "ldap://ldap.elsewhere.invalid/ou=elsewhere,dc=mydmn,dc=org"
SIZE_LIMIT = 10  # the server's; BULK_BASE holds more entries than this
REFRESH_INTERVAL = "01:00:00:00"  # a refreshOnly consumer's: dd:hh:mm:ss, longer than any test


def _is_ip(host):
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return True
    except OSError:
        return False


def _url_host(host):
    return f"[{host}]" if ":" in host else host


class SlapdError(RuntimeError):
    """slapd could not be set up or did not come up in time (carries its log)."""


class Slapd:
    """One slapd process with the reference tree; see the module docstring.

    ``certs``: a dict from harness.peers.certs.pki (made in the directory if None).
    ``verify_client``: slapd's TLSVerifyClient (never, allow, try, demand).
    ``host``/``port``/``tls_port``: where to listen (free loopback ports by
    default; 389 and 636 when ``prefix`` runs slapd in a namespace of its own).
    The certificate made when ``certs`` is None names ``host`` too.
    ``listen_urls``: overrides the TCP listeners entirely.

    Replication: ``server_id`` (slapd's serverID), ``syncprov`` (a provider),
    ``consume`` (provider URLs this server replicates from, syncrepl as the
    providers' root DN; a provider that also consumes is multi-provider),
    ``refresh`` (refreshOnly, every REFRESH_INTERVAL, or refreshAndPersist)
    and ``tree`` (the LDIF to load, default reference_tree()).
    """

    BASE = BASE

    def __init__(self, host="127.0.0.1", port=None, tls_port=None, listen_urls=None,
                 prefix=(), certs=None, verify_client="never", size_limit=SIZE_LIMIT,
                 start_timeout=10.0, server_id=None, syncprov=False, consume=(),
                 refresh="refreshOnly", tree=None):
        self.host = host
        self.prefix = list(prefix)
        if self.prefix and port is None and tls_port is None:  # a namespace of our own
            port, tls_port = 389, 636
        self._fixed_ports = port is not None or tls_port is not None or listen_urls is not None
        self.port = port
        self.tls_port = tls_port
        self._listen_urls = listen_urls
        self._certs = certs
        self.verify_client = verify_client
        self.size_limit = size_limit
        self.start_timeout = start_timeout
        self.server_id = server_id
        self.syncprov = syncprov
        self.consume = list(consume)
        self.refresh = refresh
        self.tree = tree
        self.dir = None
        self.process = None

    # -- addresses -------------------------------------------------------
    @property
    def url(self):
        """Plain ldap:// URL (StartTLS is offered on it too)."""
        return f"ldap://{_url_host(self.host)}:{self.port}"

    @property
    def ldaps_url(self):
        return f"ldaps://{_url_host(self.host)}:{self.tls_port}"

    @property
    def ldapi_url(self):
        return "ldapi://" + str(self.dir / "ldapi").replace("/", "%2F")

    @property
    def listen_urls(self):
        if self._listen_urls is not None:
            return list(self._listen_urls)
        return [self.url, self.ldaps_url]

    @property
    def ca_file(self):
        return str(self.certs["ca"])

    @property
    def log(self):
        """slapd's stderr so far (for assertion messages)."""
        path = self.dir / "slapd.log" if self.dir else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    # -- life cycle ------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        """Write config and data, load them with slapadd, start and wait for slapd."""
        self.dir = Path(tempfile.mkdtemp(prefix="kcld-"))  # short: ldapi paths max 107 bytes
        try:
            hosts = tuple(dict.fromkeys((self.host, "127.0.0.1", "::1", "localhost")))
            self.certs = self._certs or certs.pki(self.dir / "pki", hosts)
            attempts = 1 if self._fixed_ports else 3
            for attempt in range(attempts):
                if not self._fixed_ports:
                    self.port = free_port(host=self.host, family=_family(self.host))
                    self.tls_port = free_port(host=self.host, family=_family(self.host))
                self._write_config()
                if self._launch():
                    return self
                if "Address already in use" not in self.log or attempt == attempts - 1:
                    raise SlapdError(f"slapd did not start within {self.start_timeout:g} s;"
                                     f" log:\n{self.log[-3000:]}")
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self):
        db = self.dir / "db"
        shutil.rmtree(db, ignore_errors=True)
        db.mkdir()
        conf = str(self.dir / "slapd.conf")
        load = subprocess.run([SLAPADD, "-q", "-f", conf, "-l", str(self.dir / "data.ldif")],
                              capture_output=True, text=True, timeout=30)
        if load.returncode != 0:
            raise SlapdError(f"slapadd failed: {load.stderr.strip()}")
        return self._run("wb")

    def restart(self):
        """Stop and start again on the same ports with the same database.

        A refreshOnly consumer refreshes when it starts: this is how a test
        lets it catch up.
        """
        self._reap()
        if not self._run("ab"):
            raise SlapdError(f"slapd did not restart within {self.start_timeout:g} s;"
                             f" log:\n{self.log[-3000:]}")

    def _run(self, log_mode):
        conf = str(self.dir / "slapd.conf")
        with open(self.dir / "slapd.log", log_mode) as log:
            self.process = subprocess.Popen(
                [*self.prefix, SLAPD, "-d", "0", "-f", conf,
                 "-h", " ".join([*self.listen_urls, self.ldapi_url])],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if self._answers():
                return True
            time.sleep(0.05)
        self._reap()
        return False

    def _answers(self):
        probe = subprocess.run(
            ["ldapsearch", "-x", "-LLL", "-o", "nettimeout=1", "-H", self.ldapi_url,
             "-b", BASE, "-s", "base", "dn"],
            capture_output=True, timeout=5)
        return probe.returncode == 0

    def stop(self):
        """Terminate (SIGCONT first, in case it is paused), reap, remove files."""
        self._reap()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def _reap(self):
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.send_signal(signal.SIGCONT)  # a paused one cannot act on SIGTERM
        except ProcessLookupError:
            return
        signalled.stop(proc, signal.SIGTERM, 5, what="slapd", strict=False)

    # -- faults ----------------------------------------------------------
    def pause(self, within=5.0):
        """SIGSTOP: the kernel still accepts TCP connections, LDAP never answers.

        Returns once the kernel reports the process stopped: the signal is
        delivered asynchronously, and a request sent before that is answered.
        """
        self.process.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with open(f"/proc/{self.process.pid}/stat") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] in ("T", "t"):
                    return
            time.sleep(0.01)
        raise SlapdError(f"slapd did not stop within {within:g} s of SIGSTOP")

    def resume(self):
        self.process.send_signal(signal.SIGCONT)

    def kill(self):
        """SIGKILL and reap: established connections are reset, new ones refused."""
        signalled.stop(self.process, signal.SIGKILL, 5, what="slapd")

    @property
    def pid(self):
        return self.process.pid

    # -- data ------------------------------------------------------------
    def modify(self, ldif):
        """Apply an LDIF change record (ldapmodify as the root DN, over ldapi)."""
        done = subprocess.run(
            ["ldapmodify", "-x", "-H", self.ldapi_url, "-D", ROOT_DN, "-w", ROOT_PASSWORD],
            input=ldif, capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            raise SlapdError(f"ldapmodify failed ({done.returncode}): {done.stderr.strip()}")

    def set_attribute(self, dn, attribute, *values):
        """Replace every value of ``attribute`` on ``dn``."""
        lines = [f"dn: {dn}", "changetype: modify", f"replace: {attribute}"]
        lines += [f"{attribute}: {v}" for v in values]
        self.modify("\n".join(lines) + "\n")

    def context_csn(self):
        """The contextCSN values on BASE (over ldapi, as the root DN), sorted."""
        done = subprocess.run(
            ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", self.ldapi_url,
             "-D", ROOT_DN, "-w", ROOT_PASSWORD, "-b", BASE, "-s", "base", "contextCSN"],
            capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            raise SlapdError(f"ldapsearch failed ({done.returncode}): {done.stderr.strip()}")
        return sorted(line.split(": ", 1)[1] for line in done.stdout.splitlines()
                      if line.startswith("contextCSN: "))

    def write(self, dn=SERVERS_BASE):
        """Change the description of ``dn``; returns the CSN of that change.

        On a provider the change gets this server's ID; the CSN is its
        contextCSN value for that ID afterwards.
        """
        before = set(self.context_csn())
        self.set_attribute(dn, "description", f"changed at {time.time():.6f}")
        new = [csn for csn in self.context_csn() if csn not in before]
        if len(new) != 1:
            raise SlapdError(f"expected one new contextCSN value, got {new}")
        return new[0]

    def has(self, csn, within=10.0):
        """Wait until this server holds ``csn`` (its SID's contextCSN at least as new)."""
        sid = csn.split("#")[2]
        deadline = time.monotonic() + within
        while True:
            mine = [c for c in self.context_csn() if c.split("#")[2] == sid]
            if mine and mine[0] >= csn:  # fixed-width fields: text order is CSN order
                return
            if time.monotonic() > deadline:
                raise SlapdError(f"{self.url} has {mine or 'no CSN'} for SID {sid},"
                                 f" not {csn}, after {within:g} s")
            time.sleep(0.05)

    # -- configuration ---------------------------------------------------
    def _write_config(self):
        c = self.certs
        schemas = "\n".join(f"include {SCHEMA_DIR / n}.schema"
                            for n in ("core", "cosine", "inetorgperson"))
        modules = module_config("back_mdb", *(["syncprov"] if self.syncprov else []))
        server_id = f"serverID {self.server_id}\n" if self.server_id is not None else ""
        (self.dir / "slapd.conf").write_text(f"""\
{schemas}
{modules}
{server_id}pidfile {self.dir}/slapd.pid
argsfile {self.dir}/slapd.args
loglevel none
sizelimit {self.size_limit}
TLSCACertificateFile {c['ca']}
TLSCertificateFile {c['server_cert']}
TLSCertificateKeyFile {c['server_key']}
TLSVerifyClient {self.verify_client}

database mdb
maxsize 16777216
suffix "{BASE}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PASSWORD}
directory {self.dir}/db
access to attrs=userPassword by anonymous auth by * none
access to dn.subtree="{PRIVATE_BASE}" by users read by * none
access to * by * read
{self._replication_config()}""")
        (self.dir / "data.ldif").write_text(self.tree if self.tree is not None
                                            else reference_tree())

    def _replication_config(self):
        lines = []
        for rid, url in enumerate(self.consume, 1):
            interval = f" interval={REFRESH_INTERVAL}" if self.refresh == "refreshOnly" else ""
            lines.append(f'syncrepl rid={rid:03d} provider={url} type={self.refresh}{interval}'
                         f' searchbase="{BASE}" bindmethod=simple binddn="{ROOT_DN}"'
                         f' credentials={ROOT_PASSWORD} retry="1 +" timeout=5')
        if self.syncprov and self.consume:
            lines.append("multiprovider on")
        if self.syncprov:
            lines.append("overlay syncprov")
        return "".join(line + "\n" for line in lines)


@functools.lru_cache(maxsize=None)
def _static_modules():
    """Backends and overlays built into this slapd (``slapd -VVV`` lists them)."""
    out = subprocess.run([SLAPD, "-VVV"], capture_output=True, text=True, timeout=10)
    names, listing = set(), False
    for line in (out.stdout + out.stderr).splitlines():
        if line.startswith("Included static"):
            listing = True
        elif listing and line.startswith((" ", "\t")) and line.strip():
            names.add(line.strip())
        else:
            listing = False
    return names


@functools.lru_cache(maxsize=None)
def _module_dir(module):
    """The directory holding slapd module ``module`` (back_mdb, syncprov)."""
    files = subprocess.run(["dpkg-query", "-L", "slapd"], capture_output=True, text=True,
                           timeout=20).stdout.splitlines() if shutil.which("dpkg-query") else []
    candidates = [f for f in files if os.path.basename(f) in (f"{module}.la", f"{module}.so")]
    for pattern in MODULE_DIRS:
        candidates += glob.glob(f"{pattern}/{module}.la") + glob.glob(f"{pattern}/{module}.so")
    for path in candidates:
        if os.path.exists(path):
            return os.path.dirname(path)
    raise SlapdError(f"no slapd module {module} (looked in slapd's file list and {MODULE_DIRS})")


def module_config(*modules):
    """``modulepath``/``moduleload`` lines for what this slapd does not have built in."""
    static = _static_modules()
    lines = []
    for module in modules:
        if module.removeprefix("back_") in static:
            continue
        folder = _module_dir(module)
        if f"modulepath {folder}" not in lines:
            lines.append(f"modulepath {folder}")
        lines.append(f"moduleload {module}")
    return "\n".join(lines)


def _die_with_parent():
    """prctl(PR_SET_PDEATHSIG, SIGKILL): a killed test run leaves no slapd behind.

    It follows the thread that started slapd, so start it from a long-lived one.
    """
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def _family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def reference_tree():
    """LDIF of the reference deployment's tree plus the test entries."""
    entries = [
        f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\n"
        f"dc: mysite\no: {ORGANIZATION}\n",
        f"dn: {ROOT_DN}\nobjectClass: organizationalRole\ncn: admin\n",
    ]
    for ou in ("people", "servers", "bulk", "private"):
        entries.append(f"dn: ou={ou},{BASE}\nobjectClass: organizationalUnit\nou: {ou}\n")
    entries.append(f"dn: {BIND_DN}\nobjectClass: inetOrgPerson\nuid: monitor\ncn: monitor\n"
                   f"sn: Monitor\nuserPassword: {BIND_PASSWORD}\n")
    for i in range(1, SERVER_COUNT + 1):
        entries.append(f"dn: cn=ldap{i},{SERVERS_BASE}\nobjectClass: device\ncn: ldap{i}\n"
                       f"description: replica {i}\n")
    for i in range(SIZE_LIMIT + 5):
        entries.append(f"dn: cn=item{i},{BULK_BASE}\nobjectClass: device\ncn: item{i}\n")
    entries.append(f"dn: cn=secret,{PRIVATE_BASE}\nobjectClass: device\ncn: secret\n"
                   f"description: only for bound users\n")
    entries.append(f"dn: {REFERRAL_DN}\nobjectClass: referral\nobjectClass: extensibleObject\n"
                   f"ou: elsewhere\nref: {REFERRAL_URL}\n")
    return "\n".join(entries)


def csn(when, sid=1, count=0):
    """A CSN as slapd writes it: ``YYYYmmddHHMMSS.uuuuuuZ#count#sid#000000``."""
    seconds, micros = divmod(round(when * 1_000_000), 1_000_000)
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(seconds))
    return f"{stamp}.{micros:06d}Z#{count:06x}#{sid:03x}#000000"


def replicated_tree(sid=1, when=None):
    """reference_tree() as written by server ``sid`` at ``when``: every entry with its
    entryUUID and entryCSN, the suffix with the contextCSN, so that servers loaded with
    it start in sync."""
    import uuid

    when = time.time() if when is None else when
    entries = []
    for count, entry in enumerate(reference_tree().split("\n\n")):
        dn = entry.split("\n", 1)[0].removeprefix("dn: ")
        entries.append(entry.rstrip("\n") + f"\nentryUUID: {uuid.uuid5(uuid.NAMESPACE_X500, dn)}"
                       f"\nentryCSN: {csn(when, sid, count)}\n")
    entries[0] += f"contextCSN: {csn(when, sid, len(entries) - 1)}\n"
    return "\n".join(entries)


class Replication:
    """Provider(s) and a consumer on loopback; see the module docstring.

    ``providers``: 1 (server ID 1) or 2 (multi-provider, IDs 1 and 2, each
    consuming the other with refreshAndPersist). ``consumer`` replicates from
    ``providers[0]`` (refreshOnly, once at start). ``plain`` is a server with
    the same tree and no replication at all (not a replica), when asked for.
    ``written``: Unix time of the tree's CSNs (default now; a day ago makes
    the first write a quiet day's first).
    """

    def __init__(self, providers=1, certs=None, plain=False, written=None):
        if providers not in (1, 2):
            raise ValueError("one provider or two (multi-provider)")
        tree = replicated_tree(sid=1, when=written)
        ports = [(free_port(), free_port()) for _ in range(providers + 1)]
        urls = [f"ldap://127.0.0.1:{port}" for port, _ in ports]
        self.providers = [
            Slapd(port=port, tls_port=tls_port, certs=certs, server_id=i + 1, syncprov=True,
                  consume=[u for u in urls[:providers] if u != urls[i]],
                  refresh="refreshAndPersist", tree=tree)
            for i, (port, tls_port) in enumerate(ports[:providers])]
        self.consumer = Slapd(port=ports[-1][0], tls_port=ports[-1][1], certs=certs,
                              consume=[urls[0]], tree=tree)
        self.plain = Slapd(certs=certs) if plain else None

    @property
    def servers(self):
        return [*self.providers, self.consumer, *([self.plain] if self.plain else [])]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        try:
            for server in self.servers:
                server.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        for server in self.servers:
            server.stop()

    def write(self, provider=None, dn=SERVERS_BASE):
        """A change of ``dn`` on ``provider`` (default: the first); returns its CSN."""
        return (provider or self.providers[0]).write(dn)

    def wait_for(self, server, csn, within=10.0):
        server.has(csn, within)

    def in_sync(self):
        """The consumer holds every provider's contextCSN values (and nothing older)."""
        mine = set(self.consumer.context_csn())
        return all(set(provider.context_csn()) <= mine for provider in self.providers)

    def catch_up(self, within=10.0):
        """Restart the consumer, so that it refreshes; wait until it holds every
        provider's contextCSN."""
        for provider in self.providers:
            provider.resume()  # a paused provider would make the refresh wait
        wanted = {c for provider in self.providers for c in provider.context_csn()}
        self.consumer.restart()
        for value in wanted:
            self.consumer.has(value, within)
