"""Two directors' keepalived.conf side by side: what makes the pair fail before it does.

Each file passes ``keepalived -t`` alone; together they may not work as a
pair. keepalived 2.2.7 discards an advert whose version, auth, v2
advert_int or address list differs from its own
(docs/reference.md, "The pair and the what-if"):
the backup never hears the master and takes the addresses too. 2.3.3 still discards the first three but accepts another
address list, so the pair elects one MASTER and the addresses only one side
lists are held by nobody when the other side is MASTER.

A finding about both sides is one finding per side, each at its own line and
naming the other's file:line, so ``--json`` keeps one file and line per object.
Passwords are never printed: only whether they differ.
"""

from collections import Counter

from kachecks.doctor.findings import ERROR, WARNING, Finding
from kachecks.vrrp.instances import OWNER

# virtual_server keywords whose values are safe and useful to print; others "differ"
SHOWN = {"lb_algo", "lb_kind", "lvs_sched", "lvs_method", "persistence_timeout", "protocol",
         "weight", "delay_loop", "connect_timeout", "connect_port", "connect_ip", "path",
         "digest", "status_code", "misc_timeout", "misc_dynamic", "inhibit_on_failure",
         "quorum", "hysteresis", "persistence_granularity", "ha_suspend", "virtualhost",
         "sorry_server", "http_protocol", "retry", "delay_before_retry", "nb_get_retry",
         "alpha", "omega", "ops"}
# keywords that change what is said, not what is served
UNSERVED = ("notify_up", "notify_down", "smtp_alert")
AUTH_TYPE = {"none": "none", "pass": "PASS", "ah": "AH"}  # as auth_type spells them


def where(node):
    return f"{node.file}:{node.line}" if node.line is not None else f"{node.file}"


class _Pair:
    """The findings for one pair of files: ``mine`` (audited) and ``peer``."""

    def __init__(self, mine, peer):
        self.mine = mine
        self.peer = peer
        self.found = []

    def both(self, code, severity, a_node, b_node, text_a, text_b=None):
        """One finding at each side's line; ``text_*`` gets the other side's name and place."""
        text_b = text_a if text_b is None else text_b
        self.found.append(Finding(a_node.file, a_node.line, severity, code,
                                  text_a.format(other=self.peer.name, there=where(b_node))))
        self.found.append(Finding(b_node.file, b_node.line, severity, code,
                                  text_b.format(other=self.mine.name, there=where(a_node))))

    def one(self, code, severity, node, text):
        self.found.append(Finding(node.file, node.line, severity, code, text))


def compare(mine, peer):
    """Findings (pair-*) for two Directors: this one and the peer."""
    pair = _Pair(mine, peer)
    for a, b in match(mine, peer, pair):
        _advert(pair, a, b)
        _addresses(pair, a, b)
        _unicast(pair, a, b)
        _priority(pair, a, b)
    _services(pair)
    return pair.found


def match(mine, peer, pair=None):
    """(instance here, instance there) pairs: by name, then by interface and VRID.

    With ``pair``, what has no partner becomes a ``pair-instance`` finding.
    """
    pairs = []
    left = list(peer.instances)
    alone = []
    for a in mine.instances:
        b = peer.instance(a.name)
        if b is not None:
            left.remove(b)
            pairs.append((a, b))
        else:
            alone.append(a)
    for a in list(alone):
        b = next((b for b in left if (b.interface, b.vrid) == (a.interface, a.vrid)), None)
        if b is not None:
            left.remove(b)
            alone.remove(a)
            pairs.append((a, b))
    if pair is not None:
        for a, b in pairs:
            if a.vrid != b.vrid:
                addresses = _list(set(a.vip_addresses) | set(b.vip_addresses))
                pair.both("pair-instance", ERROR, a.at("virtual_router_id"), b.at("virtual_router_id"),
                          f"{a.name} has virtual_router_id {a.vrid} here and {b.vrid} on {{other}}"
                          f" ({{there}}): two virtual routers, each alone and MASTER: both"
                          f" directors hold {addresses}",
                          f"{b.name} has virtual_router_id {b.vrid} here and {a.vrid} on {{other}}"
                          f" ({{there}}): two virtual routers, each alone and MASTER: both"
                          f" directors hold {addresses}")
        for side, others, other in ((alone, peer.instances, peer), (left, mine.instances, mine)):
            for inst in side:
                pair.one("pair-instance", ERROR, inst.node, _alone(inst, other, others))
    return [(a, b) for a, b in pairs if a.vrid == b.vrid]


def _alone(inst, other, others):
    same = [o for o in others if o.vrid == inst.vrid and o.interface == inst.interface]
    text = (f"vrrp_instance {inst.name} (vrid {inst.vrid} on {inst.interface}) is on this director"
            f" only: {other.name} ({other.label}) has no instance of that name"
            f"{'' if same else ' nor that vrid on that interface'}: it is MASTER here alone, with no"
            f" failover for {_list(inst.vip_addresses)}")
    if same:
        text += (f"; {other.name}'s {same[0].name} ({where(same[0].node)}) uses the same vrid and"
                 " is matched with another instance of this file")
    return text


def _list(addresses):
    return ", ".join(str(a) for a in sorted(addresses)) or "no address"


def _advert(pair, a, b):
    if a.version != b.version:
        pair.both("pair-advert", ERROR, a.at("version"), b.at("version"),
                  f"{a.name} is VRRPv{a.version} here and v{b.version} on {{other}} ({{there}}):"
                  " each side discards the other's adverts (\"wrong version\", keepalived 2.2.7"
                  " and 2.3.3 alike) and both become MASTER",
                  f"{b.name} is VRRPv{b.version} here and v{a.version} on {{other}} ({{there}}):"
                  " each side discards the other's adverts (\"wrong version\", keepalived 2.2.7"
                  " and 2.3.3 alike) and both become MASTER")
        return
    if a.advert_int != b.advert_int:
        mine, theirs = _seconds(a.advert_int), _seconds(b.advert_int)
        if a.version == 2:
            text = ("{name} has advert_int {x} here and {y} on {{other}} ({{there}}): VRRPv2"
                    " adverts carry it and each side discards the other's (\"advertisement interval"
                    " mismatch\", keepalived 2.2.7 and 2.3.3 alike): both become MASTER")
            severity = ERROR
        else:
            text = ("{name} has advert_int {x} here and {y} on {{other}} ({{there}}): VRRPv3 does"
                    " not check it (a backup adopts the master's interval), so no dual master; but"
                    " each side's master-down time follows the master's interval")
            severity = WARNING
        pair.both("pair-advert", severity, a.at("advert_int"), b.at("advert_int"),
                  text.format(name=a.name, x=mine, y=theirs),
                  text.format(name=b.name, x=theirs, y=mine))
    if a.version == 2 and (a.auth_type != b.auth_type or a.auth_digest != b.auth_digest):
        if a.auth_type != b.auth_type:
            text = ("{name} authenticates with {x} here and {y} on {{other}} ({{there}}): each side"
                    " discards the other's adverts (\"received a … auth, expecting …\", keepalived"
                    " 2.2.7 and 2.3.3 alike): both become MASTER")
            x, y = AUTH_TYPE[a.auth_type], AUTH_TYPE[b.auth_type]
        else:
            text = ("{name}'s auth_pass differs from {{other}}'s ({{there}})"
                    + (" in the first 8 characters, all that keepalived sends" if a.auth_type == "pass"
                       else "") + ": each side discards the other's adverts (\"received an invalid"
                    " passwd\", keepalived 2.2.7 and 2.3.3 alike): both become MASTER")
            x = y = ""
        line = "auth_type" if a.auth_type != b.auth_type else "auth_pass"
        pair.both("pair-advert", ERROR, _auth_at(a, line), _auth_at(b, line),
                  text.format(name=a.name, x=x, y=y), text.format(name=b.name, x=y, y=x))
    elif (a.auth_ignored or b.auth_ignored) and _configured_auth(a) != _configured_auth(b):
        reason = a.auth_ignored or b.auth_ignored
        pair.both("pair-advert", WARNING, a.at("authentication"), b.at("authentication"),
                  f"{a.name}'s authentication differs from {{other}}'s ({{there}}), but keepalived"
                  f" ignores authentication {reason}: adverts carry none, no dual master"
                  " (remove the authentication block)",
                  f"{b.name}'s authentication differs from {{other}}'s ({{there}}), but keepalived"
                  f" ignores authentication {reason}: adverts carry none, no dual master"
                  " (remove the authentication block)")


def _auth_at(inst, keyword):
    return inst.lines.get(keyword) or inst.at("authentication")


def _configured_auth(inst):
    node = inst.lines.get("authentication")
    if node is None:
        return None
    return tuple((n.keyword, n.args) for n in node.block or ())


def _seconds(value):
    return f"{value:g}"


def _sides(here, there):
    """``192.168.8.142 only here and … only on {other}``: what one side has that the other lacks."""
    said = []
    if here - there:
        said.append(f"{_list(here - there)} only here")
    if there - here:
        said.append(f"{_list(there - here)} only on {{other}}")
    return " and ".join(said)


def _addresses(pair, a, b):
    mine, theirs = set(a.vip_addresses), set(b.vip_addresses)
    if mine != theirs:
        def text(inst, here, there):
            return (f"{inst.name}'s virtual_ipaddress differs from {{other}}'s ({{there}}):"
                    f" {_sides(here, there)} ({len(here)} here, {len(there)} on {{other}});"
                    " keepalived 2.2.7 discards each other's adverts (\"received an unexpected ip"
                    " number count\" or \"ip address associated with VRID … not present in MASTER"
                    " advert\") and both directors become MASTER; 2.3.3 accepts them (one MASTER,"
                    " \"expected … VIPs\" logged), but an advert with a higher priority then"
                    " demotes this director's MASTER and only the other side's list is held")
        pair.both("pair-addresses", ERROR, a.at("virtual_ipaddress"), b.at("virtual_ipaddress"),
                  text(a, mine, theirs), text(b, theirs, mine))
    else:
        _counts(pair, a, b)
        _prefixes(pair, a, b)
    ex_mine, ex_theirs = set(a.excluded), set(b.excluded)
    if ex_mine != ex_theirs:
        def text(inst, here, there):
            return (f"{inst.name}'s virtual_ipaddress_excluded differs from {{other}}'s"
                    f" ({{there}}): {_sides(here, there)}: not in the adverts (no dual master),"
                    " but a failover adds or drops these addresses")
        pair.both("pair-addresses", ERROR, a.at("virtual_ipaddress_excluded"),
                  b.at("virtual_ipaddress_excluded"), text(a, ex_mine, ex_theirs),
                  text(b, ex_theirs, ex_mine))


def _counts(pair, a, b):
    """The same addresses, one listed more often on one side: keepalived 2.2.7 advertises
    every line (an address twice), 2.3.3 ignores the second of an instance's own."""
    mine, theirs = Counter(a.vip_addresses), Counter(b.vip_addresses)
    if mine == theirs:
        return

    def text(inst, here, there):
        counts = ", ".join(f"{addr} {_times(here[addr])} here, {_times(there[addr])} on {{other}}"
                           for addr in sorted(here, key=str) if here[addr] != there[addr])
        return (f"{inst.name}'s virtual_ipaddress lists the same addresses as {{other}}'s"
                f" ({{there}}) but not as often: {counts}; keepalived 2.2.7 advertises every"
                " line and discards adverts with another count (\"received an unexpected ip"
                " number count\"): both directors become MASTER; 2.3.3 ignores an address"
                " listed twice in one instance (\"VIP duplicates a VIP\"): list each once")
    pair.both("pair-addresses", ERROR, a.at("virtual_ipaddress"), b.at("virtual_ipaddress"),
              text(a, mine, theirs), text(b, theirs, mine))


def _times(count):
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def _prefixes(pair, a, b):
    """Same addresses, other prefix lengths: not on the wire, but a failover changes the route."""
    theirs = {addr: addr.node for addr in b.vip_addresses}
    for addr in a.vip_addresses:
        node, other = addr.node, theirs.get(addr)
        if other is None:
            continue
        mine_len, their_len = _prefix(node.keyword), _prefix(other.keyword)
        if mine_len != their_len:
            pair.both("pair-addresses", WARNING, node, other,
                      f"{a.name}: {node.keyword} here, {other.keyword} on {{other}} ({{there}}):"
                      " the adverts agree (no dual master), but a failover changes the prefix"
                      " and so the routes",
                      f"{b.name}: {other.keyword} here, {node.keyword} on {{other}} ({{there}}):"
                      " the adverts agree (no dual master), but a failover changes the prefix"
                      " and so the routes")


def _prefix(text):
    return text.split("/", 1)[1] if "/" in text else "32"


def _unicast(pair, a, b):
    a_uni, b_uni = bool(a.peers), bool(b.peers)
    if a_uni != b_uni:
        uni, multi = (a, b) if a_uni else (b, a)
        text_uni = (f"{uni.name} sends unicast adverts here (unicast_peer) but multicast on {{other}}"
                    " ({there}): the multicast adverts never reach this director, which becomes"
                    " MASTER too")
        text_multi = (f"{multi.name} sends multicast adverts here but unicast on {{other}} ({{there}},"
                      " unicast_peer): this director's adverts never reach it, and both become"
                      " MASTER")
        a_node, b_node = a.at("unicast_peer"), b.at("unicast_peer")
        pair.both("pair-unicast", ERROR, a_node, b_node,
                  text_uni if a is uni else text_multi, text_multi if a is uni else text_uni)
        return
    if not a_uni:
        return
    for src_side, peer_side in ((a, b), (b, a)):
        if src_side.source is None:
            continue
        source, source_node = src_side.source, src_side.source.node
        if source in peer_side.peers:
            continue
        listed = _list(peer_side.peers)
        to_src = (f"{src_side.name}'s unicast_src_ip {source} is missing from {{other}}'s"
                  f" unicast_peer ({{there}}: {listed}): {{other}} never sends its adverts here,"
                  " so this director becomes MASTER while it is MASTER too (keepalived 2.2.7 and"
                  " 2.3.3 alike)")
        to_peer = (f"{peer_side.name}'s unicast_peer ({listed}) lacks {{other}}'s unicast_src_ip"
                   f" {source} ({{there}}): this director's adverts never reach {{other}}, which"
                   " becomes MASTER while this one is MASTER too (keepalived 2.2.7 and 2.3.3"
                   " alike)")
        peer_node = peer_side.at("unicast_peer")
        if src_side is a:
            pair.both("pair-unicast", ERROR, source_node, peer_node, to_src, to_peer)
        else:
            pair.both("pair-unicast", ERROR, peer_node, source_node, to_peer, to_src)


def _priority(pair, a, b):
    for inst in (a, b):
        for node, text in inst.cleared:
            pair.one("pair-priority", WARNING, node,
                     f"{inst.name}: {text}: this director preempts its peer at once whenever its"
                     " priority is higher")
    if a.priority == b.priority:
        def equal(inst):
            return (f"{inst.name} has priority {inst.priority} here and on {{other}} ({{there}}):"
                    " the director that becomes MASTER first keeps the addresses (an equal-priority"
                    " advert does not preempt); when both come up together, the higher primary"
                    " address wins: a surprise after each restart, not a dual master"
                    + (" (both are address owners: keepalived logs a CONFIGURATION ERROR and"
                       " lowers its own)" if inst.priority == OWNER else ""))
        pair.both("pair-priority", WARNING, a.at("priority"), b.at("priority"), equal(a), equal(b))
    if a.state == b.state == "MASTER":
        def masters(inst):
            return (f"{inst.name} has state MASTER here and on {{other}} ({{there}}): each claims"
                    " the addresses one advert interval after it starts; the pair then settles by"
                    " priority, and the later starter preempts the earlier")
        pair.both("pair-priority", WARNING, a.at("state"), b.at("state"), masters(a), masters(b))
    if a.nopreempt != b.nopreempt and not (a.cleared or b.cleared):
        keeps, preempts = (a, b) if a.nopreempt else (b, a)
        text_keeps = (f"{keeps.name} has nopreempt here but not on {{other}} ({{there}}):"
                      " {other} takes the addresses back whenever its priority is above this"
                      " director's, this director never does")
        text_preempts = (f"{preempts.name} preempts here but has nopreempt on {{other}}"
                         " ({there}): this director takes the addresses back whenever its"
                         " priority is above {other}'s, {other} never does")
        pair.both("pair-priority", WARNING, a.at("nopreempt"), b.at("nopreempt"),
                  text_keeps if keeps is a else text_preempts,
                  text_preempts if keeps is a else text_keeps)


# -- virtual servers ---------------------------------------------------------

def _key(node):
    return (node.keyword, *node.args)


def _flatten(block, prefix=()):
    """{path: node} of a block's lines; a path names each enclosing block by its line."""
    out = {}
    counts: dict[str, int] = {}
    for node in block or ():
        if node.keyword in UNSERVED or node.keyword.startswith("notify"):
            continue
        if node.block is not None:
            name = _key(node)
            if node.keyword == "url":
                name = ("url", node.value("path", ""))
            path = (*prefix, " ".join(name))
            out[path] = node
            out.update(_flatten(node.block, path))
        else:
            n = counts.get(node.keyword, 0)
            counts[node.keyword] = n + 1
            out[(*prefix, node.keyword if not n else f"{node.keyword}#{n + 1}")] = node
    return out


def _services(pair):
    theirs = {_key(n): n for n in pair.peer.services}
    mine = {_key(n): n for n in pair.mine.services}
    for key, node in mine.items():
        other = theirs.get(key)
        label = " ".join(key)
        if other is None:
            pair.one("pair-services", WARNING, node,
                     f"{label} is on this director only ({pair.peer.name}, {pair.peer.label}, has"
                     " none): a failover to it stops this service")
            continue
        _service(pair, label, node, other)
    for key, node in theirs.items():
        if key not in mine:
            pair.one("pair-services", WARNING, node,
                     f"{' '.join(key)} is on this director only ({pair.mine.name},"
                     f" {pair.mine.label}, has none): a failover to it stops this service")


def _service(pair, label, a, b):
    fa, fb = _flatten(a.block), _flatten(b.block)
    reported = set()
    for path in list(fa) + [p for p in fb if p not in fa]:
        if any(path[:i] in reported for i in range(1, len(path))):
            continue  # inside a block already reported as one-sided
        na, nb = fa.get(path), fb.get(path)
        what = " ".join(path)
        if na is None or nb is None:
            present, absent_side = (na, b) if na is not None else (nb, a)
            owner = pair.mine if na is not None else pair.peer
            other = pair.peer if na is not None else pair.mine
            reported.add(path)
            pair.one("pair-services", WARNING, present,
                     f"{label}: {what} on this director only ({other.name}: {where(absent_side)}):"
                     " a failover changes what is served")
            pair.one("pair-services", WARNING, _nearest(absent_side, path, fb if na is not None else fa),
                     f"{label}: {what} is on {owner.name} ({where(present)}) but not here:"
                     " a failover changes what is served")
            continue
        if na.block is not None or na.args == nb.args:
            continue
        keyword = path[-1].split("#", 1)[0]
        if keyword in SHOWN:
            shown_a = " ".join(na.args)
            shown_b = " ".join(nb.args)
            pair.both("pair-services", WARNING, na, nb,
                      f"{label}: {what} {shown_a} here, {shown_b} on {{other}} ({{there}}):"
                      " a failover changes what is served",
                      f"{label}: {what} {shown_b} here, {shown_a} on {{other}} ({{there}}):"
                      " a failover changes what is served")
        else:
            pair.both("pair-services", WARNING, na, nb,
                      f"{label}: {what} differs from {{other}}'s ({{there}}): a failover changes"
                      " how it is checked or served")


def _nearest(block_node, path, flat):
    """The deepest enclosing block of ``path`` present on that side, else the virtual server."""
    for i in range(len(path) - 1, 0, -1):
        node = flat.get(path[:i])
        if node is not None:
            return node
    return block_node
