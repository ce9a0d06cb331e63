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
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from harness.peers.ports import free_port
from harness.peers import certs

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")

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
    """

    BASE = BASE

    def __init__(self, host="127.0.0.1", port=None, tls_port=None, listen_urls=None,
                 prefix=(), certs=None, verify_client="never", size_limit=SIZE_LIMIT,
                 start_timeout=10.0):
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
        with open(self.dir / "slapd.log", "wb") as log:
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
        for sig, wait in ((signal.SIGCONT, 0), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                return
            if wait:
                try:
                    proc.wait(timeout=wait)
                    return
                except subprocess.TimeoutExpired:
                    continue
        proc.wait(timeout=5)

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
        self.process.kill()
        self.process.wait(timeout=5)

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

    # -- configuration ---------------------------------------------------
    def _write_config(self):
        c = self.certs
        schemas = "\n".join(f"include {SCHEMA_DIR / n}.schema"
                            for n in ("core", "cosine", "inetorgperson"))
        (self.dir / "slapd.conf").write_text(f"""\
{schemas}
modulepath {MODULE_DIR}
moduleload back_mdb
pidfile {self.dir}/slapd.pid
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
""")
        (self.dir / "data.ldif").write_text(reference_tree())


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
