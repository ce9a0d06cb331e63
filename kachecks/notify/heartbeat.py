"""The heartbeat: one through every channel each ``[notify] heartbeat``, and ``notify --test``.

A relay that started rejecting our mail, or a recipient that bounces, is
otherwise found at the next failover. ``kachecks spool flush`` (the systemd
timer, every minute: no agent needed) spools a heartbeat into each channel's
queue when its period is due; from there it goes like any event (retried,
expired, never lost), alone in its mail.

One per period per channel, whatever is killed when: the time of the last
heartbeat is recorded in ``<channel>/.heartbeat.json`` once it is spooled;
a heartbeat still queued counts as recorded (its id says it is one:
kachecks.notify.event.heartbeat_id), and a deliverer records it before it removes it
from the queue (sent or expired). So a flush killed between spooling and
recording leaves it queued, and one that finds it gone finds it recorded.
Periods follow each other (the next is due one period after the last, not
after the flush that found it due), unless a whole period was missed.
"""

import time

from kachecks.notify import event as events
from kachecks.notify.log import LOG_NOTICE, log
from kachecks.notify.spool import BadFile

RECORD = ".heartbeat.json"


def period_text(seconds):
    """``24h``, ``90m``, ``30s``: a period as the configuration writes it."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:.0f}{unit}"
    return f"{seconds:g}s"


def recorded(spool, channel):
    """Time of the last heartbeat recorded for ``channel``, or None."""
    try:
        value = spool.read(channel, RECORD)
    except BadFile:
        return None
    last = value.get("last") if isinstance(value, dict) else None
    return float(last) if isinstance(last, (int, float)) and not isinstance(last, bool) else None


def last(spool, channel):
    """Time of the last heartbeat of ``channel``: recorded, or still in its queue."""
    queued = [int(name[:19]) / 1e9 for name in spool.names(channel)
              if events.ID_RE.fullmatch(name[:-5]) and events.heartbeat_id(name)]
    known = [t for t in (recorded(spool, channel), *queued) if t is not None]
    return max(known, default=None)


def record(spool, channel, when):
    """Remember that the heartbeat of ``when`` is spooled for ``channel`` (never going back)."""
    before = recorded(spool, channel)
    if before is None or when > before:
        spool.write(channel, RECORD, {"last": when})


def taken(spool, channel, sent):
    """A deliverer is about to remove ``sent`` from ``channel``'s queue: record its heartbeats."""
    beats = [evt["time"] for evt in sent if evt["type"] == events.HEARTBEAT and evt["source"] == "heartbeat"]
    if beats:
        record(spool, channel, max(beats))


def next_slot(previous, period, now):
    """When the heartbeat due at ``now`` is stamped, or None if none is due.

    The one after ``previous`` is due a period later and stamped then; after a
    missed period (the timer stopped), or a clock set back by more than a
    period, it is due now.
    """
    if previous is None or not previous - period <= now < previous + 2 * period:
        return now
    return previous + period if now >= previous + period else None


def spool_due(spool, cfg, now=None):
    """Spool every heartbeat that is due (under the spool lock); ``[(channel, event)]``."""
    period = cfg.notify["heartbeat"]
    if not period:
        return []
    now = time.time() if now is None else now
    channels = cfg.channels()
    waiting = ", ".join(f"{channel} {len(spool.names(channel))}" for channel in channels)
    made = []
    for channel in channels:
        slot = next_slot(last(spool, channel), period, now)
        if slot is None:
            continue
        beat = events.heartbeat(slot, f"kachecks spool flush, every {period_text(period)} "
                                      f"([notify] heartbeat); waiting in the spool then: {waiting}")
        spool.write(channel, beat["id"] + ".json", beat)
        record(spool, channel, slot)
        log(f"heartbeat spooled for {channel} ({beat['id']})", LOG_NOTICE)
        made.append((channel, beat))
    return made


def test(cfg, out):
    """``kachecks notify --test``: a heartbeat through every configured channel now, not
    through the spool; ``out(channel, ok, text)`` for each. True if every one accepted it."""
    from kachecks.notify.channels import DeliveryError, sender

    beat = events.heartbeat(time.time(), "kachecks notify --test", source="test")
    msgid = f"<{beat['id']}.test.kachecks@{beat['host']}>"
    every = True
    for channel in cfg.channels():
        started = time.monotonic()
        try:
            accepted = sender(channel)([dict(beat)], cfg, msgid)
        except DeliveryError as exc:
            ok, text = False, str(exc)
        except Exception as exc:  # a template or a setting the channel cannot use
            ok, text = False, f"{type(exc).__name__}: {exc}"
        else:
            refused = "; ".join(f"{address}: {answer}" for address, answer in accepted.refused.items())
            ok = not refused
            text = f"{accepted.answer} ({time.monotonic() - started:.2f} s)"
            if refused:
                text += f", but refused {refused}"
        every = every and ok
        out(channel, ok, text)
    return every and bool(cfg.channels())
