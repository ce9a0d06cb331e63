"""Keywords keepalived does not know, blocks it cannot open, values it rejects.

keepalived reports an unknown keyword and goes on without it, so a typo is
a setting silently not applied: ``Nopreempt`` leaves preemption on.
Only the values the rest of the doctor relies on, and the few whose typos
change a director's behaviour, are checked here; ``keepalived -t`` checks
the others when it is installed.
"""

import difflib

from kachecks.doctor import keywords
from kachecks.doctor.findings import ERROR, at
from kachecks.doctor.scripts import seconds

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from kachecks.doctor.findings import Finding
    from kachecks.keepalivedconf import Node


def _integer(low, high):
    def check(text):
        try:
            value = int(text, 10)
        except ValueError:
            return f"is not an integer (expected {low} to {high})"
        return None if low <= value <= high else f"is out of range ({low} to {high})"
    return check


def _choice(*allowed):
    def check(text):
        return None if text in allowed else f"must be one of {', '.join(allowed)}"
    return check


def _seconds(text):
    return None if seconds(text) is not None else "is not a number of seconds"


def _digest(text):
    if len(text) != 32:
        return f"must be 32 hex digits (an md5 as genhash prints it), not {len(text)} characters"
    try:
        int(text, 16)
    except ValueError:
        return "must be 32 hex digits (an md5 as genhash prints it)"
    return None


# (enclosing block, keyword) -> check of its first argument, returning what is wrong
VALUES = {
    ("vrrp_instance", "state"): _choice("MASTER", "BACKUP"),
    ("vrrp_instance", "priority"): _integer(1, 255),
    ("vrrp_instance", "virtual_router_id"): _integer(1, 255),
    ("vrrp_instance", "advert_int"): _seconds,
    ("vrrp_script", "weight"): _integer(-253, 253),
    ("vrrp_script", "interval"): _seconds,
    ("vrrp_script", "timeout"): _seconds,
    ("virtual_server", "delay_loop"): _seconds,
    ("virtual_server", "lb_kind"): _choice("NAT", "DR", "TUN"),
    ("virtual_server", "lvs_method"): _choice("NAT", "DR", "TUN"),
    ("virtual_server", "protocol"): _choice("TCP", "UDP", "SCTP"),
    ("MISC_CHECK", "misc_timeout"): _integer(0, 4294),
    ("HTTP_GET", "http_protocol"): _choice("1.0", "1.0C", "1.0c", "1.1"),
    ("SSL_GET", "http_protocol"): _choice("1.0", "1.0C", "1.0c", "1.1"),
    ("url", "digest"): _digest,
}
for _checker in ("HTTP_GET", "SSL_GET", "TCP_CHECK", "MISC_CHECK", "SMTP_CHECK", "DNS_CHECK",
                 "UDP_CHECK", "PING_CHECK"):
    VALUES[(_checker, "delay_loop")] = _seconds
for _checker in ("HTTP_GET", "SSL_GET", "TCP_CHECK", "SMTP_CHECK", "DNS_CHECK", "UDP_CHECK",
                 "PING_CHECK"):
    VALUES[(_checker, "connect_timeout")] = _seconds
    VALUES[(_checker, "connect_port")] = _integer(1, 65535)
# Keywords that need their argument (keepalived stops on a missing one).
NEEDS_VALUE = {key for key in VALUES} | {("MISC_CHECK", "misc_path"), ("vrrp_script", "script"),
                                         ("url", "path")}
# Blocks whose first line must name something.
NEEDS_NAME = {"vrrp_instance": "a name", "vrrp_script": "a name", "virtual_server": "an address and port",
              "real_server": "an address and port", "vrrp_sync_group": "a name"}


class Shadow:
    """Where keepalived misreads the rest of a block after an unknown keyword with a block.

    keepalived takes the unknown block's ``}`` for its parent's, so every
    line up to the end of the top-level block lands one level too high;
    what it then says there is a consequence of the one typo.
    """

    __slots__ = ("file", "line", "end")

    def __init__(self, file, line, end):
        self.file = file
        self.line = line
        self.end = end  # (file, line) of the top-level block's closing brace, or None

    def covers(self, file, line):
        if line is None:
            return False
        if self.end is not None and (file, line) == self.end:
            return True
        if file != self.file or line < self.line:
            return False
        return self.end is None or self.end[0] != file or line <= self.end[1]


def check(config):
    """(syntax findings, Shadows) for the whole configuration."""
    found: list[Finding] = []
    shadows: list[Shadow] = []
    for top in config.nodes:
        _walk([top], keywords.root(), "top level", found, shadows, top)
    return found + references(config), shadows


# What a vrrp_instance / vrrp_sync_group tracks, and the top-level blocks that define it.
TRACKED = {"track_script": ("vrrp_script",), "track_process": ("vrrp_track_process",),
           "track_file": ("track_file", "vrrp_track_file")}


def references(config):
    """Tracked names no block defines before them: keepalived ignores those entries.

    keepalived resolves a track_script (track_file, track_process) name
    against the blocks read so far, so a vrrp_script defined further down
    the file is as good as missing.
    """
    found = []
    defined: dict[str, dict[str, Node]] = {kind: {} for kind in TRACKED}
    later: dict[str, dict[str, Node]] = {kind: {} for kind in TRACKED}
    for top in config.nodes:
        for kind, blocks in TRACKED.items():
            if top.keyword in blocks and top.args:
                later[kind].setdefault(top.args[0], top)
    for top in config.nodes:
        for kind, blocks in TRACKED.items():
            if top.keyword in blocks and top.args:
                defined[kind][top.args[0]] = top
        if top.keyword not in ("vrrp_instance", "vrrp_sync_group"):
            continue
        for kind in TRACKED:
            for tracked in top.children(kind):
                for entry in tracked.block or ():
                    name = entry.keyword
                    if name in defined[kind]:
                        continue
                    block = TRACKED[kind][0]
                    there = later[kind].get(name)
                    why = (f"its {there.keyword} comes only later ({there.file}:{there.line})"
                           if there is not None else f"no {block} {name} is defined")
                    found.append(at(entry, ERROR, "syntax",
                                    f"{kind} {name}: {why}: keepalived ignores this entry"))
    return found


def _walk(nodes, table, where, found, shadows, top):
    for node in nodes:
        if node.keyword == "{":
            continue  # an unexpected brace, already reported by the reader
        keyword = table.get(node.keyword)
        if keyword is None:
            found.append(at(node, ERROR, "syntax", _unknown(node.keyword, table, where)))
            if node.block is not None:
                shadows.append(Shadow(node.file, node.line, top.end))
            continue
        if node.keyword in NEEDS_NAME and not node.args:
            found.append(at(node, ERROR, "syntax", f"{node.keyword} needs {NEEDS_NAME[node.keyword]}"))
        if keyword.block is not None:
            if node.block is None:
                found.append(at(node, ERROR, "syntax", f"{node.keyword} needs a {{ … }} block"))
            else:
                _walk(node.block, keyword.block, node.keyword, found, shadows, top)
        key = (where, node.keyword)
        if key in NEEDS_VALUE and not node.args:
            found.append(at(node, ERROR, "syntax", f"{node.keyword} needs a value"))
        elif key in VALUES:
            wrong = VALUES[key](node.args[0])
            if wrong:
                found.append(at(node, ERROR, "syntax", f"{node.keyword} {node.args[0]} {wrong}"))


def _unknown(name, table, where):
    text = f"unknown keyword '{name}' in {where}" if where != "top level" else \
        f"unknown keyword '{name}' at the top level"
    same = [k for k in table if k.lower() == name.lower()]
    if same:
        return (f"{text}: keywords are case-sensitive, keepalived ignores this line; did you mean"
                f" '{same[0]}'?")
    close = difflib.get_close_matches(name, list(table), n=1, cutoff=0.8)
    if close:
        return f"{text}: keepalived ignores this line; did you mean '{close[0]}'?"
    return f"{text}: keepalived ignores this line"


def since(name):
    """The keepalived release that added keyword ``name`` anywhere, or None."""
    found = []

    def look(table):
        for key, keyword in table.items():
            if key == name and keyword.since:
                found.append(keyword.since)
            if keyword.block:
                look(keyword.block)

    look(keywords.root())
    return found[0] if found else None
