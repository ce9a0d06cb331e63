"""The agent's side of keepalived.conf: its track files, read as keepalived reads them.

keepalived believes whatever a track file says, and the same file means
opposite things under different weights (docs/reference.md, "Track files"):
value × weight (× −1 with ``reverse``) is added to the priority or the real
server's weight; with weight 0 a non-zero value is FAULT (with ``reverse``,
zero is). The agent writes 1 while a check is up and 0 while it is down or
stopped, so three mistakes pass ``keepalived -t`` and show only as an outage:

- ``agent-polarity``: a use where a healthy 1 faults or lowers the priority
  or the real server's weight (``weight 0`` without ``reverse``, a negative
  weight without it, a positive one with it);
- ``agent-orphan``: a track file in the agent's directory that no
  ``[[check]]`` writes (keepalived reads it as 0 for ever) and that is not the
  agent's own "running" file;
- ``agent-shared-fault``: a real server's check tracked with weight 0 in a
  vrrp_instance or sync group: both directors track the same server, so its
  one failure puts both in FAULT and the VIP on neither.

The agent's configuration is read with the agent's own loader (so the doctor
and the agent agree on every path); it is read only when keepalived.conf
defines a track file at all.
"""

import difflib
import ipaddress
import os

from kachecks.doctor.findings import ERROR, WARNING, Finding, at

DEFINITIONS = ("track_file", "vrrp_track_file")
TRACKERS = ("vrrp_instance", "vrrp_sync_group")


class TrackFile:
    """A top-level ``track_file NAME { file …; weight W [reverse] }`` block."""

    __slots__ = ("name", "node", "path", "weight", "reverse")

    def __init__(self, node):
        self.name = node.args[0]
        self.node = node
        self.path = node.value("file")
        # keepalived: weight 1 unless set; a later weight line counts only while it is 1
        self.weight, self.reverse = 1, False
        for line in node.children("weight"):
            if self.weight != 1 or not line.args:
                continue
            self.weight = _weight(line.args[0], 1)
            if line.args[1:2] == ("reverse",):
                self.reverse = True

    @property
    def place(self):
        """Where a finding about the file goes: its ``file`` line."""
        return self.node.child("file") or self.node


class Use:
    """One place that reads a track file: an entry of a vrrp_instance's (or sync group's)
    ``track_file { … }``, or a real server's ``FILE_CHECK``."""

    __slots__ = ("track", "node", "owner", "weight", "reverse", "own_weight", "real_server")

    def __init__(self, track, node, owner, weight, reverse, own_weight, real_server=None):
        self.track = track
        self.node = node  # where the finding goes
        self.owner = owner  # the vrrp_instance / vrrp_sync_group / real_server node
        self.weight = weight
        self.reverse = reverse
        self.own_weight = own_weight  # False: inherited from the track_file block
        self.real_server = real_server

    @property
    def vrrp(self):
        return self.real_server is None

    def describe_weight(self):
        text = f"weight {self.weight}{' reverse' if self.reverse else ''}"
        if not self.own_weight:
            block = self.track.node
            lines = block.children("weight")
            text += f" (from track_file {self.track.name}, {_where(lines[0] if lines else block)})"
        return text


def audit(config, agent_config=None):
    """Findings about the agent's track files in ``config`` (a reader.Config).

    ``agent_config``: the agent's kachecks.toml (default: ``$KACHECKS_CONFIG``,
    else /etc/kachecks/kachecks.toml, as the agent itself reads it).
    """
    tracks = definitions(config)
    if not tracks:
        return []
    loaded = _load(config, agent_config)
    if isinstance(loaded, Finding):
        return [loaded]
    writers = {spec.file: spec for spec in loaded.checks}
    ours = {name: track for name, track in tracks.items() if _ours(track, loaded, writers)}
    if not ours:
        return []
    uses = list(vrrp_uses(config, ours)) + list(file_check_uses(config, ours))
    servers = real_servers(config)
    found = []
    for track in ours.values():
        if os.path.normpath(track.path) not in writers \
                and os.path.normpath(track.path) != loaded.alive_file:  # the agent's own
            used = any(use.track is track for use in uses)
            found.append(_orphan(track, loaded, writers, used))
    for use in uses:
        spec = writers.get(os.path.normpath(use.track.path))
        if _faults_when_healthy(use.weight, use.reverse):
            found.append(_polarity(use, spec))
        if use.vrrp and use.weight == 0 and spec is not None:
            shared = _shared(use, spec, uses, servers)
            if shared is not None:
                found.append(shared)
    return found


def definitions(config):
    """{name: TrackFile} of the track_file blocks (the first of a name: keepalived's)."""
    tracks: dict[str, TrackFile] = {}
    for node in config.nodes:
        if node.keyword in DEFINITIONS and node.args and node.block is not None:
            track = TrackFile(node)
            if track.path:
                tracks.setdefault(track.name, track)
    return tracks


def vrrp_uses(config, tracks):
    """Uses in vrrp_instance / vrrp_sync_group ``track_file { NAME [weight W [reverse]] }``."""
    for owner in config.nodes:
        if owner.keyword not in TRACKERS:
            continue
        for block in owner.children("track_file"):
            for entry in block.block or ():
                track = tracks.get(entry.keyword)
                if track is None:
                    continue
                weight, reverse, own = track.weight, track.reverse, False
                args = entry.args
                if args[:1] == ("weight",) and len(args) >= 2:
                    weight, own = _weight(args[1], track.weight), True
                    if len(args) >= 3:
                        reverse = args[2] == "reverse"
                yield Use(track, entry, owner, weight, reverse, own)


def file_check_uses(config, tracks):
    """Uses in real servers' ``FILE_CHECK { track_file NAME; [weight W [reverse]] }``."""
    for vs in config.blocks("virtual_server"):
        for rs in vs.children("real_server"):
            for check in rs.children("FILE_CHECK"):
                line = check.child("track_file")
                track = tracks.get(line.args[0]) if line is not None and line.args else None
                if track is None:
                    continue
                weight, reverse, own = track.weight, track.reverse, False
                setting = check.child("weight")
                if setting is not None and setting.args:
                    weight, own = _weight(setting.args[0], track.weight), True
                    reverse = setting.args[1:2] == ("reverse",)
                yield Use(track, line, rs, weight, reverse, own, real_server=rs)


def real_servers(config):
    """[(address, real_server node)] of every virtual_server."""
    found = []
    for vs in config.blocks("virtual_server"):
        for rs in vs.children("real_server"):
            if rs.args:
                found.append((_address(rs.args[0]), rs))
    return found


def _load(config, agent_config):
    """The AgentConfig, or the Finding (at keepalived.conf) that says why it cannot be read."""
    from kachecks.agent import config as agentconfig

    try:
        return agentconfig.load(agent_config)
    except agentconfig.ConfigError as exc:
        # what this user may not read (a 0640 kachecks.toml, a password file) is
        # not wrong: the audit is incomplete; anything else the agent refuses too
        if exc.denied:
            return Finding(config.path, None, WARNING, "agent-config",
                           f"{exc}: the agent's side of the track files is not audited; run the"
                           " doctor as root")
        return Finding(config.path, None, ERROR, "agent-config",
                       f"{exc}: the agent refuses this configuration (kachecks agent"
                       " --check-config), and the doctor cannot audit its track files")


def _ours(track, agent, writers):
    path = os.path.normpath(track.path)
    return path in writers or os.path.dirname(path) == agent.track_dir \
        or path.startswith(agent.track_dir + os.sep)


def _faults_when_healthy(weight, reverse):
    """Does a healthy 1 fault, or lower the priority / the real server's weight?"""
    if weight == 0:
        return not reverse  # weight 0: non-zero is FAULT, unless reversed
    return weight * (-1 if reverse else 1) < 0


def _polarity(use, spec):
    name = use.track.name
    what = f"kachecks agent check {spec.name}" if spec is not None else "the agent"
    head = (f"track_file {name} ({what} writes 1 while up, 0 while down or stopped) is read"
            f" here with {use.describe_weight()}: ")
    if use.weight == 0 and use.vrrp:
        effect = (f"keepalived puts {_owner(use)} in FAULT while the check is up, and takes it"
                  " out of FAULT while the check is down")
        fix = (f"write `{name} weight 0 reverse` (FAULT while it is down) or a positive weight"
               f" (`{name} weight 20 noreverse`: 20 more while it is up)")
    elif use.weight == 0:
        effect = ("keepalived takes the real server out while its check is up, and puts it"
                  " back while the check is down")
        fix = ("write `weight 0 reverse` in the track_file block (as `kachecks agent conf`"
               " prints it) or in this FILE_CHECK")
    else:
        loss = abs(use.weight)
        thing = "the priority" if use.vrrp else "the real server's weight"
        effect = (f"a healthy check takes {loss} off {thing}"
                  + (" (FAULT at 254)" if loss == 254 else "")
                  + ", a failed or stopped one nothing: the preference is upside down")
        if use.vrrp:
            fix = f"write `{name} weight {loss} noreverse`"
        elif use.own_weight:
            fix = f"write `weight {loss} noreverse` in this FILE_CHECK"
        else:
            fix = f"write `weight {loss}` in the track_file block"
    return at(use.node, ERROR, "agent-polarity", f"{head}{effect}; {fix}")


def _orphan(track, agent, writers, used):
    path = os.path.normpath(track.path)
    source = agent.path if agent.checks or os.path.exists(agent.path) else \
        f"{agent.path} (there is none)"
    message = (f"track_file {track.name}: {path} is in the agent's track directory"
               f" ({agent.track_dir}) but no [[check]] of {source} writes it")
    if os.path.basename(path) == os.path.basename(agent.status_file):
        message += ": it is the agent's status document, not a track file"
    effect = ("keepalived reads a missing or foreign file as 0 for ever: FAULT under weight 0"
              " reverse, a real server that never comes up under FILE_CHECK")
    if not used:
        return at(track.place, WARNING, "agent-orphan",
                  f"{message}; tracked nowhere yet, but {effect}")
    fix = f"add a [[check]] named {os.path.basename(path)!r} to {agent.path}, or correct the path"
    close = difflib.get_close_matches(path, list(writers), n=1, cutoff=0.8)
    if close:
        fix += f" (did you mean {close[0]}?)"
    return at(track.place, ERROR, "agent-orphan", f"{message}: {effect}; {fix}")


def _shared(use, spec, uses, servers):
    """agent-shared-fault for a weight-0 VRRP use of a real server's check, else None."""
    name = use.track.name
    path = os.path.normpath(use.track.path)
    reasons = []
    for other in uses:
        if not other.vrrp and os.path.normpath(other.track.path) == path:
            address = other.real_server.args[0] if other.real_server.args else "?"
            reasons.append(f"real server {address} reads the same file in its FILE_CHECK,"
                           f" {_where(other.node)}")
            break
    host = _address(spec.target.host or "")
    same = [rs for address, rs in servers if host is not None and address == host]
    # the real server of the same port, else the same machine behind another port
    same.sort(key=lambda rs: rs.args[1:2] != (str(spec.target.port),))
    if not reasons and same:
        reasons.append(f"its target {spec.target.identity} is real server {same[0].args[0]},"
                       f" {_where(same[0])}")
    if not reasons:
        return None
    return at(use.node, ERROR, "agent-shared-fault",
              f"{_owner(use)} tracks {name} with {use.describe_weight()}: FAULT while the check"
              f" is down. But kachecks agent check {spec.name} checks a real server"
              f" ({reasons[0]}), and the other director tracks the same server: its one failure"
              " puts both directors in FAULT and the VIP on neither. Leave real servers to"
              f" their FILE_CHECK, or track it with a weight (`{name} weight 20 noreverse`): a"
              " failure both directors see then costs both the same, and the VIP stays up")


def _owner(use):
    node = use.owner
    return f"{node.keyword} {node.args[0]}" if node.args else node.keyword


def _where(node):
    return f"{os.path.basename(node.file)}:{node.line}"


def _weight(text, default):
    """A track-file weight as keepalived reads it: an integer in −254..254, else ``default``."""
    try:
        value = int(text, 10)
    except ValueError:
        return default
    return value if -254 <= value <= 254 else default


def _address(text):
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return text or None
