"""Drain the spool: fan out in order, batch, send, back off, expire.

One process delivers at a time (the spool lock), so each event is sent once
in practice; a crash between "accepted" and "removed" re-sends the same batch
with the same Message-ID (at-least-once). Whoever releases the lock looks at
incoming/ again, so an event spooled while the lock was busy is never
stranded. Nothing in the spool can block the queue: a file that is not a
usable event, or an event no channel can ever send as it is, is set aside to
expired/ with a log line. Running this detached from keepalived is
kachecks.notify.detach's job.
"""

import re
import signal
import time

from kachecks.notify import spool as store
from kachecks.notify.channels import CHANNELS, DeliveryError, sender
from kachecks.notify.event import ID_RE, STATE_RE, describe, key
from kachecks.notify.log import LOG_ERR, LOG_WARNING, log

MAX_BACKOFF = 60.0
BATCH = ".batch"
STATES = ".states.json"
MESSAGE_ID = re.compile(r"<[^\s<>]{1,300}>")


def message_id(first_id, count, domain):
    """Stable for a batch: the same events always get the same Message-ID."""
    suffix = f"+{count}" if count > 1 else ""
    return f"<{first_id}{suffix}.kachecks@{domain}>"


def _event_ns(name):
    return int(name.split("-", 1)[0])


class Deliverer:
    def __init__(self, cfg, spool, linger=False, clock=time.time):
        self.cfg = cfg
        self.spool = spool
        self.clock = clock  # wall time, which event names hold: expiry and batch windows
        self.linger_until = time.monotonic() + (cfg.spool["retry_for"] if linger else 0)
        self.stop = False
        self.delivered = 0
        self.left = None  # events still queued when run() returned
        self.errors = {}

    def sleep(self, seconds):
        """Sleep, but wake at once when told to stop (SIGTERM, or SIGUSR1 from a flush)."""
        end = time.monotonic() + seconds
        while not self.stop and time.monotonic() < end:
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))

    # -- reading the queues, setting aside what is not an event -----------------
    def queue(self, sub):
        """Event names waiting in ``sub``, oldest first; any other file there is set aside."""
        names = []
        for name in self.spool.names(sub):
            if ID_RE.fullmatch(name[:-5]):
                names.append(name)
            else:
                self.spool.discard(sub, name, "not an event file name")
        return names

    def load(self, sub, name):
        """The event in ``sub/name``, or None (gone, or set aside because it is no event)."""
        try:
            return self.spool.event(sub, name)
        except store.BadFile as exc:
            self.spool.discard(sub, name, str(exc))
            return None

    def record(self, channel, name):
        """``.states.json`` or ``.batch`` as a dict; a damaged one counts as absent (and is said)."""
        try:
            value = self.spool.read(channel, name)
        except store.BadFile as exc:
            value = exc
        if value is None or isinstance(value, dict):
            return value or {}
        log(f"ignoring damaged {self.spool.path(channel, name)}: {value}", LOG_WARNING)
        self.spool.remove(channel, name)
        return {}

    # -- steps ----------------------------------------------------------------
    def fan_out(self):
        """incoming/ -> one copy per channel (none: the syslog line was the delivery)."""
        moved = False
        for name in self.queue("incoming"):
            event = self.load("incoming", name)
            if event is None:
                continue
            for channel in self.cfg.channels():
                self.spool.write(channel, name, event)
            self.spool.remove("incoming", name)
            moved = True
        if moved:
            self.spool.sync("incoming")

    def states(self, channel):
        """Instance key -> ``{"state": …, "event": …, "time": …}``, the last known state of each."""
        return {instance: entry for instance, entry in self.record(channel, STATES).items()
                if isinstance(entry, dict) and isinstance(entry.get("state"), str)
                and STATE_RE.fullmatch(entry["state"])}

    def previous_states(self, channel):
        """Instance key -> last known state, for ``{previous}``."""
        return {instance: entry["state"] for instance, entry in self.states(channel).items()}

    def remember(self, channel, events):
        """Last known state per instance, once events are done with (sent or expired)."""
        states = self.states(channel)
        for event in events:
            states[key(event)] = {"state": event["state"], "event": event["id"], "time": event["time"]}
        self.spool.write(channel, STATES, states)

    def expire(self, channel):
        limit = self.clock() - self.cfg.spool["expire"]
        expired = []
        for name in self.queue(channel):
            if _event_ns(name) / 1e9 >= limit:
                break
            event = self.load(channel, name)
            if event is None:
                continue
            dest = self.spool.set_aside(channel, name)
            log(f"expired undelivered by {channel} after {self.cfg.spool['expire']:g} s, "
                f"kept as {self.spool.path('expired', dest)}: {describe(event)} "
                f"(event {name[:-5]}, raw {event['raw']!r})", LOG_ERR)
            expired.append(event)
        if expired:
            self.remember(channel, expired)

    def saved_batch(self, channel, first):
        """The recorded batch if it still starts with ``first``, else None."""
        saved = self.record(channel, BATCH)
        names, msgid, previous = saved.get("names"), saved.get("message_id"), saved.get("previous")
        if not (isinstance(names, list) and names and names[0] == first and isinstance(msgid, str)
                and MESSAGE_ID.fullmatch(msgid) and isinstance(previous, dict)):
            return None
        previous = {n: p for n, p in previous.items() if isinstance(p, str) and STATE_RE.fullmatch(p)}
        return [n for n in names if isinstance(n, str)], msgid, previous

    def batch(self, channel):
        """The next batch: file names, Message-ID, previous state of each.

        Decided once and recorded in ``.batch`` before the first attempt, so a
        retry (even after a crash) sends the very same message.
        """
        pending = self.queue(channel)
        saved = self.saved_batch(channel, pending[0])
        if saved:
            names, msgid, previous = saved
            waiting = set(pending)
            return [n for n in names if n in waiting], msgid, previous
        end_ns = _event_ns(pending[0]) + int(self.cfg.spool["batch_window"] * 1e9)
        wait = end_ns / 1e9 - self.clock()
        if wait > 0:
            self.sleep(wait)
            self.fan_out()
            pending = self.queue(channel)
        return self.decide(channel, [n for n in pending if _event_ns(n) <= end_ns])

    def decide(self, channel, names):
        """Record ``names`` as the batch to send (Message-ID and previous states fixed now)."""
        states, previous, host, kept = self.previous_states(channel), {}, "localhost", []
        for name in names:
            event = self.load(channel, name)
            if event:
                previous[name] = states.get(key(event))
                states[key(event)] = event["state"]
                host = event["host"]
                kept.append(name)
        if not kept:
            return [], None, {}
        msgid = message_id(kept[0][:-5], len(kept), host)
        self.spool.write(channel, BATCH, {"names": kept, "message_id": msgid, "previous": previous})
        return kept, msgid, previous

    def deliver(self, channel, send):
        """Send batches in order until the queue is empty (True) or one fails (False)."""
        while not self.stop and self.queue(channel):
            names, msgid, previous = self.batch(channel)
            events, sent = [], []
            for name in names:
                event = self.load(channel, name)
                if event:
                    event["previous"] = previous.get(name)
                    events.append(event)
                    sent.append(name)
            if not events:
                self.spool.remove(channel, BATCH)
                continue
            try:
                send(events, self.cfg, msgid)
            except DeliveryError as exc:
                self.errors[channel] = str(exc)
                log(f"{channel} delivery failed, {len(self.queue(channel))} event(s) "
                    f"kept in spool for retry: {exc}", LOG_WARNING)
                return False
            except Exception as exc:  # not the relay's answer: this content cannot go as it is
                self.unsendable(channel, sent, exc)
                continue
            self.remember(channel, events)
            for name in sent:
                self.spool.remove(channel, name)
            self.spool.remove(channel, BATCH)
            self.spool.sync(channel)
            self.delivered += len(events)
            self.errors.pop(channel, None)
            more = f" (+{len(events) - 1} more)" if len(events) > 1 else ""
            log(f"delivered by {channel} {msgid}: {describe(events[0])}{more}")
        return True

    def unsendable(self, channel, names, exc):
        """A batch the channel failed on for a reason retrying cannot cure.

        The first event is tried alone next; alone, it is set aside so that
        the events after it still go out.
        """
        why = f"{type(exc).__name__}: {exc}"[:300]
        if len(names) > 1:
            log(f"{channel}: batch {names[0][:-5]} +{len(names) - 1} could not be sent ({why}); "
                "sending its events one by one", LOG_WARNING)
            self.decide(channel, names[:1])
        else:
            self.spool.remove(channel, BATCH)
            self.spool.discard(channel, names[0], f"{channel} cannot send it ({why})")

    def drain(self):
        """Deliver everything possible; back off and retry while lingering."""
        self.spool.tidy(self.clock())
        failures = 0
        while True:
            self.fan_out()
            ok = True
            for channel in CHANNELS:
                self.expire(channel)
                if channel in self.cfg.channels():
                    ok = self.deliver(channel, sender(channel)) and ok
            if ok:
                if not self.queue("incoming"):
                    return True
                continue
            failures += 1
            delay = min(MAX_BACKOFF, 2.0 ** (failures - 1))
            if self.stop or time.monotonic() + delay > self.linger_until:
                return False
            self.sleep(delay)


def run(cfg, linger=False, wait_lock=0.0, clock=time.time):
    """Deliver under the spool lock. Returns the Deliverer, or None if another holds the lock.

    ``clock``: the wall time (tests pass a later one instead of waiting for expiry)."""
    with store.Spool(cfg.spool_dir) as spool:
        deliverer = Deliverer(cfg, spool, linger, clock)

        def stop(signum, frame):
            deliverer.stop = True

        previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGUSR1)}
        lock = spool.lock()
        try:
            ran = False
            while True:
                if not lock.acquire(wait_lock, lambda: deliverer.stop):
                    deliverer.left = store.count(spool)
                    return deliverer if ran else None
                ran = True
                try:
                    deliverer.drain()
                finally:
                    lock.release()
                # An event spooled while we held the lock found it busy: take it.
                if deliverer.stop or not spool.names("incoming"):
                    deliverer.left = store.count(spool)
                    return deliverer
                wait_lock = 0.0
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
