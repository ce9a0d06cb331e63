"""The check executables as the tests drive them: one fresh process each, as keepalived
runs them, with the reference deployment's pages and LDAP search at hand."""

import subprocess
import time

from harness.lab import reference as ref
from harness.peers import cli
from harness.peers import slapd as ldap_peer

# web1's and web2's /service.txt and their digests (what `genhash` prints for them).
SERVER1 = ref.SERVICE_TXT["web1"].encode()
SERVER2 = ref.SERVICE_TXT["web2"].encode()
MD5_SERVER1 = ref.REFERENCE_DIGESTS["web1"]
MD5_SERVER2 = ref.REFERENCE_DIGESTS["web2"]
VHOST = "www.mysite.mydmn.org"

# The reference LDAP search, against harness.peers.slapd's tree.
BASE = ldap_peer.BASE
REFERENCE = ["--base", BASE, "--filter", ref.LDAP_FILTER, "--expect", f"o={ldap_peer.ORGANIZATION}"]


def http(*args, **kw):
    """Run kachecks-http as keepalived would: a fresh process."""
    return cli.run("kachecks-http", *args, **kw)


def tcp(*args, **kw):
    return cli.run("kachecks-tcp", *args, **kw)


def one_line(proc):
    """The status line, asserting it is the only stdout line."""
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout + proc.stderr
    return lines[0]


def ldap_check(*args, env=None, timeout=30):
    """Run kachecks-ldap; assert the contract's shape (exit 0/1, one stdout line)."""
    done = cli.run("kachecks-ldap", *args, env=env, timeout=timeout)
    assert done.returncode in (0, 1), (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    lines = (done.stdout + done.stderr).splitlines()
    assert len(lines) == 1 or "--verbose" in args or "-v" in args, lines
    return done


def start_check(*args):
    """kachecks-ldap in the background, for faults injected while it runs."""
    return subprocess.Popen(cli.command("kachecks-ldap") + [str(a) for a in args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_unanswered_request(port, within=10.0):
    """Block until a request sits unread in a socket of the server on ``port``.

    With slapd stopped, bytes in its socket's receive queue mean the check
    has connected and sent its LDAP request and now waits for the answer.
    """
    limit = time.monotonic() + within
    while time.monotonic() < limit:
        table = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                               capture_output=True, text=True, timeout=5).stdout
        if any(int(line.split()[0]) > 0 for line in table.splitlines() if line.strip()):
            return
        time.sleep(0.02)
    raise AssertionError(f"no unanswered request reached port {port} within {within} s")
