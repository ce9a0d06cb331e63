"""Two keepalived directors on one bridge: start them together, see who holds the VIP, break
one, watch the pair with kachecks-vrrp.

The reference deployment's pair in network namespaces: ``lvs1`` (192.168.8.100)
and ``lvs2`` (192.168.8.110, the higher primary address), and ``extra`` hosts
such as ``web1`` (192.168.8.101) or the witness ``client`` (192.168.8.10:
``WITNESS``). Each director's keepalived runs from its own directory
(``DIR/lvs1/keepalived.conf``), so the files the doctor and the watcher read
are the very files keepalived runs.

    with Pair("kcpair", tmp_path, extra=WITNESS) as pair:
        pair.start({"lvs1": text1, "lvs2": text2})  # reset() then start()
        pair.wait_holders({"192.168.8.142": {"lvs1"}})
        pair.fail_script("lvs1", "chk")   # the flag its script_block tests for appears
        pair.hold_holders({"192.168.8.142": {"lvs1"}}, 4.5)
        pair.check("lvs2")                # kachecks-vrrp there: CompletedProcess
        pair.watch("client")              # kachecks vrrp watch --json there: a Watch

``pair.agent("lvs1")`` runs ``kachecks agent`` on a director, its ``[vrrp]`` table
watching the pair, its notifications going to the SMTP sink on the witness
(``pair.mail()``); with ``hostnames=True`` each host has its own host name, which
the notifications' subjects show.

Failures a test forces: a flag file a ``vrrp_script`` tests for
(``script_line``), a track file's value, an interface down, keepalived
stopped (SIGTERM), the director down (link down, then SIGKILL), a director
unplugged from the bridge; a firewall dropping VRRP is harness.peers.vrrp's
``drop_vrrp``.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness import signalled
from harness.peers import cli
from harness.peers.keepalived import SCRIPT_SECURITY, Keepalived, secure_dir
from harness.peers.netns import IFACE, Network, TornDown
from harness.peers.vrrp import HOSTS, VIP, Watch

DIRECTORS = {name: HOSTS[name] for name in ("lvs1", "lvs2")}
WITNESS = {"client": HOSTS["client"]}  # neither director: watches, or plays a foreign router
SMTP_PORT = 2525  # the administrators' SMTP sink, on the witness
REPO = Path(__file__).resolve().parents[2]


def script_block(name, flags, weight=None, interval=1):
    """A vrrp_script that fails while ``flags/fail-NAME`` exists (``/usr/bin/test``: root-owned);
    ``flags`` is ``Pair.flags_of(director)``."""
    weight_line = f"    weight {weight}\n" if weight is not None else ""
    return (f"vrrp_script {name} {{\n"
            f"    script \"/usr/bin/test ! -e {Path(flags) / ('fail-' + name)}\"\n"
            f"    interval {interval}\n"
            "    fall 1\n    rise 1\n"
            f"{weight_line}"
            "}\n")


def _shown(holders):
    return ", ".join(f"{vip} on {'+'.join(sorted(names)) or 'nobody'}"
                     for vip, names in sorted(holders.items()))


def config(router_id, priority, *, blocks="", after="", global_extra="", **instance_settings):
    """The reference deployment's keepalived.conf for one director, VRRP part only.

    ``blocks``: vrrp_script/track_file blocks (defined before the instance);
    ``after``: text after it (another instance, a sync group); the rest is
    ``instance()``'s.
    """
    return ("global_defs {\n"
            f"    router_id {router_id}\n"
            f"{SCRIPT_SECURITY}{global_extra}"
            "}\n\n"
            f"{blocks}\n"
            f"{instance(priority, **instance_settings)}"
            f"{after}")


def instance(priority, *, state="BACKUP", nopreempt=True, tracks="", instance_extra="",
             vips=(VIP,), prefix=24, advert_int=1, password="kachecks", vrid=50, name="VI_1"):
    """One vrrp_instance; ``tracks``: lines inside it (``track_script { … }``); each of
    ``vips`` is ``ADDRESS/prefix dev eth0``."""
    auth = ("    authentication {\n        auth_type PASS\n"
            f"        auth_pass {password}\n    }}\n") if password else ""
    addresses = "".join(f"        {v}/{prefix} dev {IFACE}\n" for v in vips)
    return (f"vrrp_instance {name} {{\n"
            f"    state {state}\n"
            f"{'    nopreempt' + chr(10) if nopreempt else ''}"
            f"    interface {IFACE}\n"
            f"    virtual_router_id {vrid}\n"
            f"    priority {priority}\n"
            f"    advert_int {advert_int}\n"
            f"{auth}"
            f"    virtual_ipaddress {{\n{addresses}    }}\n"
            f"{tracks}"
            f"{instance_extra}"
            "}\n")


class Pair(TornDown):
    """lvs1 and lvs2 (plus ``extra`` hosts) on one bridge, each with a keepalived;
    ``hostnames``: each host its own host name."""

    def __init__(self, prefix, workdir, extra=None, hostnames=False):
        self.prefix = prefix
        self.hostnames = hostnames
        self.workdir = secure_dir(workdir)
        self.flags = secure_dir(self.workdir / "flags")
        self.hosts = {**DIRECTORS, **(extra or {})}
        self.net = None
        self.ka = {}
        self.dead = set()
        self.stopped = set()  # keepalived stopped on purpose
        self.watches = []
        self.agents = {}
        self.sink = None

    def up(self):
        self.net = Network(self.prefix, self.hosts, hostnames=self.hostnames)
        self.net.up()

    def down(self):
        for agent in self.agents.values():
            agent.__exit__()
            agent.syslog.close()
        self.agents.clear()
        if self.sink is not None:
            self.sink.stop()
            self.sink = None
        for watch in self.watches:
            watch.stop()
        self.watches.clear()
        self.stop()
        if self.net is not None:
            self.net.down()
            self.net = None

    def __getitem__(self, host):
        return self.net[host]

    def path(self, director):
        """The keepalived.conf a director runs (and the doctor reads)."""
        return self.workdir / director / "keepalived.conf"

    def write(self, configs):
        for name, text in configs.items():
            self.ka[name] = Keepalived(self.net[name], self.workdir / name, text)
        return {name: self.path(name) for name in configs}

    def reset(self, configs):
        """Stop keepalived, clear the failure flags, write each director's new file."""
        self.stop()
        for flag in self.flags.glob("*/fail-*"):
            flag.unlink()
        return self.write(configs)

    def start(self, configs=None, names=None):
        """(Re)start keepalived on each director, as close together as two processes go."""
        if configs is not None:
            self.reset(configs)
        for name in names or list(self.ka):
            self.ka[name].start()
            self.stopped.discard(name)
        return self

    def check_running(self):
        """AssertionError with its log when a keepalived died that nobody stopped."""
        for name, ka in self.ka.items():
            if name not in self.stopped and name not in self.dead and ka.proc is not None \
                    and not ka.running():
                raise AssertionError(f"keepalived on {name} exited\n{self.logs(30)}")

    def stop(self):
        for name, ka in self.ka.items():
            ka.stop()
            self.stopped.add(name)
        for name in list(self.dead):
            self.net[name].ip("link", "set", IFACE, "up", check=False)
        self.dead.clear()

    def holders(self, vip=VIP):
        """The directors whose eth0 carries ``vip`` (IPv4 or IPv6) now (a dead director holds
        nothing)."""
        return {name for name in self.ka if name not in self.dead and vip in self._held(name)}

    def _held(self, name):
        out = self.net[name].ip("-o", "addr", "show", "dev", IFACE).stdout
        return {f.split("/")[0] for line in out.splitlines() for f in line.split()[3:4]}

    def now(self, expected):
        """{vip: set of holders} now, for the VIPs of ``expected`` ({vip: directors})."""
        return {vip: self.holders(vip) for vip in expected}

    def wait_holders(self, expected, timeout=15.0):
        """Wait until each VIP of ``expected`` ({vip: directors}) is held by exactly those
        directors; AssertionError with the logs otherwise."""
        want = {vip: set(names) for vip, names in expected.items()}
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.now(want) == want:
                return
            self.check_running()
            time.sleep(0.05)
        raise AssertionError(f"wanted {_shown(want)}, have {_shown(self.now(want))} after"
                             f" {timeout} s\n{self.logs()}")

    def hold_holders(self, expected, seconds):
        """Each VIP stays on exactly its directors for ``seconds``; AssertionError at the first
        change."""
        want = {vip: set(names) for vip, names in expected.items()}
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            have = self.now(want)
            if have != want:
                raise AssertionError(f"moved: have {_shown(have)}, predicted {_shown(want)}"
                                     f"\n{self.logs()}")
            self.check_running()
            time.sleep(0.05)

    def logs(self, lines=12):
        out = []
        for name, ka in self.ka.items():
            tail = [l for l in ka.output().splitlines() if "gratuitous ARP" not in l][-lines:]
            out.append(f"--- {name} keepalived:\n" + "\n".join(tail))
        return "\n".join(out)

    # -- the watcher -------------------------------------------------------------

    def conf(self, host):
        """The keepalived.conf ``host`` watches with: its own; lvs1's for a host that is not a
        director (a witness)."""
        return self.path(host if host in self.ka else "lvs1")

    def argv(self, host, *args):
        return [*cli.command("kachecks-vrrp"), "--keepalived-conf", self.conf(host),
                *map(str, args)]

    def check(self, host, *args, timeout=60):
        """``kachecks-vrrp ARGS`` in ``host``'s namespace: a CompletedProcess."""
        return self.net[host].run(self.argv(host, *args), timeout=timeout)

    def checks(self, runs, timeout=60):
        """{host: CompletedProcess} of ``{host: args}``, all run at the same time."""
        started = {host: subprocess.Popen(self.net[host].argv(self.argv(host, *args)),
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True)
                   for host, args in runs.items()}
        done = {}
        for host, proc in started.items():
            out, err = proc.communicate(timeout=timeout)
            done[host] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        return done

    def watch(self, host, *args):
        """``kachecks vrrp watch --json ARGS`` in ``host``'s namespace, stopped with the pair."""
        watch = Watch(self.net[host], cli.command("kachecks"),
                      self.workdir / f"watch-{host}-{len(self.watches)}.log",
                      "--keepalived-conf", self.conf(host), *args)
        self.watches.append(watch)
        return watch

    # -- the agent ----------------------------------------------------------------

    def mail(self):
        """The administrators' SMTP sink on the witness (harness.peers.smtp.NamespaceSink),
        started on first use."""
        if self.sink is None:
            from harness.peers.smtp import NamespaceSink

            self.sink = NamespaceSink(self.net["client"], HOSTS["client"], SMTP_PORT,
                                      self.workdir / "mbox", self.workdir / "smtp.log", REPO)
        return self.sink

    def agent_tables(self, host, vrrp=None, notify=None):
        """The tables of ``host``'s kachecks.toml beside [agent]: ``[vrrp]`` (its
        keepalived.conf, plus ``vrrp``; None: no table), ``[notify]`` (``notify``, if any)
        and mail to the witness's sink."""
        tables = {"smtp": {"host": HOSTS["client"], "port": SMTP_PORT, "security": "none",
                           "timeout": 5},
                  "mail": {"from": f"kachecks@{host}.example.org", "to": ["admin@example.org"]},
                  "spool": {"dir": str(self.workdir / f"agent-{host}" / "spool"),
                            "batch_window": 0}}
        if notify is not None:
            tables["notify"] = dict(notify)
        if vrrp is not None:
            tables["vrrp"] = {"keepalived_conf": str(self.conf(host)), **vrrp}
        return tables

    def agent_config(self, host):
        """The kachecks.toml of ``host``'s agent (written when ``agent`` starts it): what a
        keepalived notify line of that director names to share the agent's spool."""
        return self.workdir / f"agent-{host}" / "kachecks.toml"

    def agent(self, host, vrrp=None, checks=(), metrics="", notify=None, **agent):
        """``kachecks agent`` on director ``host`` (harness.peers.agent.AgentProcess, its
        syslog as ``.syslog``, a harness.peers.syslog.SyslogLines), its ``[vrrp]`` watching
        this pair (``vrrp``: keys added to the table; ``notify``: its [notify] table),
        started; the witness needs the sink."""
        from harness.peers.agent import AgentProcess
        from harness.peers.syslog import SyslogLines

        self.mail()
        workdir = self.agent_config(host).parent
        workdir.mkdir(exist_ok=True)
        syslog = SyslogLines(workdir / "syslog.sock")
        process = AgentProcess(workdir, checks, metrics, launch=self.net[host].argv,
                               command=cli.command("kachecks"),
                               env={"KACHECKS_SYSLOG_SOCKET": syslog.path},
                               tables=self.agent_tables(host, vrrp or {}, notify), **agent)
        process.syslog = syslog
        self.agents[host] = process
        return process.start()

    def fetch(self, host, url, timeout=10):
        """GET ``url`` from namespace ``host``: the body (a director's metrics endpoint)."""
        code = ("import sys, urllib.request as u\n"
                "sys.stdout.write(u.urlopen(sys.argv[1], timeout=5).read().decode())")
        done = self.net[host].run([sys.executable, "-c", code, url], timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"GET {url} in {host}: {done.stderr.strip()[-500:]}")
        return done.stdout

    # -- failures --------------------------------------------------------------

    def flags_of(self, director):
        """The directory of ``director``'s flag files (see script_block)."""
        path = self.flags / director
        path.mkdir(exist_ok=True)
        return path

    def fail_script(self, director, script):
        (self.flags_of(director) / f"fail-{script}").write_text("failing\n")

    def write_track_file(self, path, value):
        """Write a track file as a writer does: a new file renamed onto the old (keepalived
        re-reads it)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".new")
        tmp.write_text(f"{value}\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)

    def interface_down(self, director, dev):
        self.net[director].ip("link", "set", dev, "down")

    def stop_keepalived(self, director):
        self.stopped.add(director)
        self.ka[director].stop()

    def director_down(self, director):
        """The director vanishes: its link goes down, then keepalived dies without a word."""
        self.net[director].ip("link", "set", IFACE, "down")
        self.dead.add(director)
        proc = self.ka[director].proc
        if proc is not None:
            signalled.stop(proc.popen, signal.SIGKILL, 10, what=f"keepalived on {director}",
                           group=True)

    def partition(self, director, apart=True):
        """Unplug (or plug back) ``director`` from the bridge; its own link stays up."""
        port = f"v-{director}"[:15]
        if apart:
            self.net.switch.ip("link", "set", port, "nomaster")
        else:
            self.net.switch.ip("link", "set", port, "master", "br0")

    def force(self, director, failure, files=None, actions=None):
        """Force a failure worded as ``kachecks doctor --what-if`` words it, on ``director``.

        ``files``: {track_file name: path}; ``actions``: {failure text: callable}
        for failures a test forces its own way (a real check's server).
        """
        if actions and failure in actions:
            actions[failure]()
            return
        words = failure.split()
        if failure == "keepalived stopped":
            self.stop_keepalived(director)
        elif failure == "director down":
            self.director_down(director)
        elif words[0] == "vrrp_script" and words[2:] == ["fails"]:
            self.fail_script(director, words[1])
        elif words[0] == "track_file" and words[2] == "reads":
            self.write_track_file(files[words[1]], int(words[3]))
        elif words[0] == "interface" and words[2:] == ["down"]:
            self.interface_down(director, words[1])
        else:
            raise ValueError(f"cannot force {failure!r} in a namespace")
