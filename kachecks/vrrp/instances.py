"""keepalived.conf's vrrp_instance blocks, as the pair watcher needs them.

Read with the doctor's reader (includes, ``$NAME`` definitions, ``@ID``
lines exactly as keepalived reads them); each instance keeps what its
adverts must carry (version, advert_int, address list, auth type, the PASS
password as a digest only) and where to watch (interface, unicast peers,
multicast group). Defaults are keepalived's
(docs/reference.md, "VRRP on the wire"): version 2 (global ``vrrp_version``), IPv6 always 3, advert_int 1,
priority 100 (255 with ``state MASTER`` and no priority), the instance family
that of its first address.
"""

from kachecks.errors import UsageError
from kachecks.vrrp import wire

DEFAULT_CONFIG = "/etc/keepalived/keepalived.conf"


class Instance:
    """One vrrp_instance: ``name``, ``interface``, ``vrid``, ``family`` (4/6),
    ``version``, ``advert_int`` (seconds), ``priority`` (configured, before tracking),
    ``addresses`` (packed, what its adverts carry), ``vips`` ((packed, interface)
    pairs: where each address goes when it is MASTER), ``auth_type`` ("none", "pass",
    "ah"; None for v3), ``auth_digest`` (PASS only), ``unicast_peers`` (packed),
    ``unicast_src`` (packed or None), ``group`` (packed multicast destination),
    ``where`` (file:line)."""

    __slots__ = ("name", "interface", "vrid", "family", "version", "advert_int", "priority",
                 "addresses", "vips", "auth_type", "auth_digest", "unicast_peers", "unicast_src",
                 "group", "where")

    def __init__(self, **fields):
        for name in self.__slots__:
            setattr(self, name, fields[name])

    @property
    def key(self):
        """(interface, family, vrid): what an advert is matched by."""
        return self.interface, self.family, self.vrid

    def label(self):
        """``VI_1 vrid 50 on eth0`` (``IPv6 vrid 50`` for an IPv6 instance)."""
        kind = "IPv6 vrid" if self.family == 6 else "vrid"
        return f"{self.name} {kind} {self.vrid} on {self.interface}"

    def address_texts(self):
        return [wire.address_text(self.family, a) for a in self.addresses]

    def __repr__(self):
        return f"Instance({self.label()})"


def load(path=DEFAULT_CONFIG, config_id=None, names=()):
    """(every instance, the ones to watch) of ``path``; UsageError, one line, when the
    file cannot be read, has no vrrp_instance, or ``names`` are not all in it."""
    from kachecks.doctor.reader import ReadError, read

    try:
        config = read(path, config_id)
    except ReadError as exc:
        raise UsageError(str(exc)) from None
    globals_ = {}
    for block in config.blocks("global_defs"):
        for node in block.block or ():
            if node.args:
                globals_[node.keyword] = node.args[0]
    found = [_instance(node, globals_) for node in config.blocks("vrrp_instance")]
    if not found:
        raise UsageError(f"{path}: no vrrp_instance to watch")
    if not names:
        return found, found
    by_name = {i.name: i for i in found}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise UsageError(f"{path}: no vrrp_instance {missing[0]} (there are: "
                         f"{', '.join(by_name)})")
    return found, [by_name[n] for n in dict.fromkeys(names)]


def _instance(node, globals_):
    where = f"{node.file}:{node.line}"
    name = node.args[0] if node.args else "?"

    def bad(what):
        return UsageError(f"{where}: vrrp_instance {name}: {what}")

    interface = node.value("interface") or globals_.get("default_interface")
    if not interface:
        raise bad("no interface")
    vrid = _integer(node.value("virtual_router_id"), 1, 255, bad, "virtual_router_id")
    vips = []
    for entry in _entries(node, "virtual_ipaddress"):
        text = entry.keyword.split("/", 1)[0]
        try:
            family, packed = wire.address_bytes(text)
        except ValueError:
            raise bad(f"virtual_ipaddress {entry.keyword!r} is not an address") from None
        args = list(entry.args)
        dev = args[args.index("dev") + 1] if "dev" in args[:-1] else interface
        vips.append((family, packed, dev))
    peers = []
    for entry in _entries(node, "unicast_peer"):
        try:
            peers.append(wire.address_bytes(entry.keyword)[1])
        except ValueError:
            raise bad(f"unicast_peer {entry.keyword!r} is not an address") from None
    if vips:
        family = vips[0][0]
    elif node.has("native_ipv6") or any(len(p) == 16 for p in peers):
        family = 6
    else:
        family = 4
    version = 3 if family == 6 else _integer(node.value("version", globals_.get("vrrp_version", "2")),
                                              2, 3, bad, "version")
    try:
        advert_int = float(node.value("advert_int", "1"))
    except ValueError:
        raise bad("advert_int is not a number") from None
    if not 0 < advert_int <= 255:
        raise bad("advert_int out of range")
    state = node.value("state", "BACKUP")
    priority = _integer(node.value("priority", "255" if state == "MASTER" else "100"), 0, 255, bad,
                        "priority")
    auth_type, digest = None, None
    auth = node.child("authentication")
    if version == 2:
        kind = (auth.value("auth_type") or "").upper() if auth is not None else ""
        auth_type = {"PASS": "pass", "AH": "ah"}.get(kind, "none")
        if auth_type == "pass":
            password = auth.value("auth_pass") or ""
            digest = wire.pass_digest(password.encode("utf-8", "surrogateescape"))
    src = node.value("unicast_src_ip")
    group = node.value("mcast_dst_ip")
    try:
        group = wire.address_bytes(group)[1] if group else wire.address_bytes(wire.MULTICAST[family])[1]
        src = wire.address_bytes(src)[1] if src else None
    except ValueError as exc:
        raise bad(str(exc)) from None
    return Instance(
        name=name, interface=interface, vrid=vrid, family=family, version=version,
        advert_int=advert_int, priority=priority,
        addresses=tuple(packed for f, packed, _dev in vips if f == family),
        vips=tuple((packed, dev) for f, packed, dev in vips if f == family),
        auth_type=auth_type, auth_digest=digest, unicast_peers=tuple(peers), unicast_src=src,
        group=group, where=where)


def _entries(node, keyword):
    """The lines of ``keyword { … }`` in ``node``'s block (none without one)."""
    child = node.child(keyword)
    return child.block or () if child is not None else ()


def _integer(text, low, high, bad, keyword):
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise bad(f"{keyword} {text!r} is not a number" if text else f"no {keyword}") from None
    if not low <= value <= high:
        raise bad(f"{keyword} {value} out of range {low}-{high}")
    return value
