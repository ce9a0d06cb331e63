"""The spool seen from outside: what waits where, since when, and how delivery went.

Read only, without the lock (a deliverer may be at work: a file gone between
the listing and the reading is simply not there), so `kachecks spool list`,
a monitoring agent and a heartbeat can ask at any time, as any user who can
read the spool. ``counts`` opens no event file (the time is in the name), so
it stays cheap on every scrape. What the agent exports from it
(docs/notifications.md):

    kachecks_spool_events{channel}                   counts()[channel]["events"]
    kachecks_spool_oldest_event_age_seconds{channel}  counts()[channel]["oldest_age_seconds"]
    kachecks_notify_deliveries_total{channel,result}  counts()[channel]["deliveries"][result]
"""

import time

from kachecks.notify import event as events
from kachecks.notify import spool as store
from kachecks.notify.channels import CHANNELS
from kachecks.notify.deliver import BATCH, DELIVERIES, RESULTS


def iso(when):
    """Seconds since the epoch as ``2026-11-26T04:19:40Z``; None stays None."""
    return None if when is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def _record(spool, queue, name):
    try:
        value = spool.read(queue, name)
    except store.BadFile:
        return {}
    return value if isinstance(value, dict) else {}


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def attempts(spool, channel):
    """The batch being tried on ``channel``: its names, attempts, last attempt and error,
    and the next attempt (None: whenever a deliverer runs next, at the latest the timer)."""
    saved = _record(spool, channel, BATCH)
    names = saved.get("names")
    count = saved.get("attempts")
    error = saved.get("last_error")
    return {
        "names": [n for n in names if isinstance(n, str)] if isinstance(names, list) else [],
        "attempts": count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0,
        "last_attempt": _number(saved.get("last_attempt")),
        "last_error": events.clean(error) if isinstance(error, str) else None,
        "next_attempt": _number(saved.get("next_attempt")),
    }


def failing(root):
    """Channel -> ``attempts()`` of each channel whose batch has failed at least once."""
    spool = store.Spool.existing(root)
    if spool is None:
        return {}
    with spool:
        tried = {channel: attempts(spool, channel) for channel in CHANNELS}
    return {channel: batch for channel, batch in tried.items() if batch["attempts"]}


def deliveries(spool, channel):
    """``<channel>/.deliveries.json``: attempts by result (events, for ``expired``), ever."""
    saved = _record(spool, channel, DELIVERIES)
    return {result: n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else 0
            for result, n in ((r, saved.get(r, 0)) for r in RESULTS)}


def counts(root, now=None):
    """Per queue (incoming/, then each channel): events waiting, the age of the oldest
    (0 when none), events kept in expired/, and for a channel its deliveries by result
    and, while it fails, the batch being tried. All zero when there is no spool yet."""
    now = time.time() if now is None else now
    spool = store.Spool.existing(root)
    if spool is None:
        return {queue: _queue(None, queue, [], 0, now) for queue in store.QUEUES}
    with spool:
        expired: dict[str, int] = {}
        for name in spool.names("expired"):
            queue = name[:-5].rsplit(".", 1)[-1]
            expired[queue] = expired.get(queue, 0) + 1
        return {queue: _queue(spool, queue, [n for n in spool.names(queue) if events.ID_RE.fullmatch(n[:-5])],
                              expired.get(queue, 0), now)
                for queue in store.QUEUES}


def _queue(spool, queue, names, expired, now):
    oldest = int(names[0][:19]) / 1e9 if names else None  # the event's time leads its name
    entry = {"events": len(names), "oldest_age_seconds": round(max(0.0, now - oldest), 3) if names else 0.0,
             "oldest": iso(oldest), "expired": expired}
    if queue in CHANNELS:
        entry["deliveries"] = deliveries(spool, queue) if spool else dict.fromkeys(RESULTS, 0)
        tried = attempts(spool, queue) if spool else None
        if tried and tried["attempts"]:
            entry["failing"] = {"attempts": tried["attempts"], "last_attempt": iso(tried["last_attempt"]),
                                "last_error": tried["last_error"], "next_attempt": iso(tried["next_attempt"])}
    return entry


def document(root, now=None):
    """`kachecks spool list --json`: the counts, then each event once (oldest first) with
    the queues it is in, and the files that are no event."""
    now = time.time() if now is None else now
    tried = failing(root)
    listed: dict[str, dict] = {}
    problems: list[dict] = []
    for where, evt, name, problem in store.listing(root):
        queue, _, origin = where.partition(":")
        if evt is None:
            problems.append({"queue": where, "file": events.clean(name), "problem": problem})
            continue
        entry = listed.setdefault(evt["id"], {
            "id": evt["id"], "created": iso(evt["time"]),
            "age_seconds": round(max(0.0, now - evt["time"]), 3),
            **{k: evt[k] for k in ("type", "name", "vs", "state", "priority", "host", "source", "raw")},
            "channels": []})
        copy = {"queue": origin or queue, "status": "expired" if queue == "expired" else
                "incoming" if queue == "incoming" else "queued",
                "attempts": 0, "last_attempt": None, "last_error": None, "next_attempt": None}
        batch = tried.get(queue)
        if batch:
            copy["next_attempt"] = iso(batch["next_attempt"])  # the queue waits for its batch
            if name in batch["names"]:
                copy.update(status="sending", attempts=batch["attempts"],
                            last_attempt=iso(batch["last_attempt"]), last_error=batch["last_error"])
        entry["channels"].append(copy)
    return {"spool": root, "time": iso(now), "queues": counts(root, now),
            "events": sorted(listed.values(), key=lambda e: e["id"]), "problems": problems}
