"""One keepalived state change, from ``kachecks notify`` argv or a FIFO line.

Both inputs end up as the same plain dict, so the spool, the templates and
the channels never care where an event came from.
"""

import os
import re
import time

from kachecks.errors import UsageError

TYPES = ("INSTANCE", "GROUP", "RS", "VS")
STATE_RE = re.compile(r"[A-Z][A-Z0-9_]*|\{UNKNOWN\}")

# interfaces §5.3: the VRRP name is quoted and NOT escaped, so anchor the tail.
VRRP_LINE = re.compile(r'(INSTANCE|GROUP) "(.*)" (\S+) (-?\d+)')
# RS <[ip]:proto:port> <vs> STATE ; <vs> may be "FWM 5" (5 tokens) or [grp]:port.
RS_LINE = re.compile(r"RS (\[[^\]]*\]:\S+) (.+) (\S+)")
VS_LINE = re.compile(r"VS (.+) (\S+)")


class EventError(UsageError):
    """Input that is not a keepalived event; the message is one line for people."""


def new_id(now_ns=None):
    """Sortable by time, then pid (fork order within one clock tick); unique."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    return f"{now_ns:019d}-{os.getpid():07d}-{os.urandom(3).hex()}"


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


def make(kind, name, state, priority=None, vs=None, raw="", source="notify"):
    now_ns = process_start_ns() if source == "notify" else time.time_ns()
    return {
        "id": new_id(now_ns),
        "time": now_ns / 1e9,
        "host": os.uname().nodename,
        "type": kind,
        "name": name,
        "vs": vs,
        "state": state,
        "priority": priority,
        "raw": raw,
        "source": source,
    }


def key(event):
    """What "previous state" and ordering are tracked by."""
    vs = f" {event['vs']}" if event.get("vs") else ""
    return f"{event['type']} {event['name']}{vs}"


def _state(word):
    state = word.upper()
    if not STATE_RE.fullmatch(state):
        raise EventError(f"invalid STATE {word!r} (expected MASTER, BACKUP, FAULT, STOP, UP, DOWN…)")
    return state


def _priority(word):
    try:
        return int(word)
    except ValueError:
        raise EventError(f"invalid PRIORITY {word!r} (expected a number)") from None


def _lvs(kind, rest, raw, source):
    """``RS rs [vs] STATE`` or ``VS vs STATE`` (the vs may be ``FWM 5``)."""
    if kind == "RS":
        if len(rest) < 2:
            raise EventError("RS needs the real server and a STATE, e.g. RS [192.168.8.101]:tcp:80 UP")
        name, vs = rest[0], " ".join(rest[1:-1]) or None
    else:
        if len(rest) < 2:
            raise EventError("VS needs the virtual server and a STATE, e.g. VS [192.168.8.100]:tcp:80 UP")
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
        raise EventError(f"unknown TYPE {args[0]!r} (expected INSTANCE, GROUP, RS or VS)")
    if kind in ("RS", "VS"):
        return _lvs(kind, args[1:], raw, "notify")
    if len(args) < 3:
        raise EventError(f"missing arguments after {kind}: NAME STATE [PRIORITY]")
    if len(args) > 4:
        raise EventError(f"too many arguments: {raw!r} (expected TYPE NAME STATE [PRIORITY])")
    priority = _priority(args[3]) if len(args) == 4 else None
    return make(kind, args[1], _state(args[2]), priority, None, raw, "notify")


def from_fifo_line(line):
    """One FIFO line (interfaces §5.3), without its newline or a trailing NUL."""
    line = line.rstrip("\r\n\0").rstrip("\n")
    match = VRRP_LINE.fullmatch(line)
    if match:
        kind, name, state, prio = match.groups()
        return make(kind, name, _state(state), int(prio), None, line, "fifo")
    for kind, pattern in (("RS", RS_LINE), ("VS", VS_LINE)):
        if line.startswith(kind + " ") and pattern.fullmatch(line):
            return _lvs(kind, line[len(kind) + 1:].split(" "), line, "fifo")
    raise EventError(f"malformed FIFO line {line[:200]!r}")


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
