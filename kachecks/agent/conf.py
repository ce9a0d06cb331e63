"""``kachecks agent conf``: the keepalived.conf blocks that read the agent's files.

Both directors of a pair check the same real servers, so whatever a real
server's failure does, it does on both at once. The blocks are built so that
it can only ever take that real server out (its ``FILE_CHECK``), never a
director: a real server's check is never tracked in a ``vrrp_instance``.
What a ``vrrp_instance`` tracks is this director's own: its agent (a track
file the agent holds at 1 while it runs, and ``vrrp_track_process`` where the
process connector answers) and the checks the administrator declares
``director = true``, each with a weight by default (``vrrp_weight``; 0 asks
for FAULT).

keepalived's own rules, which the blocks encode
(docs/reference.md, "Track files"):
- ``track_file NAME { file PATH; weight 0 reverse; init_file 0 }``: with
  ``weight 0 reverse`` a value of 0 — and an empty, missing or garbled file —
  is a failure, so anything but the agent's explicit "up" fails closed;
  ``init_file 0`` creates the file at 0 before the agent's first result (the
  directory must exist when keepalived starts).
- ``FILE_CHECK { track_file NAME }`` inherits that weight. A ``--dynamic``
  check's value is a weight instead, so its track file has ``weight 1`` (the
  value is added to the real server's weight, here 0): down, drained or no
  agent all read as weight 0, i.e. quiesced, never removed.
- In a vrrp_instance, ``NAME weight W noreverse`` adds W to the priority while
  the check is up: a failure costs this director W, which moves the VIP only
  when W exceeds the gap to the peer's priority and the peer may preempt.
- ``vrrp_track_process`` follows the agent by its process name; with weight 0
  the instance goes to FAULT when no ``kachecks-agent`` runs. It needs the
  kernel's process connector, which answers only in the initial network
  namespace, so it is a part of its own that a namespaced keepalived leaves out.
Only syntax that keepalived 2.2.7 (Debian 12) and 2.3.3 (Debian 13) both
accept is used.
"""

import ipaddress

from kachecks.agent.config import DEFAULT_VRRP_WEIGHT

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from kachecks.agent.config import CheckSpec

PROCESS_TRACKER = "kachecks_agent"
PROCESS_NAME = "kachecks-agent"
RUNNING = "kachecks_running"  # the track_file of the agent's ALIVE_FILE
TOP = "# ---- top level of keepalived.conf, before the vrrp_instance"
INSTANCE = "# ---- inside each vrrp_instance of this director"
UNLESS = ", unless keepalived runs in a network namespace of its own"
TOP_PROCESS = f"# ---- top level too{UNLESS}"
INSTANCE_PROCESS = f"# ---- inside each vrrp_instance too{UNLESS}"
VIRTUAL_SERVER = "# ---- inside the virtual_server of each real server, replacing its MISC_CHECK"


def render(cfg):
    """The blocks for ``cfg`` (an AgentConfig), as one text."""
    checks = cfg.checks
    directors = [spec for spec in checks if spec.director]
    servers = [spec for spec in checks if not spec.director]
    out = [
        f"# keepalived.conf blocks for kachecks agent: {_count(len(checks), 'check')} from"
        f" {cfg.path}:",
        f"# {_count(len(servers), 'real-server check')}, each in its real server's FILE_CHECK;",
        f"# {_count(len(directors), 'director check')} (director = true), in the vrrp_instance.",
        "# Paste each part where its heading says, the same on both directors;",
        "# `keepalived -t` checks the result.",
        "",
        TOP,
    ]
    for spec in checks:
        kind = "weight 1" if spec.dynamic else "weight 0 reverse"
        meaning = ("value = weight (0 when down)" if spec.dynamic
                   else "1 up, 0 down; missing or garbled = down")
        out += [
            f"# {spec.name}: {spec.target.identity}, every {spec.interval:g} s; {meaning}",
            f"track_file {spec.name} {{",
            f"    file {spec.file}",
            f"    {kind}",
            "    init_file 0",
            "}",
        ]
    out += [
        "# The agent itself: 1 while it runs, 0 once it stopped (it says 0 itself; after a",
        "# crash, the unit's ExecStopPost `kachecks agent zero` does).",
        f"track_file {RUNNING} {{",
        f"    file {cfg.alive_file}",
        "    weight 0 reverse",
        "    init_file 0",
        "}",
        "",
        TOP_PROCESS,
        "# (vrrp_track_process needs the kernel's process connector, which answers only in the",
        "# initial network namespace: in a container or under `ip netns`, leave out this part",
        f"# and the track_process below; {RUNNING} still fails over when the agent stops)",
        "# No kachecks-agent process at all (killed, before systemd zeroes the files): FAULT.",
        f"# (A name only: any local user can run one; {RUNNING} is what a name cannot fake.)",
        f"vrrp_track_process {PROCESS_TRACKER} {{",
        f"    process {PROCESS_NAME}",
        "    weight 0",
        "}",
        "",
        INSTANCE,
        "    track_file {",
        "        # no agent on this director (stopped, removed, crashed): FAULT, the VIP goes",
        "        # to the peer. A real server's check is never tracked here: both directors",
        "        # see its failure, which would take the VIP off both.",
        f"        {RUNNING}",
    ]
    out += _director_entries(directors, servers)
    out += [
        "    }",
        "",
        INSTANCE_PROCESS,
        "    track_process {",
        f"        {PROCESS_TRACKER}",
        "    }",
        "",
        VIRTUAL_SERVER,
    ]
    if not servers:
        out.append("#    (no real-server check: every check has director = true)")
    for (host, port), specs in _real_servers(servers):
        dynamic = any(s.dynamic for s in specs)
        if not _is_address(host):
            out.append(f"#    real_server for {host} port {port}: write its IP address here")
        out += [f"    real_server {host if _is_address(host) else 'ADDRESS'} {port} {{",
                f"        weight {0 if dynamic else 1}"
                + ("  # the dynamic check's value is the weight" if dynamic else "")]
        for spec in specs:
            out += ["        FILE_CHECK {", f"            track_file {spec.name}", "        }"]
        out.append("    }")
    out.append("")
    return "\n".join(out)


def _director_entries(directors, servers):
    """The vrrp_instance's entries for the director checks, each with what it does.

    ``vrrp_weight = 0`` asks for FAULT while the check is down; for a check of a real
    server's address (``servers``' hosts) that would be FAULT on both directors at once,
    so it is printed weighted instead, with why.
    """
    if not directors:
        return ["        # (no check has director = true: nothing of this director's own is",
                "        # tracked; mark its uplink's or gateway's check so to add it here)"]
    shared = {_host_port(spec.target.identity)[0] for spec in servers}
    weighted = [spec for spec in directors if spec.vrrp_weight
                or _host_port(spec.target.identity)[0] in shared]
    out = []
    if weighted:
        out += [
            "        # this director's own checks (director = true): while up, each adds its",
            "        # weight to the priority; a failure takes it away, which moves the VIP only",
            "        # when the weight exceeds this director's priority minus the peer's (lvs1",
            "        # 100, lvs2 50: more than 50) and the peer may preempt (no nopreempt):",
            "        # kachecks doctor --what-if --peer FILE computes it",
        ]
    for spec in weighted:
        weight = spec.vrrp_weight
        if not weight:
            weight = DEFAULT_VRRP_WEIGHT
            out += [f"        # {spec.name}: vrrp_weight = 0 asks for FAULT, but it checks"
                    f" {_host_port(spec.target.identity)[0]},",
                    "        # a real server's address: both directors would be in FAULT at"
                    f" once; weight {weight} instead"]
        out.append(f"        {spec.name} weight {weight} noreverse")
    faulting = [spec for spec in directors if spec not in weighted]
    if faulting:
        out.append("        # this director's own checks with vrrp_weight = 0: FAULT while down")
        out += [f"        {spec.name}" for spec in faulting]
    return out


def _count(number, noun):
    return f"{number} {noun}{'s' * (number != 1)}"


def _real_servers(checks):
    """[((host, port), [specs])] in configuration order, one entry per real server."""
    groups: dict[tuple[str, int], list[CheckSpec]] = {}
    for spec in checks:
        groups.setdefault(_host_port(spec.target.identity), []).append(spec)
    return list(groups.items())


def _host_port(identity):
    """``"[192.168.8.101]:80"`` -> ("192.168.8.101", 80)."""
    host, _, port = identity.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else port


def _is_address(host):
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
