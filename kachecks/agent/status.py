"""``kachecks agent status``: what the running agent last published, read from a file.

The agent rewrites a small JSON file beside its track files (when something in
it changed, at most once a second, and on every stop), so status needs no
connection to the agent: it is a read of a file whose mode decides who may see
it, and a dead agent's last words stay readable. The file also lists every
track file the agent wrote, so ``kachecks agent zero`` (systemd's
ExecStopPost) can set them all to 0 even when kachecks.toml was edited after
the agent loaded it.

With thousands of checks the document is megabytes: the agent renders it
incrementally (``Renderer``), each check's entry kept as JSON text and redone
only when that check's view changed, and writes it in pieces.
"""

import json
import time

from kachecks import files
from kachecks.agent import trackfile

VERSION = 1
MAX_SIZE = 16 << 20  # bytes: 10,000 checks take about 4 MB


def write(path, document, dir_fd=None):
    """Atomically replace the status file (0644, like the track files); ``path`` is a name
    in ``dir_fd`` when given (the track directory, opened once)."""
    write_bytes(path, _json(document), dir_fd)


def write_bytes(path, data, dir_fd=None):
    """``write`` for a document rendered already: bytes, or the pieces ``Renderer.render``
    gives (written one after the other, never joined)."""
    files.replace(path, data, trackfile.MODE, dir_fd=dir_fd)


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _json(value):
    return _ENCODER.encode(value).encode("utf-8")


def read(path):
    """The status document; files.UnusableFile (missing, unreadable: ``reason`` says which)
    or ValueError (not a status document)."""
    data = files.read_regular(path, "agent status file", MAX_SIZE, follow=False)
    try:
        document = json.loads(data)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if not isinstance(document, dict) or document.get("version") != VERSION:
        raise ValueError(f"{path}: not a kachecks agent status file")
    return document


# The status document, ``.kachecks-agent.json`` beside the track files: its one
# definition. The agent writes it (``document``), `kachecks agent status` renders it,
# `kachecks agent zero` reads ``pid``, ``state`` and ``files`` and marks it stopped
# (``stopped``). A field is only ever added; a change of meaning bumps VERSION.
#
#   version    VERSION
#   pid        the agent's pid (it runs while it holds the track directory's lock:
#              kachecks.agent.lock)
#   state      "running" or "stopped" (after SIGTERM/SIGINT, or `zero`)
#   started    when the agent started (Unix time)
#   written    when this document was written (Unix time): when something in it last
#              changed, not a heartbeat (an agent with none due rewrites nothing)
#   config     the kachecks.toml it runs
#   track_dir  its track directory
#   files      every track file it wrote or manages (what `zero` sets to 0)
#   checks     one object per check, in configuration order:
#     name, file, target ("[192.168.8.101]:80"), state (UP, DRAIN, DOWN; null before
#     the first result), up (bool), value (what the track file holds), since (Unix time
#     of the last change of state, or null), latency (seconds the last run took),
#     lateness (seconds the last run started after it was due), reason (the last
#     result's summary when it passed, its reason when it failed), runs, failed_runs,
#     error (why the track file could not be written, or null); and its history
#     (kachecks.agent.history): cause (the last result's code: L7OK, L4CON…; null
#     before the first), health (HAProxy's: 0 .. rise + fall - 1), rise, fall, going
#     ("down" while up but failing, "up" while down but passing, else null), downtime
#     (seconds published DOWN in total), downs (times it went DOWN), flapping (bool),
#     state_change (Nagios' percent state change it rests on), latencies (the last 60
#     run times in microseconds, oldest first, separated by spaces)
#   vrrp       null without a [vrrp] table; else the pair as the agent watches it
#              (kachecks.agent.pair.PairView): watching (bool), error (why not, or
#              null), keepalived_conf, instances (one object per watched vrrp_instance:
#     name, vrid, interface, label ("VI_1 vrid 50 on eth0"), addresses (its VIPs),
#     holder (this director holds them), held_since (Unix time or null), advertising
#     (sources advertising now), adverts (seen on the wire), sources (address, priority,
#     own, alive, adverts, last), problems (code, severity, since, text)), foreign (VRIDs
#     keepalived.conf does not use, seen on a watched interface: interface, vrid,
#     advertising, problem, sources)


def document(state, pid, started, written, config, track_dir, snapshot):
    """The status document of an agent, from its kachecks.agent.snapshot.Snapshot."""
    return {"version": VERSION, "pid": pid, "state": state, "started": started,
            "written": written, "config": config, "track_dir": track_dir,
            "checks": [_check(view) for view in snapshot.checks], "files": list(snapshot.files),
            "vrrp": pair_document(snapshot.vrrp)}


def pair_document(view):
    """The ``vrrp`` member of the status document: ``view`` (a PairView) as JSON values."""
    if view is None or not view.configured:
        return None

    def sources(found):
        return [{"address": s.address, "priority": s.priority, "own": s.own, "alive": s.alive,
                 "adverts": s.adverts, "last": s.last} for s in found]

    return {
        "watching": view.watching, "error": view.error, "keepalived_conf": view.keepalived_conf,
        "instances": [{
            "name": i.name, "vrid": i.vrid, "interface": i.interface, "label": i.label,
            "addresses": list(i.addresses), "holder": i.holder, "held_since": i.held_since,
            "advertising": i.advertising, "adverts": i.adverts, "sources": sources(i.sources),
            "problems": [{"code": p.code, "severity": p.severity, "since": p.since,
                          "text": p.text} for p in i.problems],
        } for i in view.instances],
        "foreign": [{"interface": f.interface, "vrid": f.vrid, "advertising": f.advertising,
                     "problem": f.problem, "sources": sources(f.sources)} for f in view.foreign],
    }


def _check(view):
    return {
        "name": view.name, "file": view.file, "target": view.target, "state": view.state,
        "up": view.up, "value": view.value, "since": view.since, "latency": view.latency,
        "lateness": view.lateness, "reason": view.reason, "runs": view.runs,
        "failed_runs": view.failures, "error": view.error, "cause": view.cause,
        "health": view.health, "rise": view.rise, "fall": view.fall, "going": view.going,
        "downtime": round(view.downtime, 3), "downs": view.downs, "flapping": view.flapping,
        "state_change": round(view.state_change, 1), "latencies": view.latencies,
    }


class Renderer:
    """The status document, rendered incrementally from snapshots: pieces of bytes whose
    concatenation is what ``write`` writes for ``document(...)`` of the same snapshot,
    but each check's entry is kept as JSON text and rendered again only when its view
    is new (``Snapshot.fresh``, when the last snapshot rendered is the new one's
    ``base``), the list of files only when it is another list. The entries of a
    snapshot taken a slice at a time (kachecks.agent.snapshot.Taking) can be rendered
    slice by slice as they are copied (``ahead``), so neither holds the agent's loop
    for the whole of them."""

    def __init__(self):
        self._snapshot = None  # the number of the last one rendered
        self._entries = []  # its checks' entries, each with a comma after it
        self._files = (None, b"[]")  # (the files tuple, its JSON)
        self._ahead = (None, 0)  # (the Taking, how many of its fresh entries are rendered)

    def ahead(self, taking, indexes):
        """Render the entries at ``indexes`` that ``taking`` just copied, before its
        snapshot is finished; useless (and skipped) unless the snapshot it builds on is
        the last one rendered."""
        previous = taking.previous
        if previous is None or previous.number != self._snapshot:
            return
        entries, views = self._entries, taking.views
        for index in indexes:
            entries[index] = _json(_check(views[index])) + b","
        count = self._ahead[1] if self._ahead[0] is taking else 0
        self._ahead = (taking, count + len(indexes))

    def render(self, state, pid, started, written, config, track_dir, snapshot):
        """The document, as a list of bytes to write in order."""
        views = snapshot.checks
        if self._snapshot is not None and snapshot.base == self._snapshot:
            entries = self._entries
            taking, count = self._ahead
            if taking is None or taking.fresh is not snapshot.fresh or \
                    count != len(snapshot.fresh):
                for index in snapshot.fresh:  # (not every one rendered ahead)
                    entries[index] = _json(_check(views[index])) + b","
        else:
            self._entries = entries = [_json(_check(view)) + b"," for view in views]
        self._ahead = (None, 0)
        self._snapshot = snapshot.number
        if self._files[0] is not snapshot.files:
            self._files = (snapshot.files, _json(list(snapshot.files)))
        head = _json({"version": VERSION, "pid": pid, "state": state, "started": started,
                      "written": written, "config": config, "track_dir": track_dir})
        tail = [entries[-1][:-1]] if entries else []  # the last entry without its comma
        return [head[:-1] + b',"checks":[', *entries[:-1], *tail, b'],"files":',
                self._files[1], b',"vrrp":', _json(pair_document(snapshot.vrrp)), b"}"]


def stopped(document):
    """``document`` as `zero` leaves it: the agent stopped, every check down at 0."""
    document["state"] = "stopped"
    for check in document.get("checks", []):
        if isinstance(check, dict):
            check.update(value=0, up=False)
    return document


SPARKS = "▁▂▃▄▅▆▇█"  # a terminal's sparkline, lowest to highest
ASCII_SPARKS = "_.-~=+*#"  # the same where the terminal cannot show those
SPARK_CELLS = 20  # the ring of 60 latencies in 20 cells (the highest of each 3)
# ANSI colours of a STATE cell on a terminal: UP green, DOWN red, DRAIN blue, between
# thresholds yellow; FLAPPING magenta
_COLOURS = {"UP": "32", "DOWN": "31", "DRAIN": "34", "going-down": "33", "going-up": "33",
            "FLAPPING": "35"}
COLUMNS = ("CHECK", "STATE", "VALUE", "SINCE", "CAUSE", "LATENCY", "LAST 60", "DOWNTIME",
           "DOWNS", "FLAPPING", "LAST RESULT")


def state_label(check):
    """(state, label, kind) of a status document's check: ``UP, going down 1/3`` while
    between thresholds, as HAProxy's "UP 1/3"; kind is UP, DOWN, DRAIN, PENDING,
    going-down or going-up."""
    state = check.get("state") or "PENDING"
    going = check.get("going")
    health, rise, fall = check.get("health"), check.get("rise"), check.get("fall")
    if going in ("up", "down") and all(isinstance(v, int) for v in (health, rise, fall)):
        if going == "down":
            return state, f"{state}, going down {rise + fall - 1 - health}/{fall}", "going-down"
        return state, f"{state}, going up {health}/{rise}", "going-up"
    return state, state, state if state in ("UP", "DOWN", "DRAIN") else "PENDING"


def render(document, now=None, alive=True, values=None, colour=False, sparks=SPARKS):
    """The lines ``kachecks agent status`` prints: a header, then one per check, with the
    columns of the agent's status page (kachecks.agent.page); ``colour``: ANSI colours on
    the STATE and FLAPPING cells (a terminal); ``sparks``: the sparkline's characters.

    When the agent is not running, the lines say when its last word was; ``values``
    ({path: number or None}) is what its track files hold now — what keepalived believes —
    and the lines say it: after a stop, that every file reads 0; after a crash (the agent
    never said it stopped), which files still read non-zero and that ``kachecks agent
    zero`` fixes it.
    """
    now = time.time() if now is None else now
    checks = [c for c in document.get("checks", []) if isinstance(c, dict)]
    up = sum(1 for c in checks if c.get("up"))
    written = document.get("written") or now
    stopped = document.get("state") == "stopped"  # files zeroed by the agent or `zero`
    read = not alive and values is not None  # what the files hold now, not what was written
    if alive:
        head = [f"kachecks agent (pid {document.get('pid')}): {len(checks)} checks, {up} up"]
    elif stopped:
        head = [f"kachecks agent is not running: pid {document.get('pid')} stopped at"
                f" {_stamp(written)} ({_ago(now - written)} ago)"]
    else:
        head = [f"kachecks agent is not running: pid {document.get('pid')} died without"
                f" stopping; its last status is from {_stamp(written)} ({_ago(now - written)}"
                " ago)"]
    rows = [COLUMNS]
    kinds: list[tuple[str | None, str | None]] = [(None, None)]
    for c in checks:
        since = c.get("since") if alive else written
        value = values.get(c.get("file")) if read else c.get("value", 0)
        _, label, kind = state_label(c)
        if not alive:
            label, kind = ("STOPPED" if stopped else "STALE"), None
        flapping = c.get("flapping")
        change = c.get("state_change")
        rows.append((
            str(c.get("name", "?")), label, "-" if value is None else str(value),
            f"{_stamp(since)} ({_ago(now - since)})" if since else "-",
            str(c.get("cause") or "-"),
            f"{c['latency'] * 1000:.1f} ms" if isinstance(c.get("latency"), (int, float))
            else "-",
            spark(c.get("latencies"), sparks) or "-",
            _ago(c["downtime"]) if isinstance(c.get("downtime"), (int, float)) else "-",
            str(c.get("downs", "-")),
            ("FLAPPING" if flapping else "no") + (f" {change:.0f}%" if isinstance(
                change, (int, float)) else ""),
            _last(c),
        ))
        kinds.append((kind, "FLAPPING" if flapping else None))
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    lines = head
    for row, (kind, flap) in zip(rows, kinds):
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        if colour:
            cells[1] = _paint(cells[1], kind)
            cells[9] = _paint(cells[9], flap)
        lines.append("  ".join(cells) + "  " + row[-1])
    if read:
        stale = sorted(path for path, value in values.items() if value)
        if stale:
            lines += [f"still non-zero, so keepalived still believes them: {', '.join(stale)}",
                      "set them to 0 with `kachecks agent zero` (the unit's ExecStopPost does"
                      " it after a crash), or start the agent again"]
        elif stopped:
            lines.append("every track file reads 0 (or is missing): this director's real"
                         " servers are out")
    if alive:  # a dead agent's last view of the pair is no view of it now
        lines += _pair_lines(document.get("vrrp"), now)
    return [line.rstrip() for line in lines]


def spark(latencies, sparks=SPARKS, cells=SPARK_CELLS):
    """A ring (the document's ``latencies``) as ``cells`` characters, each the highest of
    its share of the ring, scaled from 0 to the ring's highest; "" when empty or bad."""
    if not isinstance(latencies, str):
        return ""
    try:
        values = [int(v) for v in latencies.split()]
    except ValueError:
        return ""
    if not values:
        return ""
    step = max(1, -(-len(values) // cells))
    peaks = [max(values[i:i + step]) for i in range(0, len(values), step)]
    top = max(peaks) or 1
    last = len(sparks) - 1
    return "".join(sparks[min(last, v * last // top)] for v in peaks)


def _paint(cell, kind):
    code = _COLOURS.get(kind)
    return f"\033[{code}m{cell}\033[0m" if code else cell


def _pair_lines(pair, now):
    """One block per watched instance: who holds it, who advertises, what is wrong."""
    if not isinstance(pair, dict):
        return []
    lines = [f"VRRP ({pair.get('keepalived_conf')}):"]
    if not pair.get("watching"):
        return lines + [f"  not watching: {pair.get('error') or 'starting'}"]
    for i in pair.get("instances", []):
        since = i.get("held_since")
        held = (f"HELD HERE since {_stamp(since)} ({_ago(now - since)})" if i.get("holder")
                and since else "HELD HERE" if i.get("holder") else "not held here")
        heard = [f"{s['address']} prio {s['priority']}{' (this director)' if s.get('own') else ''}"
                 for s in i.get("sources", []) if isinstance(s, dict) and s.get("alive")]
        lines.append(f"  {i.get('label')}: {held} ({', '.join(i.get('addresses', []))});"
                     f" advertising: {', '.join(heard) or 'nobody'}")
        for p in i.get("problems", []):
            since = p.get("since")
            when = f" since {_stamp(since)} ({_ago(now - since)})" if since else ""
            lines.append(f"    {p.get('code')} ({p.get('severity')}){when}: {p.get('text')}")
    for f in pair.get("foreign", []):
        if f.get("problem"):
            sources = ", ".join(f"{s['address']} prio {s['priority']}" for s in f.get("sources", []))
            lines.append(f"  foreign vrid {f.get('vrid')} on {f.get('interface')}: {sources}"
                         " (a VRID keepalived.conf does not use)")
    return lines


def _last(check):
    text = check.get("reason") or "-"
    if check.get("error"):
        text = f"{text} [track file: {check['error']}]"
    return text


def _stamp(when):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


def _ago(seconds):
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 172800:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
