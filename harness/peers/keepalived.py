"""Run the real keepalived (VRRP side) inside a namespace and watch its VRRP states.

Each instance gets its own directory (config, pid files, log), so several coexist on
one machine. keepalived runs in the foreground (``-n``), logs to the console
(``-l -D``, captured into ``keepalived.log``) and only runs VRRP (``--vrrp``): this
kernel has no IPVS, so the LVS checker cannot run; its configuration is validated
with ``keepalived -t`` instead (exit codes: docs/reference.md, "keepalived -t").

keepalived refuses scripts whose path is not root-owned and 0755-ish all the way up
(docs/reference.md, "Script security"); ``secure_dir`` makes a directory (and its
parents under a test's tmp dir) acceptable.
"""

import os
import re
import subprocess
import time
from pathlib import Path

KEEPALIVED = "/usr/sbin/keepalived"

# "(VI_1) Entering MASTER STATE", "(VI_1) Entering BACKUP STATE (init)", "… FAULT STATE"
# 2.2.7 spells a FAULT at start-up in lower case: "(VI_1) entering FAULT state"
STATE_RE = re.compile(r"\((?P<instance>[^)]+)\) Entering (?P<state>[A-Z]+) STATE", re.IGNORECASE)

SCRIPT_SECURITY = "    enable_script_security\n    script_user root\n"


def secure_dir(path):
    """Make ``path`` and its parents 0755-ish (pytest tmp dirs are 0700); sticky dirs stay."""
    path = Path(path).resolve()
    path.mkdir(parents=True, exist_ok=True)
    for p in [path, *path.parents]:
        if p == Path("/"):
            break
        mode = p.stat().st_mode & 0o7777
        if mode & 0o1000:
            continue  # /tmp: keepalived accepts sticky directories
        wanted = (mode & ~0o022) | 0o755
        if wanted != mode:
            os.chmod(p, wanted)
    return path


def insecure_components(path):
    """Components of ``path`` keepalived's script security would refuse
    (docs/reference.md, "Script security").

    Each must be owned by root and, unless it is a sticky directory, writable by
    neither group (unless group 0) nor others.
    """
    bad = []
    path = Path(path).absolute()
    for p in [path, *path.parents]:
        st = p.lstat()
        sticky_dir = p.is_dir() and st.st_mode & 0o1000
        writable = st.st_mode & 0o002 or (st.st_mode & 0o020 and st.st_gid != 0)
        if st.st_uid != 0 or (writable and not sticky_dir):
            bad.append(str(p))
    return bad


def write_script(path, text):
    """A root-owned 0755 executable script keepalived will accept."""
    path = Path(path)
    path.write_text(text)
    os.chmod(path, 0o755)
    return path


def secure_executables(bindir, names, shim_dir):
    """(directory, insecure components): where keepalived may run ``names`` from.

    ``bindir`` itself when every path component passes script security and the path
    holds no blank (keepalived splits a script line at blanks: the callers write
    ``{directory}/kachecks-http …`` into keepalived.conf); otherwise one-line exec
    wrappers in ``shim_dir`` (made secure), so a checkout in a user's home, a
    group-writable CI workspace or "/srv/my checkout" still drives keepalived.
    """
    bindir = Path(bindir)
    bad = [c for name in names for c in insecure_components(bindir / name)]
    if not bad and not any(c.isspace() for c in str(bindir)):
        return bindir, bad
    shims = secure_dir(shim_dir)
    for name in names:
        write_script(shims / name, f'#!/bin/sh\nexec "{bindir / name}" "$@"\n')
    return shims, bad


def config_test(conf):
    """``keepalived -t -f conf``; CompletedProcess (0 OK, 4/5 errors, 6 script security)."""
    return subprocess.run(
        [KEEPALIVED, "-t", "-f", str(conf)], capture_output=True, text=True, timeout=30
    )


class Keepalived:
    """One keepalived (VRRP only) in namespace ``ns`` (a harness.peers.netns.Namespace).

    ``env`` is added to keepalived's environment, which its scripts inherit unchanged
    (docs/reference.md, "How keepalived runs scripts"): the way to hand KACHECKS_*
    settings to checks and notifiers.
    """

    def __init__(self, ns, workdir, config_text, env=None, args=()):
        self.ns = ns
        self.env = env
        self.args = list(args)  # more options (``-d``: dump the configuration at start-up)
        self.dir = secure_dir(workdir)
        self.conf = self.dir / "keepalived.conf"
        self.conf.write_text(config_text)
        os.chmod(self.conf, 0o644)
        self.log = self.dir / "keepalived.log"
        self.log_start = 0  # states() reads the log of the current run only
        self.proc = None

    def argv(self):
        d = self.dir
        return [
            KEEPALIVED, "--vrrp", "-n", "-l", "-D", "-G",
            "-f", self.conf,
            "-p", d / "keepalived.pid", "-r", d / "vrrp.pid", "-c", d / "checkers.pid",
            "-b", d / "bfd.pid",  # 2.3.3 checks /run/bfd.pid even with --vrrp: a pair collides
            *self.args,
        ]

    def start(self):
        self.log_start = self.log.stat().st_size if self.log.exists() else 0
        self.proc = self.ns.start(self.argv(), log=self.log, env=self.env)
        return self

    def running(self):
        return self.proc is not None and self.proc.running()

    def stop(self, timeout=10.0):
        """SIGTERM (keepalived drops its VIPs and sends STOP notifies), wait, then KILL."""
        if self.proc is None:
            return None
        return self.proc.stop(timeout)

    def output(self):
        """What keepalived logged since the last ``start()``."""
        if not self.log.exists():
            return ""
        with open(self.log, "rb") as f:
            f.seek(self.log_start)
            return f.read().decode(errors="replace")

    def states(self, instance=None):
        """Every VRRP state entered so far, in order: [(instance, state), …]."""
        return [
            (m["instance"], m["state"].upper())
            for m in STATE_RE.finditer(self.output())
            if instance is None or m["instance"] == instance
        ]

    def state(self, instance=None):
        seen = self.states(instance)
        return seen[-1][1] if seen else None

    def wait_state(self, state, instance=None, timeout=15.0):
        """Wait until the latest state entered is ``state``; TimeoutError with the log tail."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.state(instance) == state:
                return state
            if self.proc is not None and not self.proc.running():
                break
            time.sleep(0.05)
        tail = "\n".join(self.output().splitlines()[-15:])
        raise TimeoutError(
            f"keepalived in {self.ns.name}: wanted {state}, last {self.state(instance)}\n{tail}"
        )

    def wait_log(self, pattern, timeout=15.0):
        """Wait for a regex to appear in the log; return the match."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = rx.search(self.output())
            if m:
                return m
            time.sleep(0.05)
        raise TimeoutError(f"keepalived in {self.ns.name}: no log line matching {pattern!r}")


# A line of the log, after its time stamp ("Mon Dec  7 14:57:39 2026: "), if any.
LOGGED = re.compile(r"^(?:[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d [\d:]{8} \d{4}: )?(?P<text>.*)$")
DUMP_END = "------< Interfaces >------"  # the section after the VRRP instances


def dumped_lines(output, name):
    """The log lines from instance ``name``'s " VRRP Instance = " line of the dump up to the
    next instance or section, as logged (time stamps and any line logged meanwhile kept):
    what a failure shows."""
    lines, inside = [], False
    for line in output.splitlines():
        text = LOGGED.match(line)["text"]
        if inside and (text.startswith("------<") or text.startswith(" VRRP Instance = ")):
            break
        inside = inside or text == f" VRRP Instance = {name}"
        if inside:
            lines.append(line)
    return "\n".join(lines)


def dumped(output):
    """The VRRP instances keepalived dumped with ``-d`` (``DUMP_END`` marks the end), as it
    settled them: {name: {"version", "state", "interface", "group" (text or None with
    unicast), "priority", "advert_int" (seconds), "nopreempt", "preempt_delay", "auth"
    ("none", "pass", "ah"; None under VRRPv3), "password" (bytes, PASS only), "vips",
    "peers" (address texts)}}.

    The dump is the VRRP process's, but keepalived's parent logs to the same output: it
    writes "Startup complete" once that process says it has read its configuration,
    which it says just before dumping it, so on a loaded machine the line lands inside
    the dump (even between "Virtual IP (1):" and the address). Every line of the
    topology is indented and every section header starts "------<"; any other line was
    logged meanwhile by another process and is skipped."""
    found, current, listing = {}, None, None
    texts = [LOGGED.match(line)["text"] for line in output.splitlines()]
    start = next((i for i, t in enumerate(texts) if "------< VRRP Topology >------" in t), None)
    for text in texts[start:] if start is not None else ():
        if text.startswith("------<") and current is not None:
            break
        if not text.startswith(" "):
            continue  # another process's line ("Startup complete"), not the dump's
        if m := re.match(r" VRRP Instance = (\S+)$", text):
            current = found[m[1]] = {"group": None, "auth": None, "password": None,
                                     "preempt_delay": 0.0, "vips": [], "peers": []}
            continue
        if current is None:
            continue
        if listing is not None and text.startswith("     "):
            current[listing].append(text.split()[0])
            continue
        listing = None
        field, _, value = text.strip().partition(" = ")
        if field == "VRRP Version":
            current["version"] = int(value)
        elif field == "Wantstate":
            current["state"] = value
        elif field == "Interface":
            current["interface"] = value.split(",")[0]
        elif field.startswith("Multicast address "):
            current["group"] = field.split()[2].rstrip(",")
        elif field == "Priority":
            current["priority"] = int(value)
        elif field == "Advert interval":
            number, unit = value.split()
            current["advert_int"] = int(number) / (1 if unit == "sec" else 1000)
        elif field == "Preempt":
            current["nopreempt"] = value == "disabled"
        elif field == "Preempt delay":
            current["preempt_delay"] = float(value.split()[0])
        elif field == "Authentication type":
            current["auth"] = {"none": "none", "SIMPLE_PASSWORD": "pass", "IPSEC_AH": "ah"}[value]
        elif field == "Password":
            current["password"] = value.encode()
        elif field.startswith("Virtual IP ("):
            listing = "vips"
        elif field == "Unicast Peer :":
            listing = "peers"
    return found


def vrrp_config(
    router_id,
    priority,
    vip,
    peers=(),
    instance="VI_1",
    interface="eth0",
    vrid=50,
    state="BACKUP",
    nopreempt=True,
    global_extra="",
    instance_extra="",
    prefixlen=32,
):
    """A keepalived.conf with one vrrp_instance (the reference deployment's shape).

    ``peers`` switches to unicast (source address = the first address on ``interface``);
    without peers keepalived multicasts over the bridge. Script security is always on.
    """
    unicast = ""
    if peers:
        unicast = "    unicast_peer {\n" + "".join(f"        {p}\n" for p in peers) + "    }\n"
    return (
        "global_defs {\n"
        f"    router_id {router_id}\n"
        f"{SCRIPT_SECURITY}"
        f"{global_extra}"
        "}\n\n"
        f"vrrp_instance {instance} {{\n"
        f"    state {state}\n"
        f"    interface {interface}\n"
        f"    virtual_router_id {vrid}\n"
        f"    priority {priority}\n"
        "    advert_int 1\n"
        f"{'    nopreempt' + chr(10) if nopreempt else ''}"
        "    authentication {\n        auth_type PASS\n        auth_pass toto\n    }\n"
        f"{unicast}"
        f"    virtual_ipaddress {{\n        {vip}/{prefixlen} dev {interface}\n    }}\n"
        f"{instance_extra}"
        "}\n"
    )
