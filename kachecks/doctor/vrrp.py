"""One director's keepalived.conf for the pair comparison and the what-if.

Its vrrp_instances are keepalived's settled ones (kachecks.vrrp.instances: the
model the pair watcher shares); here is what only the what-if needs beside:
what each instance tracks (scripts, files, interfaces, processes, its sync
group's), with keepalived's load-time rules for weights (weighted tracking
ignored in a sync group or on an address owner), and the director's sync
groups, virtual servers and name. These rules are in docs/reference.md,
"The pair and the what-if", each checked against keepalived 2.2.7 and 2.3.3.
The nodes come from kachecks.keepalivedconf; nothing here reads a file.
"""

import os

from kachecks.vrrp import instances

SCRIPT, FILE, INTERFACE, PROCESS = "vrrp_script", "track_file", "interface", "track_process"
FAULT = "FAULT"  # a tracker's contribution that puts the instance in FAULT


def _integer(text, default=None):
    try:
        return int(text, 10)
    except (TypeError, ValueError):
        return default


def _weight(args, default, reverse):
    """(weight, reverse) of a ``weight W [reverse|noreverse]`` argument list; ±254 -> ±253."""
    if len(args) >= 2 and args[0] == "weight":
        value = _integer(args[1])
        if value is not None and -254 <= value <= 254:
            default = max(-253, min(253, value))
        if len(args) >= 3 and args[2] in ("reverse", "noreverse"):
            reverse = args[2] == "reverse"
    return default, reverse


class Tracker:
    """One thing an instance tracks: a script, file, interface or process, and its weight.

    ``entry`` is the line that tracks it (in the instance or the sync group),
    ``definition`` the block defining it (None for an interface); ``ignored``
    says why keepalived drops it, if it does.
    """

    __slots__ = ("kind", "name", "weight", "reverse", "entry", "definition", "ignored",
                 "implicit", "steady", "failing")

    def __init__(self, kind, name, weight, reverse, entry, definition=None, implicit=False):
        self.kind = kind
        self.name = name
        self.weight = weight
        self.reverse = reverse
        self.entry = entry
        self.definition = definition
        self.ignored = None
        self.implicit = implicit  # the instance's own interface, or a VIP's
        self.steady = None  # a track file's value before and during the failure
        self.failing = None

    @property
    def multiplier(self):
        return -1 if self.reverse else 1

    def contribution(self, ok=True, value=None):
        """What the tracker adds to the priority (or FAULT), keepalived's arithmetic.

        Scripts, interfaces and processes are OK or not (``ok``); a track file
        has a ``value``: value × weight (× −1 reverse), −254 or less = FAULT,
        capped at 253; with weight 0 a non-zero value (reverse: zero) = FAULT.
        """
        if self.ignored:
            return 0
        if self.kind == FILE:
            if self.weight == 0:
                return FAULT if (value != 0) == (self.multiplier == 1) else 0
            status = value * self.weight * self.multiplier
            return FAULT if status <= -254 else min(status, 253)
        if self.weight == 0:
            return FAULT if ok != (self.multiplier == 1) else 0
        if ok:
            return self.weight * self.multiplier if self.weight > 0 else 0
        return self.weight * self.multiplier if self.weight < 0 else 0

    def reading(self, value):
        """What a track file reading ``value`` does here, with this entry's own weight
        (``uplink weight 20 noreverse`` of a ``weight 0 reverse`` file does not fault)."""
        if self.ignored:
            return self.ignored
        kind = f"weight {self.weight}{' reverse' if self.reverse else ''}"
        got = self.contribution(value=value)
        if self.weight == 0:
            if got != FAULT:
                return f"{kind}: {value} changes nothing"
            return f"{kind}: 0 is FAULT" if self.reverse else f"{kind}: any value but 0 is FAULT"
        step = self.weight * self.multiplier
        if got == FAULT:
            return f"{kind}: {value} adds {value * step}, -254 or less: FAULT"
        drop, fault = _largest_drop(step)
        if value == drop:
            return f"{kind}: {value} adds {got}, the largest drop short of FAULT ({fault} is FAULT)"
        text = f"{kind}: {value} adds {got}"
        if self.steady is not None and self.steady != value:
            text += f" where {self.steady} adds {self.contribution(value=self.steady)}"
        return text

    def what(self):
        return {SCRIPT: f"vrrp_script {self.name}", FILE: f"track_file {self.name}",
                INTERFACE: f"interface {self.name}", PROCESS: f"track_process {self.name}"}[self.kind]


def file_values(weight, reverse, init):
    """(steady value, failing value) of a track file with ``weight``.

    Steady: its ``init_file`` value, else the value that leaves the instance
    up (0; 1 under ``weight 0 reverse``). Failing: with weight 0 the value
    that means FAULT (1; 0 with reverse); with a weight, the value that drops
    the priority most short of FAULT (weight 10: -25, that is -250; -26 faults).
    """
    multiplier = -1 if reverse else 1
    if weight == 0:
        steady = 1 if reverse else 0
        if init is not None and (init != 0) != (multiplier == 1):
            steady = init
        return steady, 0 if reverse else 1
    return init if init is not None else 0, _largest_drop(weight * multiplier)[0]


def _largest_drop(step):
    """(the value that lowers the priority most short of FAULT, the first value that faults)
    of a track file whose value counts ``step`` times (weight × ±1)."""
    sign = -1 if step > 0 else 1  # the sign of a value that lowers the priority
    return sign * (253 // abs(step)), sign * -(-254 // abs(step))


class SyncGroup:
    __slots__ = ("name", "node", "members", "trackers", "tracking_weight")

    def __init__(self, name, node, members, trackers, tracking_weight):
        self.name = name
        self.node = node
        self.members = members  # instance names, in order
        self.trackers = trackers
        self.tracking_weight = tracking_weight


class Instance(instances.Instance):
    """A vrrp_instance as keepalived settles it (kachecks.vrrp.instances), and what the
    what-if needs beside: ``trackers`` (what it tracks, its sync group's included) and
    ``sync_group``."""

    __slots__ = ("trackers", "sync_group")

    def __init__(self, node):
        super().__init__(node)
        self.trackers = []
        self.sync_group = None


class Director:
    """One director's configuration: its VRRP instances, sync groups and virtual servers."""

    __slots__ = ("config", "name", "label", "instances", "by_name", "groups", "services",
                 "router_id")

    def __init__(self, config, label):
        self.config = config
        self.label = label  # the file name shown in messages ("-" for standard input)
        self.instances = []
        self.by_name = {}
        self.groups = {}
        self.services = []
        self.router_id = None
        self.name = None

    def instance(self, name):
        return self.by_name.get(name)


def director(config, label=None):
    """The Director of a Config read by kachecks.keepalivedconf."""
    d = Director(config, label or config.path)
    d.instances = instances.settled(config, Instance)
    d.by_name = {i.name: i for i in d.instances}
    by_node = {id(i.node): i for i in d.instances}
    scripts, files, processes = {}, {}, {}
    pending_groups = []
    for top in config.nodes:  # a tracked name must be defined above the line that tracks it
        if top.keyword == "global_defs":
            router = top.child("router_id")
            if router is not None and router.args:
                d.router_id = router
        elif top.keyword == "vrrp_script" and top.args:
            scripts[top.args[0]] = top
        elif top.keyword in ("track_file", "vrrp_track_file") and top.args:
            files[top.args[0]] = top
        elif top.keyword == "vrrp_track_process" and top.args:
            processes[top.args[0]] = top
        elif top.keyword == "vrrp_instance" and id(top) in by_node:
            _track(by_node[id(top)], scripts, files, processes)
        elif top.keyword == "vrrp_sync_group" and top.args and top.block is not None:
            pending_groups.append((top, dict(scripts), dict(files), dict(processes)))
        elif top.keyword in ("virtual_server", "virtual_server_group"):
            d.services.append(top)
    for top, s, f, p in pending_groups:
        _group(d, top, s, f, p)
    for instance in d.instances:
        _neutralise(instance)
    d.name = d.router_id.args[0] if d.router_id is not None else os.path.basename(d.label) or d.label
    return d


def _track(inst, scripts, files, processes):
    """The instance's trackers: its own interface (unless ``dont_track_primary``), its
    addresses' other interfaces, then its track_* lines in order."""
    if inst.interface and not inst.node.has("dont_track_primary"):
        inst.trackers.append(Tracker(INTERFACE, inst.interface, 0, False, inst.at("interface"),
                                     implicit=True))
    for vip in inst.vip_addresses:
        if vip.dev not in (None, inst.interface) and "no_track" not in vip.node.args:
            _add(inst, Tracker(INTERFACE, vip.dev, 0, False, vip.node, implicit=True))
    for child in inst.node.block:
        if child.keyword in ("track_script", "track_file", "track_interface", "track_process") \
                and child.block is not None:
            for entry in child.block:
                tracker = _tracker(child.keyword, entry, scripts, files, processes)
                if tracker is not None:
                    _add(inst, tracker)


def _tracker(kind, entry, scripts, files, processes):
    name, args = entry.keyword, entry.args
    if kind == "track_interface":
        weight, reverse = _weight(args, 0, False)
        return Tracker(INTERFACE, name, weight, reverse, entry)
    table = {"track_script": (scripts, SCRIPT), "track_file": (files, FILE),
             "track_process": (processes, PROCESS)}[kind]
    definition = table[0].get(name)
    if definition is None:
        return None  # keepalived ignores it (the syntax audit says so)
    base_weight, base_reverse = _weight(_weight_args(definition), 1 if kind == "track_file" else 0,
                                        False)
    weight, reverse = _weight(args, base_weight, base_reverse)
    tracker = Tracker(table[1], name, weight, reverse, entry, definition)
    if kind == "track_file":
        init = definition.child("init_file")
        value = _integer(init.args[0]) if init is not None and init.args else (0 if init else None)
        tracker.steady, tracker.failing = file_values(base_weight, base_reverse, value)
    return tracker


def _weight_args(definition):
    node = definition.child("weight")
    return ("weight", *node.args) if node is not None else ()


def _add(inst, tracker):
    for i, old in enumerate(inst.trackers):
        if old.kind == tracker.kind and old.name == tracker.name:
            if old.implicit:
                inst.trackers[i] = tracker  # an explicit track_interface overrides
            return
    inst.trackers.append(tracker)


def _group(d, node, scripts, files, processes):
    members = []
    trackers = []
    tracking_weight = node.has("sync_group_tracking_weight") or node.has("global_tracking")
    for child in node.block:
        if child.keyword == "group" and child.block is not None:
            members += [w for n in child.block for w in (n.keyword, *n.args)]
        elif child.keyword in ("track_script", "track_file", "track_interface", "track_process") \
                and child.block is not None:
            for entry in child.block:
                tracker = _tracker(child.keyword, entry, scripts, files, processes)
                if tracker is not None:
                    trackers.append(tracker)
    group = SyncGroup(node.args[0], node, members, trackers, tracking_weight)
    d.groups[group.name] = group
    for name in members:
        inst = d.instance(name)
        if inst is not None and inst.sync_group is None:
            inst.sync_group = group
            for tracker in trackers:
                copy = Tracker(tracker.kind, tracker.name, tracker.weight, tracker.reverse,
                               tracker.entry, tracker.definition)
                copy.steady, copy.failing = tracker.steady, tracker.failing
                copy.implicit = "group"
                _add(inst, copy)


def _neutralise(inst):
    """keepalived's load-time rules for weights in a sync group and on an address owner."""
    in_group = inst.sync_group is not None and not inst.sync_group.tracking_weight
    if not (in_group or inst.owner):
        return
    why = (f"in sync group {inst.sync_group.name} (no sync_group_tracking_weight)" if in_group
           else "at priority 255 (address owner)")
    for tracker in inst.trackers:
        if tracker.implicit == "group":
            if inst.owner and tracker.weight:
                tracker.weight = 0
            continue
        if tracker.weight == 0:
            continue
        if tracker.kind == INTERFACE:
            if in_group:
                tracker.weight = 0
            else:
                tracker.ignored = f"weighted tracking ignored {why}"
        elif tracker.kind == SCRIPT:
            tracker.ignored = f"weighted script ignored {why}"
        elif tracker.kind == FILE:
            if tracker.weight == 1:
                tracker.weight = 0
                tracker.steady, tracker.failing = file_values(0, tracker.reverse, None)
            else:
                tracker.ignored = f"weighted file ignored {why}"
