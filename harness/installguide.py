"""docs/install.md followed as written, on a fresh Debian root (scripts/test-install-guide).

The root is a throw-away overlay of a bare debootstrap of the release
(``scripts/test-in-debian SUITE --bare``), entered in the reference
deployment's director namespace: lvs1 (192.168.8.100) on a bridge with web1
and web2 (Apache serving /service.txt, slapd) and the mail relay (an SMTP sink
writing an mbox). The guide's ``sh`` blocks run in order, unchanged, under
``bash -e``; around them only the environment is set: apt says yes and reaches
the mirror through a proxy (the namespaces have no route out), and ``systemctl``
is harness/systemctl-standin, standing in for systemd, which is not PID 1 in a
root. At each ``<!-- test-install-guide: NAME -->`` marker the test waits for
what must be true by then. Afterwards the mails that reached the relay are
checked.
"""

import argparse
import base64
import mailbox
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.docs import guide_steps
from harness.lab import reference as ref
from harness.lab.apache import Apache
from harness.peers.aptproxy import AptProxy
from harness.peers.keepalived import secure_dir
from harness.peers.netns import Network, run_prefix
from harness.peers.slapd import Slapd
from harness.wait import wait_for

REPO = Path(__file__).resolve().parents[1]
RELAY = "192.168.8.25"
HOSTS = {"lvs1": ref.HOSTS["lvs1"], "web1": ref.HOSTS["web1"], "web2": ref.HOSTS["web2"],
         "relay": RELAY}
VIP = ref.VIP

SYSTEMCTL = REPO / "harness" / "systemctl-standin"

WAIT = """\
wait_until() {  # SECONDS WHAT COMMAND...: poll COMMAND until it succeeds
    local seconds=$1 what=$2; shift 2
    for _ in $(seq $((seconds * 4))); do "$@" > /dev/null 2>&1 && return 0; sleep 0.25; done
    echo "test-install-guide: no $what after ${seconds}s" >&2
    "$@" >&2 || true; tail -n 30 /tmp/keepalived*.log >&2 || true
    return 1
}
vip_up() { ip -brief address show dev eth0 | grep -q " VIP/"; }
spool_empty() { kachecks spool list | grep -q "is empty"; }
""".replace("VIP", VIP)

# At each marker: what must be true by then.
MARKERS = {
    "director-running": """\
wait_until 30 "VIP on lvs1's eth0" vip_up
wait_until 60 "mail delivered (spool empty)" spool_empty
""",
    "checks-run-as-keepalived_script": """\
wait_until 30 "VIP on lvs1's eth0" vip_up
state_dir=/tmp/kachecks-$(id -u keepalived_script)
wait_until 30 "check run as keepalived_script" sh -c "ls $state_dir/*.state" \\
    || { ls -ld "$state_dir" >&2; false; }
[ "$(stat -c %U "$state_dir")" = keepalived_script ]
wait_until 60 "mail delivered (spool empty)" spool_empty
""",
    # What `git pull` of the next release brings: the version one step up, everywhere.
    "new-release": """\
old=$(sed -n 's/^__version__ = "\\(.*\\)"$/\\1/p' kachecks/__init__.py)
new=$old+guide1
sed -i 's/^__version__ = .*/__version__ = "'"$new"'"/' kachecks/__init__.py
sed -i '0,/^version = .*/s//version = "'"$new"'"/' pyproject.toml
when=$(( $(dpkg-parsechangelog -l packaging/debian/changelog -S Timestamp) + 1 ))
[ "$(date +%s)" -lt "$when" ] || when=$(date +%s)
{
    printf 'kachecks (%s) unstable; urgency=medium\\n\\n  * The next release.\\n\\n' "$new"
    printf ' -- %s  %s\\n\\n' "$(dpkg-parsechangelog -l packaging/debian/changelog -S Maintainer)" \\
        "$(date -R -u -d "@$when")"
    cat packaging/debian/changelog
} > /tmp/changelog
mv /tmp/changelog packaging/debian/changelog
""",
    "upgraded": """\
[ "$(dpkg-query -W -f '${Version}' kachecks)" = "$new" ]
grep -q '^host = "RELAY"$' /etc/kachecks/kachecks.toml
[ ! -e /etc/kachecks/kachecks.toml.dpkg-dist ]
[ "$(stat -c %a /etc/kachecks/kachecks.toml)" = 640 ]
""".replace("RELAY", RELAY),
}

AFTER = """\
echo "=== test-install-guide: after the guide"
systemctl stop keepalived
systemctl stop kachecks-worker
! dpkg-query -W -f '${Status}' kachecks 2>/dev/null | grep -q installed
[ ! -e /etc/kachecks ] && [ ! -e /var/spool/kachecks ] && [ ! -e /usr/bin/kachecks ]
"""

ENVIRONMENT = """\
cat > /etc/apt/apt.conf.d/99test-install-guide <<'EOF'
Acquire::http::Proxy "PROXY";
APT::Get::Assume-Yes "true";
EOF
export DEBIAN_FRONTEND=noninteractive
base64 -d > /usr/local/sbin/systemctl <<'EOF'
STANDIN
EOF
chmod 755 /usr/local/sbin/systemctl
hash -r
"""


def script(guide_text, proxy_url):
    """The bash program for the root: environment, the guide's blocks, marker snippets."""
    standin = base64.encodebytes(SYSTEMCTL.read_bytes()).decode()
    environment = ENVIRONMENT.replace("PROXY", proxy_url).replace("STANDIN\n", standin)
    parts = ["set -e -o pipefail\n", environment, WAIT]
    for kind, text in guide_steps(guide_text):
        if kind == "sh":
            first = text.strip().splitlines()[0]
            parts.append(f"echo {shlex.quote('=== guide: ' + first)}\n{text}")
        else:
            parts.append(f"echo {shlex.quote('=== test-install-guide: ' + text)}\n{MARKERS[text]}")
    parts.append(AFTER)
    return "".join(parts)


class Deployment:
    """web1, web2 (Apache + slapd), the relay (SMTP sink) and lvs1's bare namespace."""

    def __init__(self, prefix, workdir):
        self.prefix = prefix
        self.workdir = Path(workdir)
        self.net = Network(prefix, HOSTS, hostnames=False)
        self.servers = []
        self.mbox = self.workdir / "relay" / "mbox"

    def __enter__(self):
        self.net.__enter__()
        try:
            for host in ref.WEB_SERVERS:
                apache = Apache(self.net[host], self.workdir / host, HOSTS[host])
                apache.put("service.txt", ref.SERVICE_TXT[host])
                self.servers.append(apache.start())
                self.servers.append(Slapd(host=HOSTS[host], port=389, tls_port=636,
                                          prefix=self.net[host].argv([])).start())
            secure_dir(self.mbox.parent)
            self.net["relay"].start([sys.executable, "-m", "harness.peers.smtp", "--host", RELAY,
                                     "--port", 25, "--mbox", self.mbox],
                                    log=self.workdir / "relay" / "smtp.log", cwd=REPO,
                                    env={"PYTHONPATH": REPO})
            wait_for(self._relay_ready, 15, what="the SMTP sink")
        except BaseException:
            self.__exit__()
            raise
        return self

    def _relay_ready(self):
        probe = "import socket,sys; socket.create_connection((sys.argv[1], 25), 1).close()"
        return self.net["lvs1"].run([sys.executable, "-c", probe, RELAY]).returncode == 0

    def __exit__(self, *exc):
        for server in reversed(self.servers):
            server.stop()
        self.net.__exit__(*exc)

    def subjects(self):
        if not self.mbox.exists():
            return []
        return [(m["From"], m["To"], m["Subject"]) for m in mailbox.mbox(str(self.mbox))]


def follow(suite, guide_text, log=sys.stdout):
    """Run the guide on a fresh root of ``suite``; return a list of what went wrong."""
    prefix = run_prefix("kcig")
    with tempfile.TemporaryDirectory(prefix="kachecks-install-guide-") as work, \
            Deployment(prefix, work) as deployment, AptProxy(f"{prefix}-lvs1") as proxy:
        program = script(guide_text, proxy.url)
        started = time.monotonic()
        done = subprocess.run([REPO / "scripts/test-in-debian", suite, "--bare",
                               "--netns", f"{prefix}-lvs1", "--hostname", "lvs1",
                               "--", "bash", "-c", program], stdout=log, stderr=subprocess.STDOUT)
        mails = deployment.subjects()
    print(f"=== test-install-guide: {suite}: exit {done.returncode} after "
          f"{time.monotonic() - started:.0f} s, {proxy.requests} requests through the apt proxy,"
          f" {len(mails)} mails", file=log, flush=True)
    for sender, to, subject in mails:
        print(f"    mail from {sender} to {to}: {subject}", file=log)
    problems = []
    if done.returncode != 0:
        problems.append(f"{suite}: the guide failed (exit {done.returncode}, output above)")
    subjects = [s for _f, _t, s in mails]
    # lvs1 alone: BACKUP, then MASTER; again after the restart as keepalived_script.
    masters = [s for s in subjects if s.startswith("[lvs1] VI_1:") and "-> MASTER (prio 100)" in s]
    if len(masters) < 2:
        problems.append(f"{suite}: expected lvs1's two BACKUP -> MASTER mails, got {subjects}")
    if any((f, t) != ("lvs1@mydmn.org", "admins@mydmn.org") for f, t, _s in mails):
        problems.append(f"{suite}: mails not from/to the guide's addresses: {mails}")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(prog="scripts/test-install-guide", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suites", nargs="+", choices=["bookworm", "trixie"])
    args = parser.parse_args(argv)
    guide = subprocess.run(["git", "-C", REPO, "show", "HEAD:docs/install.md"], check=True,
                           capture_output=True, text=True).stdout
    problems = []
    for suite in args.suites:
        problems += follow(suite, guide)
    for problem in problems:
        print(f"test-install-guide: {problem}", file=sys.stderr)
    print("=== test-install-guide: " + ("FAILED" if problems else
          f"the guide works as written on {', '.join(args.suites)}"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
