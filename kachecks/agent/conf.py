"""``kachecks agent conf``: the keepalived.conf blocks that read the agent's files.

keepalived's own rules, which the blocks encode:
- ``track_file NAME { file PATH; weight 0 reverse; init_file 0 }``: with
  ``weight 0 reverse`` a value of 0 — and an empty, missing or garbled file —
  is a failure, so anything but the agent's explicit "up" fails closed;
  ``init_file 0`` creates the file at 0 before the agent's first result (the
  directory must exist when keepalived starts).
- ``FILE_CHECK { track_file NAME }`` inherits that weight. A ``--dynamic``
  check's value is a weight instead, so its track file has ``weight 1`` (the
  value is added to the real server's weight, here 0): down, drained or no
  agent all read as weight 0, i.e. quiesced, never removed.
- ``vrrp_track_process`` follows the agent by its process name; with weight 0
  the instance goes to FAULT when no ``kachecks-agent`` runs, so the VIP moves
  to the peer director instead of staying on one that stopped checking.
Only syntax that keepalived 2.2.7 (Debian 12) and 2.3.3 (Debian 13) both
accept is used.
"""

import ipaddress

PROCESS_TRACKER = "kachecks_agent"
PROCESS_NAME = "kachecks-agent"
TOP = "# ---- top level of keepalived.conf"
INSTANCE = "# ---- inside each vrrp_instance of this director"
VIRTUAL_SERVER = "# ---- inside the virtual_server of each real server, replacing its MISC_CHECK"


def render(cfg):
    """The blocks for ``cfg`` (an AgentConfig), as one text."""
    checks = cfg.checks
    out = [
        f"# keepalived.conf blocks for kachecks agent: {len(checks)} check"
        f"{'s' * (len(checks) != 1)} from {cfg.path}",
        "# Paste each part where its heading says; `keepalived -t` checks the result.",
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
        "",
        "# The agent itself: no kachecks-agent process, the instance goes to FAULT.",
        "# (A name only: any local user can run one. The instance's track_file below is",
        "# what a name cannot fake: docs/agent.md, \"What a process name proves\".)",
        f"vrrp_track_process {PROCESS_TRACKER} {{",
        f"    process {PROCESS_NAME}",
        "    weight 0",
        "}",
        "",
        INSTANCE,
        "#    track_process {",
        f"#        {PROCESS_TRACKER}",
        "#    }",
        "#    # and, for each check this instance itself depends on (value 0: FAULT):",
        "#    track_file {",
    ]
    out += [f"#        {spec.name}" for spec in checks if not spec.dynamic][:3] or ["#        NAME"]
    out += ["#    }", "", VIRTUAL_SERVER]
    for (host, port), specs in _real_servers(checks):
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


def _real_servers(checks):
    """[((host, port), [specs])] in configuration order, one entry per real server."""
    groups = {}
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
