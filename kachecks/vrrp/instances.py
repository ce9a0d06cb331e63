"""A vrrp_instance as keepalived settles it: the one model of the pair watcher and the doctor.

keepalived reads a ``vrrp_instance`` block line by line, each keyword's
handler taking its line or ignoring it, then completes the instance: the
defaults, and what it rounds, clears or overrides while it loads. What goes
on the wire and who becomes MASTER follow from those settled values, not
from the lines. The rules, each from keepalived 2.2.7's and 2.3.3's code and
compared with keepalived's own dump of its configuration (tests/vrrp), are in
docs/reference.md, "A vrrp_instance as keepalived settles it".

The pair watcher (``load``) watches what the instances put on the wire; the
doctor's ``--peer`` and ``--what-if`` (kachecks.doctor.vrrp) compare and
simulate them from ``settled``. The nodes come from kachecks.keepalivedconf
(includes, ``$NAME`` definitions, ``@ID`` lines as keepalived reads them).
"""

from kachecks.errors import UsageError
from kachecks.vrrp import wire

DEFAULT_CONFIG = "/etc/keepalived/keepalived.conf"
DEFAULT_PRIORITY = 100
OWNER = 255  # the address owner's priority
MASTER, BACKUP = "MASTER", "BACKUP"
ON, OFF = ("true", "on", "yes"), ("false", "off", "no")
US = 1_000_000  # keepalived keeps times in microseconds
CS = 10_000  # VRRPv3 carries the interval in centiseconds
IFNAMSIZ = 16


class Address:
    """One address line of a vrrp_instance: ``family`` (4/6), ``packed``, ``node``
    (its line), ``dev`` (a virtual_ipaddress's ``dev`` word, else None).

    Compares and hashes as the address alone (so sets of them compare address
    lists), orders by family then value, prints as text.
    """

    __slots__ = ("family", "packed", "node", "dev")

    def __init__(self, family, packed, node, dev=None):
        self.family = family
        self.packed = packed
        self.node = node
        self.dev = dev

    def _key(self):
        return self.family, self.packed

    def __eq__(self, other):
        return isinstance(other, Address) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __lt__(self, other):
        return self._key() < other._key()

    def __gt__(self, other):
        return self._key() > other._key()

    def __str__(self):
        return wire.address_text(self.family, self.packed)

    def __repr__(self):
        return f"Address({self})"


class Instance:
    """One vrrp_instance with the settings keepalived runs it with.

    What its adverts carry: ``vrid``, ``family`` (4/6), ``version``,
    ``advert_int`` (seconds: whole under VRRPv2, centiseconds under v3),
    ``auth_type`` ("none", "pass", "ah"; None for v3, which carries none),
    ``auth_digest`` (the 8 bytes of auth_pass that count, hashed: PASS and AH;
    the password itself is never kept), ``addresses`` (packed, in order).
    Where: ``interface``, ``vips`` ((packed, interface) pairs: where each
    address goes when MASTER), ``group`` (the packed multicast destination),
    ``unicast_peers`` and ``unicast_src`` (packed; unicast_src_ip or
    mcast_src_ip, else None). Who wins: ``priority`` (configured, before
    tracking), ``state`` (MASTER or BACKUP: what it starts as), ``nopreempt``,
    ``preempt_delay`` (seconds).

    The lines behind them: ``name``, ``node``, ``where`` (file:line),
    ``vip_addresses``, ``excluded``, ``peers`` (Address tuples), ``source``
    (an Address or None), ``at(keyword)`` (the line that set a keyword);
    ``cleared``: (node, text) for each setting keepalived clears while
    loading; ``auth_ignored``: why a configured authentication is not used
    ("under VRRPv3", …), else None; ``problems``: what the watcher cannot
    watch (no interface, no VRID, an address keepalived cannot read).
    """

    __slots__ = ("name", "node", "where", "lines", "interface", "vrid", "family", "version",
                 "advert_int", "priority", "state", "nopreempt", "preempt_delay", "auth_type",
                 "auth_digest", "auth_ignored", "vip_addresses", "excluded", "peers", "source",
                 "group", "addresses", "vips", "unicast_peers", "unicast_src", "cleared",
                 "problems")

    def __init__(self, node):
        self.name = node.args[0] if node.args else "?"
        self.node = node
        self.where = f"{node.file}:{node.line}"
        self.lines = {}  # keyword -> the node that set it
        self.cleared = []
        self.problems = []

    @property
    def owner(self):
        return self.priority == OWNER

    @property
    def key(self):
        """(interface, family, vrid): what an advert is matched by."""
        return self.interface, self.family, self.vrid

    def at(self, keyword):
        """The node that set ``keyword`` (the instance's own line when none did)."""
        return self.lines.get(keyword, self.node)

    def label(self):
        """``VI_1 vrid 50 on eth0`` (``IPv6 vrid 50`` for an IPv6 instance)."""
        kind = "IPv6 vrid" if self.family == 6 else "vrid"
        return f"{self.name} {kind} {self.vrid} on {self.interface}"

    def address_texts(self):
        return [str(a) for a in self.vip_addresses]

    def __repr__(self):
        return f"Instance({self.label()})"


def defaults(config):
    """The global_defs that decide an instance: ``vrrp_version``, ``vrrp_strict`` and the
    multicast groups, from every global_defs block (keepalived applies them once the whole
    file is read, wherever the block stands)."""
    found = {"version": 2, "strict": False,
             "group": {family: wire.address_bytes(text)[1] for family, text in wire.MULTICAST.items()}}
    for block in config.blocks("global_defs"):
        for node in block.block or ():
            first = node.args[0] if node.args else None
            if node.keyword == "vrrp_version" and _number(first, 2, 3):
                found["version"] = _number(first, 2, 3)
            elif node.keyword == "vrrp_strict":
                found["strict"] = True
            elif node.keyword in ("vrrp_mcast_group4", "vrrp_mcast_group6") and first:
                family = int(node.keyword[-1])
                parsed = _parse(first)
                if parsed is not None and parsed[0] == family and wire.is_multicast(*parsed):
                    found["group"][family] = parsed[1]
    return found


def settled(config, cls=Instance):
    """Every vrrp_instance of a Config read by kachecks.keepalivedconf, as keepalived settles it,
    in file order; a second block of the same name is skipped, as keepalived skips it.
    ``cls``: Instance or a subclass (the doctor's adds what tracks it)."""
    glob = defaults(config)
    found, names = [], set()
    for node in config.blocks("vrrp_instance"):
        if node.block is None or len(node.args) != 1 or node.args[0] in names:
            continue
        names.add(node.args[0])
        found.append(_settle(cls(node), glob))
    return found


def load(path=DEFAULT_CONFIG, config_id=None, names=()):
    """(every instance, the ones to watch) of ``path``; UsageError, one line, when the
    file cannot be read, has no vrrp_instance, one cannot be watched, or ``names`` are
    not all in it."""
    from kachecks.keepalivedconf import ReadError, read

    try:
        config = read(path, config_id)
    except ReadError as exc:
        raise UsageError(str(exc)) from None
    found = settled(config)
    if not found:
        raise UsageError(f"{path}: no vrrp_instance to watch")
    for instance in found:
        if instance.problems:
            raise UsageError(f"{instance.where}: vrrp_instance {instance.name}:"
                             f" {instance.problems[0]}")
    if not names:
        return found, found
    by_name = {i.name: i for i in found}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise UsageError(f"{path}: no vrrp_instance {missing[0]} (there are: "
                         f"{', '.join(by_name)})")
    return found, [by_name[n] for n in dict.fromkeys(names)]


def _settle(inst, glob):
    """keepalived's keyword handlers over the block, in order, then its completion."""
    lines, problems = inst.lines, inst.problems
    family = version = state = priority = strict = interface = vrid = source = group = None
    advert, delay, nopreempt = None, 0, False
    auth_type, password = None, b""
    vips, excluded, peers = [], [], []
    bad_vrid = None

    def address(text, node, keyword, dev=None):
        """An Address of the instance's family; None (and a problem if unreadable) if not."""
        nonlocal family
        parsed = _parse(text)
        if parsed is None:
            problems.append(f"{keyword} {text!r} is not an address")
            return None
        if family is None:
            family = parsed[0]
        elif parsed[0] != family:
            return None  # "… MUST be of the same family … Skipping"
        return Address(*parsed, node, dev)

    for child in inst.node.block:
        k, args = child.keyword, child.args
        first = args[0] if args else None
        if k == "state" and first:
            if first != BACKUP or state != MASTER:  # BACKUP after MASTER is ignored
                state = MASTER if first == MASTER else BACKUP  # anything else: BACKUP
                lines["state"] = child
        elif k == "priority" and first:
            priority = _number(first, 1, OWNER) or DEFAULT_PRIORITY
            lines["priority"] = child
        elif k == "virtual_router_id" and first:
            if _number(first, 1, 255):
                vrid, bad_vrid = _number(first, 1, 255), None
                lines["virtual_router_id"] = child
            else:
                bad_vrid = (f"virtual_router_id {first} out of range 1-255" if first.isdigit()
                            else f"virtual_router_id {first!r} is not a number")
        elif k == "interface" and first and len(first) < IFNAMSIZ:
            interface = first
            lines["interface"] = child
        elif k in ("nopreempt", "preempt"):
            nopreempt = k == "nopreempt"
            lines["nopreempt"] = child
        elif k == "preempt_delay" and first:
            delay = _micros(first, 0, 1000 * US) or 0
            lines["preempt_delay"] = child
        elif k == "advert_int" and first and _micros(first, CS, 255 * US):
            advert = _micros(first, CS, 255 * US)
            lines["advert_int"] = child
        elif k == "version" and first and _number(first, 2, 3):
            value = _number(first, 2, 3)
            if version in (None, value) and not (value == 2 and family == 6):
                version = value  # "conflicts with configured or deduced version": the first stays
                lines["version"] = child
        elif k == "native_ipv6" and family != 4:
            family, version = 6, 3
            lines["version"] = child
        elif k == "strict_mode":
            strict = True if not args or first in ON else False if first in OFF else strict
        elif k == "authentication" and child.block is not None:
            lines["authentication"] = child
            for a in child.block:
                if a.keyword == "auth_type" and a.args and a.args[0] in ("PASS", "AH"):
                    auth_type = a.args[0].lower()  # keepalived knows these two, spelt so
                    lines["auth_type"] = a
                elif a.keyword == "auth_pass" and a.args:
                    password = a.args[0].encode("utf-8", "surrogateescape")[:wire.PASS_LENGTH]
                    lines["auth_pass"] = a
        elif k == "virtual_ipaddress" and child.block is not None:
            lines[k] = child
            for a in child.block:
                words = list(a.args)
                dev = words[words.index("dev") + 1] if "dev" in words[:-1] else None
                found = address(a.keyword.split("/", 1)[0], a, k, dev)
                if found is not None:
                    vips.append(found)
        elif k == "virtual_ipaddress_excluded" and child.block is not None:
            lines[k] = child
            for a in child.block:  # of either family, never advertised
                parsed = _parse(a.keyword.split("/", 1)[0])
                if parsed is not None:
                    excluded.append(Address(*parsed, a))
        elif k in ("unicast_src_ip", "mcast_src_ip") and first:
            found = address(first, child, k)
            if found is not None or _parse(first) is not None:
                source = found  # an address of another family clears it
                lines["source"] = child
        elif k == "mcast_dst_ip" and first:
            found = address(first, child, k)
            if found is not None and _link_multicast(found):
                group = found
        elif k == "unicast_peer" and child.block is not None:
            lines[k] = child
            for a in child.block:
                found = address(a.keyword, a, k)
                if found is not None:
                    peers.append(found)

    strict = glob["strict"] if strict is None else strict
    if family == 6 and (version is None or strict):
        version = 3  # IPv6 is VRRPv3 unless `version 2` came first (and never in strict mode)
    family = family or 4
    version = version or glob["version"]
    if priority is None:
        priority = OWNER if state == MASTER else DEFAULT_PRIORITY
    if state is None or strict and (state == MASTER) != (priority == OWNER):
        state = MASTER if priority == OWNER else BACKUP

    inst.auth_ignored = None
    if auth_type is not None:
        inst.auth_ignored = ("under strict mode" if strict else "under VRRPv3" if version == 3
                             else "without auth_pass" if not password
                             else "with AH over IPv6" if family == 6 and auth_type == "ah" else None)
        if inst.auth_ignored:
            auth_type = None
        elif auth_type == "ah" and state == MASTER and priority != OWNER:
            state = BACKUP  # "Initial state master is incompatible with AH authentication"

    if nopreempt and priority == OWNER:
        nopreempt = False
        inst.cleared.append((inst.at("nopreempt"), "nopreempt is cleared at priority 255"
                                                   " (\"nopreempt is incompatible with priority"
                                                   " 255\")"))
    if state == MASTER:
        if nopreempt:
            nopreempt = False
            inst.cleared.append((inst.at("nopreempt"), "nopreempt is cleared by state MASTER"
                                                       " (\"Warning - nopreempt will not work with"
                                                       " initial state MASTER - clearing\")"))
        if delay:
            delay = 0
            inst.cleared.append((inst.at("preempt_delay"), "preempt_delay is cleared by state"
                                                           " MASTER (\"Warning - preempt delay will"
                                                           " not work with initial state MASTER -"
                                                           " clearing\")"))
    if delay and strict:
        delay = 0
        inst.cleared.append((inst.at("preempt_delay"), "preempt_delay is cleared by strict mode"
                                                       " (\"preempt_delay is incompatible with"
                                                       " strict mode - resetting\")"))
    if nopreempt:
        delay = 0

    advert = advert or US
    if version == 2 and advert % US:
        advert = (advert + US // 2) // US * US or US  # "must be an integer. rounding"
    elif version == 3 and advert >= 4096 * CS:
        advert = 4095 * CS
    elif version == 3 and advert % CS:
        advert = (advert + CS // 2) // CS * CS or CS  # "must be in units of 10ms - rounding"

    if interface is None:
        problems.insert(0, "no interface")
    if vrid is None:
        problems.insert(1 if interface is None else 0, bad_vrid or "no virtual_router_id")

    inst.interface, inst.vrid, inst.family, inst.version = interface, vrid, family, version
    inst.advert_int, inst.priority, inst.state = advert / US, priority, state
    inst.nopreempt, inst.preempt_delay = nopreempt, delay / US
    inst.auth_type = None if version == 3 else auth_type or "none"
    inst.auth_digest = wire.pass_digest(password) if auth_type else None
    inst.vip_addresses, inst.excluded, inst.peers = tuple(vips), tuple(excluded), tuple(peers)
    inst.source = source
    unicast = bool(peers)  # unicast keywords without a peer: multicast still
    inst.group = group.packed if group is not None and not unicast else glob["group"][family]
    inst.addresses = tuple(a.packed for a in vips)
    inst.vips = tuple((a.packed, a.dev or interface) for a in vips)
    inst.unicast_peers = tuple(p.packed for p in peers)
    inst.unicast_src = source.packed if source is not None else None
    return inst


def _parse(text):
    """(family, packed) of an address literal, or None."""
    try:
        return wire.address_bytes(text)
    except ValueError:
        return None


def _link_multicast(address):
    """What keepalived takes as mcast_dst_ip: IPv4 multicast, IPv6 link-local multicast."""
    if address.family == 4:
        return wire.is_multicast(4, address.packed)
    return address.packed[0] == 0xFF and address.packed[1] & 0x0F == 2


def _number(text, low, high):
    """An unsigned decimal in low..high as keepalived reads one, else None."""
    if text is None or not text.isdigit() or not text.isascii():
        return None
    value = int(text)
    return value if low <= value <= high else None


def _micros(text, low, high):
    """A time in seconds with up to 6 decimals, in microseconds (keepalived rounds the 7th),
    within low..high; else None."""
    whole, dot, fraction = text.partition(".")
    digits = whole + fraction
    if not digits or not digits.isdigit() or not digits.isascii():
        return None
    value = int(whole or "0") * US + int(fraction[:6].ljust(6, "0"))
    if len(fraction) > 6 and fraction[6] >= "5":
        value += 1
    return value if low <= value <= high else None
