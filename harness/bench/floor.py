"""The floors under the agent rows: what a probe costs run in a warm loop, in one process.

The agent can only approach the probe it runs: the same HTTP, TCP, TLS or LDAP probe
(``contract.evaluate``), called back to back in a loop inside one warm process, with
nothing around it — no schedule, no track file, no wake-up between runs. For LDAP the
floor under that is ldap3's own: the same exchange made with ldap3 alone (connect,
search, unbind, as kachecks-ldap does anonymously), and a bind before the search (what
check_ldap does). Each floor runs in a process of its own, the checks' interpreter,
the tree's kachecks; CPU is the process's user+sys (getrusage) over the measured runs,
after unmeasured ones.
"""

import json
import os
import subprocess
import sys

RUNS = 1000
WARMUP = 100

# Run by the checks' interpreter with the tree on PYTHONPATH: kachecks and ldap3 only.
_CODE = r'''
import json, resource, sys
kind, runs, warmup, argv = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
if kind == "probe":
    from kachecks.checks import contract, registry
    command = registry.parse_command(argv)
    check, target = command.check, command.target
    def once():
        result = contract.evaluate(check, target)
        if not result.ok:
            raise SystemExit(f"not healthy: {result.reason}")
else:
    import ldap3
    host, port, base, search_filter, attribute = argv
    def once():
        server = ldap3.Server(host, port=int(port), get_info=ldap3.NONE)
        conn = ldap3.Connection(server, auto_referrals=False, read_only=True,
                                check_names=False, raise_exceptions=False,
                                return_empty_attributes=False)
        conn.open(read_server_info=False)
        if kind == "ldap3-bind":
            conn.bind()
        conn.search(base, search_filter, search_scope=ldap3.SUBTREE, attributes=[attribute],
                    dereference_aliases=ldap3.DEREF_NEVER)
        if not conn.response:
            raise SystemExit(f"no entry: {conn.result}")
        conn.unbind()
for _ in range(warmup):
    once()
before = resource.getrusage(resource.RUSAGE_SELF)
for _ in range(runs):
    once()
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
print(json.dumps({"ms": cpu / runs * 1000}))
'''


class Floor:
    """One floor: ``kind`` "probe" (``argv`` a check's command line) or "ldap3" /
    "ldap3-bind" (``argv``: host, port, base, filter, attribute)."""

    def __init__(self, label, kind, argv, c_peer, skip=None):
        self.label = label
        self.kind = kind
        self.argv = argv
        self.c_peer = c_peer
        self.skip = skip
        self.samples = []  # ms of CPU per run, one per round


def measure_once(floor, python, env, runs=RUNS, warmup=WARMUP):
    """CPU ms per run of one round of ``floor``; RuntimeError if it could not run."""
    done = subprocess.run([python, "-c", _CODE, floor.kind, str(runs), str(warmup),
                           *floor.argv], env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        text = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise RuntimeError(text[-1] if text else f"exit {done.returncode}")
    return json.loads(done.stdout.splitlines()[-1])["ms"]


def measure(floors, python, env, rounds, progress):
    """Fill each floor's samples, ``rounds`` rounds round-robin."""
    active = [f for f in floors if f.skip is None]
    for i in range(rounds):
        for floor in active:
            if floor.skip is not None:
                continue
            try:
                floor.samples.append(measure_once(floor, python, env))
            except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError) as exc:
                floor.skip = str(exc)[:160]
        if progress:
            print(f"\r  floor round {i + 1}/{rounds}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)


def environment(env, tree):
    """The floors' environment: the bench's, the tree first on the path."""
    return dict(env, PYTHONPATH=os.pathsep.join(p for p in (tree, env.get("PYTHONPATH")) if p))
