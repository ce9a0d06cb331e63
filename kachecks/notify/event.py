"""One keepalived state change, from ``kachecks notify`` argv or a FIFO line.

Both inputs end up as the same plain dict, so the spool, the templates and
the channels never care where an event came from.
"""

import os
import re
import time

from kachecks.errors import UsageError
from kachecks.runtime import one_line

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any

TYPES = ("INSTANCE", "GROUP", "RS", "VS")
HEARTBEAT = "HEARTBEAT"  # made by kachecks itself ([notify] heartbeat, notify --test), never from argv
VRRP = "VRRP"  # a problem of the pair seen on the wire by the agent's [vrrp]; never from argv
KINDS = TYPES + (HEARTBEAT, VRRP)
HEARTBEAT_PID = 0  # the pid field of a heartbeat's id (no process has pid 0): known by its name
STATE_RE = re.compile(r"[A-Z][A-Z0-9_]{0,63}|\{UNKNOWN\}")
ID_RE = re.compile(r"\d{19}-\d{7,10}-[0-9a-f]{6}")  # what new_id() makes; also the spool file name
HOST_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,252}")
SOURCES = ("notify", "fifo", "heartbeat", "test", "agent")
MAX_TEXT = 1024  # per field: a name longer than this is cut, so an event file stays small

# docs/reference.md, "FIFO lines": the VRRP name is quoted and NOT escaped, so anchor the tail.
VRRP_LINE = re.compile(r'(INSTANCE|GROUP) "(.*)" (\S+) (-?\d+)')
# RS <[ip]:proto:port> <vs> STATE ; <vs> may be "FWM 5" (5 tokens) or [grp]:port.
RS_LINE = re.compile(r"RS (\[[^\]]*\]:\S+) (.+) (\S+)")
VS_LINE = re.compile(r"VS (.+) (\S+)")


class EventError(UsageError):
    """Input that is not a keepalived event; the message is one line for people."""


def new_id(now_ns=None, pid=None):
    """Sortable by time, then pid (fork order within one clock tick); unique."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    pid = os.getpid() if pid is None else pid
    return f"{now_ns:019d}-{pid:07d}-{os.urandom(3).hex()}"


def heartbeat_id(name):
    """True if the event id (or spool file name) ``name`` is a heartbeat's."""
    return name[20:27] == f"{HEARTBEAT_PID:07d}"


def process_start_ns():
    """Wall-clock time at which this process was forked.

    keepalived forks notify scripts in event order, but a loaded director may
    run their interpreters out of order; the kernel's start time (clock ticks
    since boot) keeps the order the events happened in.
    """
    try:
        with open("/proc/self/stat", "rb") as handle:
            ticks = int(handle.read().rsplit(b")", 1)[1].split()[19])
        tick_ns = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
        since_boot = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        return time.time_ns() - max(0, since_boot - ticks * tick_ns)
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time_ns()


def clean(text):
    """``text`` made safe for a mail header, a syslog line and JSON.

    Bytes that are not UTF-8 (a Latin-1 keepalived.conf) become U+FFFD;
    characters that are not printable (CR, LF, NEL…) are written as escapes
    (``\\r``, kachecks.runtime.one_line, as in a check's status line), so
    nothing can start a header line of its own; over MAX_TEXT is cut.
    """
    try:
        raw = text.encode("utf-8", "surrogateescape")  # argv bytes that were not UTF-8
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogatepass")  # a lone surrogate from a JSON file
    text = one_line(raw.decode("utf-8", "replace"))
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


def _record(event_id, when, host, kind, name, vs, state, priority, raw, source, title=None):
    """The one shape of an event, with every text field cleaned. ``title``: what an event
    kachecks made itself says after its name (``SPLIT BRAIN (…)``); None for keepalived's."""
    return {
        "id": event_id,
        "time": when,
        "host": host,
        "type": kind,
        "name": clean(name),
        "vs": clean(vs) if vs else None,
        "state": state,
        "priority": priority,
        "raw": clean(raw),
        "source": source,
        "title": clean(title) if title else None,
    }


def make(kind, name, state, priority=None, vs=None, raw="", source="notify", title=None):
    now_ns = process_start_ns() if source == "notify" else time.time_ns()
    return _record(new_id(now_ns), now_ns / 1e9, os.uname().nodename, kind, name, vs, state,
                   priority, raw, source, title)


def check(obj, expected_id=None):
    """A spooled event as a clean dict, or EventError naming what is wrong with it.

    The spool may hold anything (an older version's files, a hand-made file,
    a directory): only what passes here reaches a template or a channel.
    """
    if not isinstance(obj, dict):
        raise EventError("not a JSON object")
    event_id = obj.get("id")
    if not (isinstance(event_id, str) and ID_RE.fullmatch(event_id)):
        raise EventError(f"no valid id ({_short(event_id)})")
    if expected_id is not None and event_id != expected_id:
        raise EventError(f"id {event_id} is not the file's name")
    kind, state, name = obj.get("type"), obj.get("state"), obj.get("name")
    if kind not in KINDS:
        raise EventError(f"no valid type ({_short(kind)})")
    if not (isinstance(state, str) and STATE_RE.fullmatch(state)):
        raise EventError(f"no valid state ({_short(state)})")
    if not (isinstance(name, str) and name):
        raise EventError(f"no valid name ({_short(name)})")
    when: Any = obj.get("time")
    if not (_number(when, float) and 0 < when < 2**35):  # also false for nan, inf and 10**400
        raise EventError(f"no valid time ({_short(when)})")
    host = obj.get("host")
    if not (isinstance(host, str) and HOST_RE.fullmatch(host)):
        raise EventError(f"no valid host ({_short(host)})")
    priority, vs, raw = obj.get("priority"), obj.get("vs"), obj.get("raw", "")
    if priority is not None and not (_number(priority, int) and abs(priority) < 2**31):
        raise EventError(f"no valid priority ({_short(priority)})")
    title = obj.get("title")
    if not (vs is None or isinstance(vs, str)) or not isinstance(raw, str) or \
            not (title is None or isinstance(title, str)):
        raise EventError("vs, raw or title is not text")
    source = obj.get("source") if obj.get("source") in SOURCES else "notify"
    return _record(event_id, float(when), host, kind, name, vs, state, priority, raw, source,
                   title)


def _number(value, kind):
    """An int (or, for float, an int or float) that is not a bool."""
    allowed = (int, float) if kind is float else (int,)
    return isinstance(value, allowed) and not isinstance(value, bool)


def _short(value):
    return clean(repr(value))[:40]


def key(event):
    """What "previous state" and ordering are tracked by."""
    vs = f" {event['vs']}" if event.get("vs") else ""
    return f"{event['type']} {event['name']}{vs}"


def _state(word):
    state = word.upper()
    if not STATE_RE.fullmatch(state):
        raise EventError(f"invalid STATE {clean(word)[:40]!r} (expected MASTER, BACKUP, FAULT, STOP, UP, DOWN…)")
    return state


def _priority(word):
    try:
        priority = int(word) if len(word) <= 12 else None
    except ValueError:
        priority = None
    if priority is None or abs(priority) >= 2**31:
        raise EventError(f"invalid PRIORITY {clean(word)[:40]!r} (expected a number)")
    return priority


def _lvs(kind, rest, raw, source):
    """``RS rs [vs] STATE`` or ``VS vs STATE`` (the vs may be ``FWM 5``)."""
    if kind == "RS":
        if len(rest) < 2:
            raise EventError("RS needs the real server and a STATE, e.g. RS [192.168.8.101]:tcp:80 UP")
        name, vs = rest[0], " ".join(rest[1:-1]) or None
    else:
        if len(rest) < 2:
            raise EventError("VS needs the virtual server and a STATE, e.g. VS [192.168.8.142]:tcp:80 UP")
        name, vs = " ".join(rest[:-1]), None
    return make(kind, name, _state(rest[-1]), None, vs, raw, source)


def from_argv(args):
    """``TYPE NAME STATE [PRIORITY]`` (generic notify) or a hand-written RS/VS form."""
    args = list(args)
    raw = " ".join(args)
    if not args:
        raise EventError("missing arguments: TYPE NAME STATE [PRIORITY]")
    kind = args[0].upper()
    if kind not in TYPES:
        raise EventError(f"unknown TYPE {clean(args[0])[:40]!r} (expected INSTANCE, GROUP, RS or VS)")
    if kind in ("RS", "VS"):
        return _lvs(kind, args[1:], raw, "notify")
    if len(args) < 3:
        raise EventError(f"missing arguments after {kind}: NAME STATE [PRIORITY]")
    if len(args) > 4:
        raise EventError(f"too many arguments: {clean(raw)[:200]!r} (expected TYPE NAME STATE [PRIORITY])")
    priority = _priority(args[3]) if len(args) == 4 else None
    return make(kind, args[1], _state(args[2]), priority, None, raw, "notify")


def from_fifo_line(line):
    """One FIFO line (docs/reference.md, "FIFO lines"), without its newline or a trailing NUL."""
    line = line.rstrip("\r\n\0").rstrip("\n")
    match = VRRP_LINE.fullmatch(line)
    if match:
        kind, name, state, prio = match.groups()
        return make(kind, name, _state(state), _priority(prio), None, line, "fifo")
    for kind, pattern in (("RS", RS_LINE), ("VS", VS_LINE)):
        if line.startswith(kind + " ") and pattern.fullmatch(line):
            return _lvs(kind, line[len(kind) + 1:].split(" "), line, "fifo")
    raise EventError(f"malformed FIFO line {clean(line)[:200]!r}")


def describe(event):
    """``INSTANCE VI_1 MASTER prio 100`` — the one-line form used in logs and lists."""
    text = key(event) + " " + event["state"]
    if event.get("priority") is not None:
        text += f" prio {event['priority']}"
    return text


def public(event):
    """What a receiver is told (the webhook's ``events``): every field but ``source``."""
    shown = {k: v for k, v in event.items() if k != "source"}
    shown["previous"] = event.get("previous")
    return shown


def heartbeat(when, note, source="heartbeat"):
    """A heartbeat of this host at ``when``: spooled by `spool flush` every ``[notify]
    heartbeat``, sent straight away by `notify --test`; ``note`` says what sent it."""
    host = os.uname().nodename
    return _record(new_id(int(when * 1e9), HEARTBEAT_PID), when, host, HEARTBEAT, host, None, "ALIVE",
                   None, note, source)


def reconciled(event):
    """True for an instance's state that keepalived never notified, spooled by the agent's
    [vrrp] as it saw it (kachecks.agent.reconcile): an INSTANCE event from the agent."""
    return event["type"] == TYPES[0] and event["source"] == "agent"


def headline(event, template):
    """The one line about ``event`` (a mail's subject, a webhook's text): ``mail.subject``
    rendered; an event kachecks made itself says what it is plainly: a heartbeat, a
    problem of the VRRP pair by its title
    (``[lvs1] VI_1: SPLIT BRAIN (192.168.8.100 prio 100, 192.168.8.110 prio 50)``), or a
    state keepalived never notified (``[lvs1] VI_1: MASTER (seen by kachecks: …)``)."""
    if event["type"] == HEARTBEAT:
        test = " (test)" if event["source"] == "test" else ""
        return f"[{event['host']}] HEARTBEAT{test} from {event['name']}: kachecks can notify you"
    if event["type"] == VRRP or reconciled(event):
        return f"[{event['host']}] {event['name']}: {event.get('title') or event['state']}"
    return template.format(**fields(event))


def body(event, template):
    """The text about ``event`` in a mail: ``mail.body`` rendered, or the heartbeat's, a
    VRRP problem's or a reconciled state's own."""
    if event["type"] == HEARTBEAT:
        return HEARTBEAT_BODY.format(**fields(event))
    if event["type"] == VRRP:
        return VRRP_BODY.format(**fields(event), title=event.get("title") or event["state"])
    if reconciled(event):
        return RECONCILED_BODY.format(**fields(event), title=event.get("title") or event["state"])
    return template.format(**fields(event))


HEARTBEAT_BODY = """\
Heartbeat from kachecks on {host}

Host:    {host}
Time:    {time}
Sent by: {raw}

It comes through every notification channel, so a relay that stopped
accepting mail, a recipient that bounces or a dead webhook shows up now,
not at the next failover. If it stops coming, run `kachecks notify --test`
and `kachecks spool list` on {host}.
"""

VRRP_BODY = """\
kachecks on {host} watches the VRRP pair on the wire (kachecks agent, [vrrp])

Host:     {host}
Time:     {time}
Instance: {name}
What:     {title}
Detail:   {raw}

What each director sees now, on both:
  kachecks agent status
  kachecks vrrp watch
What each problem means, its likely causes and the commands that confirm it:
/usr/share/doc/kachecks/docs/vrrp.md
"""


RECONCILED_BODY = """\
keepalived's notification of this state never reached kachecks on {host}:
the agent saw it on the wire (kachecks agent, [vrrp]) and sends it instead.

Host:     {host}
Time:     {time}
Instance: {name}
Seen:     {title}
Previous: {previous}
Detail:   {raw}

keepalived runs notify scripts fire and forget: a notify script that failed or
was killed, a FIFO reader that died, a reload, or no notify line for this
instance. Look at the instance's notify line in keepalived.conf and at
keepalived's log on {host} (journalctl -u keepalived); see "Reconciliation" in
/usr/share/doc/kachecks/docs/notifications.md
"""


def sample():
    """A typical event: what templates are tried on when the configuration is loaded."""
    return make("INSTANCE", "VI_1", "MASTER", 100, raw='INSTANCE "VI_1" MASTER 100', source="fifo")


def fields(event):
    """Template fields for ``mail.subject`` / ``mail.body`` (see docs/notifications.md).

    The one list of them: the configuration checks templates against these keys.
    """
    prio = event.get("priority")
    stamp = time.localtime(event["time"])
    return {
        "host": event["host"],
        "time": time.strftime("%Y-%m-%d %H:%M:%S %Z", stamp),
        "type": event["type"],
        "name": event["name"],
        "vs": f" (virtual server {event['vs']})" if event.get("vs") else "",
        "state": event["state"],
        "previous": event.get("previous") or "UNKNOWN",
        "priority": "-" if prio is None else str(prio),
        "prio": "" if prio is None else f" (prio {prio})",
        "raw": event["raw"],
        "id": event["id"],
    }
