"""The reference deployment brought up in namespaces, and taken down whatever happens.

``Lab`` builds the hosts of harness.lab.reference on one bridge, starts Apache on
web1/web2 (and slapd on both), the SMTP sink on the client, a small responder on each
director (it says which director owns the VIP: there is no IPVS to forward to the
real servers), computes the digests with ``kachecks genhash``, writes and validates
both keepalived.conf files, starts keepalived on lvs1 then lvs2, and on each director
``kachecks agent`` watching the pair on the wire (its ``[vrrp]`` table).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.lab import reference as ref
from harness.lab.apache import Apache
from harness.lab.timeline import LogSource, MailboxSource, SyslogSource, Timeline, Watcher
from harness.peers import cli
from harness.peers.keepalived import (
    Keepalived,
    config_test,
    secure_dir,
    secure_executables,
)
from harness.peers.netns import Network, TornDown, namespaces
from harness.peers.slapd import Slapd
from harness.peers.vrrp import allow_vrrp, drop_vrrp
from harness.wait import wait_for

PYTHON = sys.executable  # the venv: the SMTP sink needs aiosmtpd
REPO = Path(__file__).resolve().parents[2]

# One line of Python run in the client: GET a URL, print the body or the error.
FETCH = (
    "import sys, urllib.request as u\n"
    "try:\n"
    "    print(u.urlopen(sys.argv[1], timeout=2).read().decode().strip())\n"
    "except Exception as e:\n"
    "    print('ERROR', e); sys.exit(1)\n"
)


EXECUTABLES = ("kachecks", "kachecks-http", "kachecks-ldap")


# Connect to every HOST:PORT argument, retrying until a deadline (seconds, argv[1]).
CONNECT = (
    "import socket, sys, time\n"
    "end = time.monotonic() + float(sys.argv[1])\n"
    "for target in sys.argv[2:]:\n"
    "    host, port = target.rsplit(':', 1)\n"
    "    while True:\n"
    "        try:\n"
    "            socket.create_connection((host, int(port)), 1).close(); break\n"
    "        except OSError as e:\n"
    "            if time.monotonic() > end: print(target, e); sys.exit(1)\n"
    "            time.sleep(0.1)\n"
)


class Lab(TornDown):
    """The whole deployment; ``keep`` leaves the work directory for reading afterwards."""

    def __init__(self, prefix="kclab", timeline=None, bindir=None, keep=False):
        self.prefix = prefix
        self.keep = keep
        self.timeline = timeline or Timeline()
        self.bindir = Path(bindir or cli.bin_dir())
        self.workdir = secure_dir(tempfile.mkdtemp(prefix=f"{prefix}-"))
        self.net = None
        self.watcher = Watcher(self.timeline)
        self.web = {}
        self.keepalived = {}
        self.agents = {}
        self.slapd = {}
        self.mailbox = None
        self.mail_source = None
        self.digests = {}
        self.gaps = []
        self.watched = set()
        self.config_status = {}
        self.left_behind = None  # set by down()
        self.tearing_down = False

    # -- life cycle --------------------------------------------------------
    def note(self, text, host="lab", kind="lab"):
        return self.timeline.add(host, kind, text)

    def up(self):
        missing = [n for n in EXECUTABLES if not os.access(self.bindir / n, os.X_OK)]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} not found in {self.bindir}: install kachecks"
                               " (scripts/setup-deps) or point KACHECKS_BIN_DIR at them")
        self.use_secure_bindir()
        self.net = Network(self.prefix, ref.HOSTS, hostnames=True)
        self.net.up()
        self.note(f"namespaces {self.prefix}-{{{','.join(ref.HOSTS)}}} on bridge "
                  f"{self.prefix}-sw/br0, 192.168.8.0/24, VIP {ref.VIP}")
        self.watcher.start()
        self.start_web()
        self.start_ldap()
        self.start_smtp()
        self.start_responders()
        self.wait_reachable("lvs1", [(ref.HOSTS[h], 80) for h in ref.WEB_SERVERS]
                            + [(ref.HOSTS[h], 389) for h in ref.LDAP_SERVERS])
        self.compute_digests()
        self.write_configs()
        self.start_director("lvs1")
        self.keepalived["lvs1"].wait_state("MASTER", timeout=15)
        self.start_director("lvs2")
        self.keepalived["lvs2"].wait_state("BACKUP", timeout=15)
        for host in ref.DIRECTORS:
            self.start_agent(host)
        for host in ref.DIRECTORS:
            self.wait_watching(host)

    def down(self):
        """Stop everything, delete the namespaces; safe to call twice or half-built."""
        self.tearing_down = True
        if self.net is not None:
            self.note("tearing down: agents, keepalived, servers, namespaces")
        for agent in self.agents.values():
            agent.stop()
        for k in self.keepalived.values():
            k.stop()
        for slapd in self.slapd.values():
            slapd.stop()
        if self.net is not None:
            self.net.down()
        self.watcher.stop()
        self.left_behind = namespaces(self.prefix) + leftover_processes(str(self.workdir))
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- pieces ------------------------------------------------------------
    def use_secure_bindir(self):
        """keepalived runs scripts only from a root-owned, non-writable path
        (docs/reference.md, "Script security").

        A checkout elsewhere (a user's home, a group-writable CI workspace) gets
        one-line exec wrappers in the lab's own directory instead.
        """
        self.bindir, bad = secure_executables(self.bindir, EXECUTABLES, self.workdir / "bin")
        if bad:
            self.note(f"{bad[0]} would fail keepalived's script security: wrappers in {self.bindir}")

    def start_web(self):
        for host in ref.WEB_SERVERS:
            apache = Apache(self.net[host], self.workdir / host, ref.HOSTS[host])
            apache.put("service.txt", ref.SERVICE_TXT[host])
            self.web[host] = apache.start()
            self.note(f"apache2 serves /service.txt = {ref.SERVICE_TXT[host]!r}", host)

    def start_ldap(self):
        for host in ref.LDAP_SERVERS:
            self.slapd[host] = Slapd(host=ref.HOSTS[host], port=389, tls_port=636,
                                     prefix=self.net[host].argv([])).start()
            self.note(f"slapd serves {ref.LDAP_BASE} (o: mysite.mydmn.org)", host)

    def start_smtp(self):
        self.mailbox = self.workdir / "client" / "mailbox"
        secure_dir(self.mailbox.parent)
        sink = self.net["client"].start(
            [PYTHON, "-m", "harness.peers.smtp", "--host", ref.SMTP_HOST, "--port", ref.SMTP_PORT,
             "--mbox", self.mailbox],
            log=self.workdir / "client" / "smtp.log", cwd=REPO,
            env={"PYTHONPATH": REPO})
        wait_for(lambda: self._smtp_ready(sink), 10, what="the SMTP sink")
        self.mail_source = self.watcher.add(MailboxSource("client", self.mailbox))
        self.note(f"SMTP sink on {ref.SMTP_HOST}:{ref.SMTP_PORT} stores mail in an mbox",
                  "client")

    def _smtp_ready(self, sink):
        if not sink.running():
            raise RuntimeError(f"SMTP sink exited: {sink.output()[-1000:]}")
        argv = [PYTHON, "-c", CONNECT, 0, f"{ref.SMTP_HOST}:{ref.SMTP_PORT}"]
        return self.net["lvs1"].run(argv).returncode == 0

    def start_responders(self):
        for host in ref.DIRECTORS:
            root = secure_dir(self.workdir / host / "www")
            (root / "whoami.txt").write_text(f"{host}\n")
            self.net[host].start([PYTHON, "-m", "http.server", "80", "--directory", root],
                                 log=self.workdir / host / "responder.log")

    def compute_digests(self):
        """Digests of both /service.txt, as an administrator gets them: from a director."""
        for host in ref.WEB_SERVERS:
            where = ["-s", ref.HOSTS[host], "-p", "80", "-u", "/service.txt"]
            tool = "kachecks "
            digest, why = self.genhash([self.bindir / "kachecks", "genhash", *where])
            if not digest:
                self.gap(f"kachecks genhash gave no digest ({why}); /usr/bin/genhash used instead")
                tool = "/usr/bin/"
                digest, why = self.genhash(["/usr/bin/genhash", *where])
            if not digest:
                raise RuntimeError(f"no digest for {host}'s /service.txt ({why});"
                                   f" apache: {self.web[host].errors()}")
            self.digests[host] = digest
            self.note(f"{tool}genhash -s {ref.HOSTS[host]} -p 80 -u /service.txt -> {digest}",
                      "lvs1")

    def genhash(self, argv):
        """(digest, None) or (None, what went wrong)."""
        try:
            done = self.net["lvs1"].run(argv, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, str(e)
        out = done.stdout.strip()
        if re.fullmatch(r"[0-9a-f]{32}", out):
            return out, None
        return None, f"exit {done.returncode}: {(out + ' ' + done.stderr.strip()).strip()[:300]}"

    def wait_reachable(self, host, targets, timeout=10):
        """Bring-up readiness: TCP connects from ``host`` to every (address, port) succeed."""
        argv = [PYTHON, "-c", CONNECT, timeout, *[f"{a}:{p}" for a, p in targets]]
        done = self.net[host].run(argv, timeout=timeout + 5)
        if done.returncode != 0:
            raise RuntimeError(f"from {host}: {done.stdout.strip()} {done.stderr.strip()}")

    def gap(self, text):
        self.gaps.append(text)
        self.note(f"GAP: {text}", kind="gap")

    def write_configs(self):
        self.confs = {}
        for host in ref.DIRECTORS:
            d = secure_dir(self.workdir / host)
            spool = d / "spool"
            conf = d / "keepalived.conf"
            (d / "kachecks.toml").write_text(ref.kachecks_toml(host, spool, d / "track", conf))
            conf.write_text(ref.keepalived_conf(host, self.bindir, self.digests,
                                                d / "vrrp.fifo"))
            conf.chmod(0o644)
            self.confs[host] = conf
            done = config_test(conf)
            self.config_status[host] = done.returncode
            verdict = "OK" if done.returncode == 0 else f"exit {done.returncode}"
            self.note(f"keepalived -t: {verdict} (vrrp_instance, 3 vrrp_scripts, "
                      f"virtual_server {ref.VIP}:80 and :389 with MISC_CHECKs)",
                      host, "config")
            for line in done.stderr.splitlines()[:8]:
                self.note(f"keepalived -t: {line}", host, "config")
            if done.returncode != 0:
                raise RuntimeError(f"keepalived -t rejected {conf} (exit {done.returncode}):"
                                   f" {done.stderr.strip()[-1500:]}")

    def director_env(self, host):
        d = self.workdir / host
        state = d / "state"
        state.mkdir(exist_ok=True)
        return {
            "KACHECKS_CONFIG": d / "kachecks.toml",
            "KACHECKS_STATE_DIR": state,
            "KACHECKS_SYSLOG_SOCKET": d / "syslog.sock",
        }

    def start_director(self, host):
        d = self.workdir / host
        if host not in self.watched:
            self.watched.add(host)
            self.watcher.add(SyslogSource(host, d / "syslog.sock"))
            self.watcher.add(LogSource(host, d / "keepalived" / "keepalived.log"))
        k = Keepalived(self.net[host], d / "keepalived", self.confs[host].read_text(),
                       env=self.director_env(host))
        self.keepalived[host] = k.start()
        self.note(f"keepalived --vrrp started (priority {ref.PRIORITIES[host]}, "
                  "state BACKUP, nopreempt)", host)
        return k

    def start_agent(self, host):
        """``kachecks agent`` on ``host``: no [[check]], its [vrrp] watching VI_1 on eth0."""
        d = self.workdir / host
        self.agents[host] = self.net[host].start(
            [self.bindir / "kachecks", "agent", "--config", d / "kachecks.toml"],
            log=d / "agent.log", env=self.director_env(host))
        self.note(f"kachecks agent started: [vrrp] watches {ref.INSTANCE} on eth0 (metrics on"
                  f" {ref.AGENT_METRICS})", host)

    def agent_status(self, host):
        """The director's agent status document (``kachecks agent status`` reads it), or None."""
        try:
            return json.loads((self.workdir / host / "track" / ".kachecks-agent.json").read_text())
        except (OSError, ValueError):
            return None

    def wait_watching(self, host, timeout=15):
        def watching():
            if not self.agents[host].running():
                raise RuntimeError(f"kachecks agent on {host} exited:"
                                   f" {self.agents[host].output()[-1000:]}")
            document = self.agent_status(host)
            pair = (document or {}).get("vrrp") or {}
            return pair.get("watching") and all(i["advertising"] for i in pair["instances"])
        wait_for(watching, timeout, what=f"the agent on {host} to watch {ref.INSTANCE}")

    def agent_problems(self):
        """{director: [(instance, problem code), …]} as each agent's status shows them now."""
        found = {}
        for host in ref.DIRECTORS:
            pair = (self.agent_status(host) or {}).get("vrrp") or {}
            found[host] = [(i["name"], p["code"]) for i in pair.get("instances", [])
                           for p in i["problems"]]
        return found

    def filter_vrrp(self, host):
        """A firewall on ``host`` drops IP protocol 112 at eth0's ingress (a tc-BPF filter)."""
        drop_vrrp(self.net[host], families=(4,))
        return self.note("firewall: IP protocol 112 (VRRP) dropped at eth0's ingress", host)

    def unfilter_vrrp(self, host):
        allow_vrrp(self.net[host])
        return self.note("firewall: VRRP let in again", host)

    def stop_director(self, host):
        self.note("stopping keepalived (SIGTERM)", host)
        self.keepalived[host].stop()

    # -- observations ------------------------------------------------------
    def vip_owner(self):
        return [h for h in ref.DIRECTORS if ref.VIP in self.net[h].addresses()]

    def ask_vip(self):
        """GET http://VIP/whoami.txt from the client: which director answers."""
        done = self.net["client"].run([PYTHON, "-c", FETCH, f"http://{ref.VIP}/whoami.txt"])
        answer = done.stdout.strip()
        self.note(f"GET http://{ref.VIP}/whoami.txt -> {answer}", "client", "client")
        return answer

    def run_check(self, host, target):
        """Run a director's check by hand, as an administrator would, and show its line."""
        argv = (ref.http_check(self.bindir, target, self.digests[target])
                if target in ref.WEB_SERVERS else ref.ldap_check(self.bindir)).split()
        done = self.net[host].run(argv, env=self.director_env(host))
        line = (done.stdout.strip() or done.stderr.strip()).splitlines()
        text = line[0] if line else "(no output)"
        self.note(f"{Path(argv[0]).name} for {target}: exit {done.returncode}: {text}",
                  host, "check")
        return done.returncode, text

    def mail_subjects(self):
        if self.mail_source is None:
            return []
        self.mail_source.poll(self.timeline)
        return self.mail_source.subjects()


def leftover_processes(marker):
    """Processes whose command line mentions ``marker`` (the lab's work directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(f"pid {entry.name}: {cmdline[:80]}")
    return found

