"""The last state notified per VRRP instance: what the agent's reconciliation compares with.

keepalived runs notify scripts fire and forget: a script killed, a FIFO reader that
died, a reload, and an event is never handed over. Every ``INSTANCE`` event that
reaches the spool (``kachecks notify``, ``kachecks fifo``, and the agent's own
reconciled events, which thereby count as notified) is also recorded here, once it
is spooled: ``notified/<instance>.json`` in the spool, ``{"state", "time", "event",
"source"}``. The agent's ``[vrrp]`` reads it (kachecks.agent.reconcile decides).

- One file per instance, so the 200 notifies of a burst never wait for each other;
  written atomically and durably (the spool's ``write``: tmp/, fsync, rename), under
  the instance's own flock (``<instance>.lock`` beside it), and only by an event at
  least as new as the one recorded: keepalived forks notify scripts in event order,
  a loaded director may run them out of order, and the event's time is its fork.
- In the spool, so it lives as long as the spool and is shared as the spool is: a
  non-root notify user of the spool's group writes it, root's agent reads it
  (docs/notifications.md, "Not running as root").
- A spool of an older version has no record yet: the last state its channels
  delivered (``<channel>/.states.json``) stands in, so an upgrade raises no false alarm.
"""

import re

from kachecks.notify import event as events
from kachecks.notify.spool import NOTIFIED, BadFile, Spool

INSTANCE = events.TYPES[0]  # only an instance's own events are recorded (not GROUP, RS, VS)
HOLDING = frozenset({"MASTER", "MASTER_RX_LOWER_PRI"})  # keepalived's words for "holds them"
NOT_MASTER = "NOT_MASTER"  # the agent's word: not holding (BACKUP, FAULT and STOP look alike)
RELEASED = frozenset({"BACKUP", "FAULT", "STOP", "DELETED", NOT_MASTER})
LOCK_WAIT = 1.0  # seconds: a writer holds an instance's lock for one small write
MAX_NAME = 200
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def holds(state):
    """True (a holder's state), False (not holding) or None (a state that says neither)."""
    if state in HOLDING:
        return True
    if state in RELEASED:
        return False
    return None


def file_name(name):
    """The record's file name of instance ``name`` (any text): ``i-VI_1.json``, other
    characters quoted (``i-a%2Fb.json``); a very long name by its digest (``h-….json``)."""
    stem = _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), name)
    if len(stem) > MAX_NAME:
        import hashlib

        return f"h-{hashlib.sha256(name.encode()).hexdigest()}.json"
    return f"i-{stem}.json"


def _entry(value):
    """A record (or a .states.json entry) as ``{"state", "time", …}``, or None if it is none."""
    if not isinstance(value, dict):
        return None
    state, when = value.get("state"), value.get("time")
    if not (isinstance(state, str) and events.STATE_RE.fullmatch(state)
            and isinstance(when, (int, float)) and not isinstance(when, bool)):
        return None
    return {"state": state, "time": float(when),
            "event": value.get("event") if isinstance(value.get("event"), str) else None,
            "source": value.get("source") if value.get("source") in events.SOURCES else None}


def recorded(spool, name):
    """The record of instance ``name`` in the open ``spool``, or None (none yet, or not one)."""
    try:
        return _entry(spool.read(NOTIFIED, file_name(name)))
    except BadFile:
        return None


def delivered(spool, name):
    """The newest state the channels delivered for instance ``name`` (``.states.json``), or
    None: what a spool made before records were kept says was notified."""
    from kachecks.notify.channels import CHANNELS
    from kachecks.notify.deliver import STATES

    key = events.key({"type": INSTANCE, "name": name})
    found = []
    for channel in CHANNELS:
        try:
            states = spool.read(channel, STATES)
        except BadFile:
            continue
        entry = _entry(states.get(key)) if isinstance(states, dict) else None
        if entry is not None:
            found.append(entry)
    return max(found, key=lambda entry: entry["time"], default=None)


def last(spool, name):
    """What was last notified for instance ``name``: its record, else what was delivered."""
    return recorded(spool, name) or delivered(spool, name)


def record(spool, event):
    """Record ``event`` (spooled already) as its instance's last notified state; True if it
    did, False if there is nothing to record (not an INSTANCE event, a state that says
    neither, an older event than the one recorded) or the lock stayed busy. SpoolError or
    OSError if the record cannot be written."""
    if event["type"] != INSTANCE or holds(event["state"]) is None:
        return False
    name = file_name(event["name"])
    lock = spool.lock(name[:-5] + ".lock", sub=NOTIFIED)
    if not lock.acquire(LOCK_WAIT):
        return False
    try:
        before = recorded(spool, event["name"])
        if before is not None and before["time"] > event["time"]:
            return False
        spool.write(NOTIFIED, name, {"state": event["state"], "time": event["time"],
                                     "event": event["id"], "source": event["source"],
                                     "name": event["name"]})
        return True
    finally:
        lock.release()


def read(root, names):
    """``{name: last(…) or None}`` for the instances ``names`` of the spool at ``root``
    (nothing is created; every name None when there is no spool yet). SpoolError or
    OSError when it cannot be read: the caller must then decide nothing."""
    spool = Spool.existing(root)
    if spool is None:
        return {name: None for name in names}
    with spool:
        return {name: last(spool, name) for name in names}
