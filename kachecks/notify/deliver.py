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

from kachecks.notify import heartbeat
from kachecks.notify import spool as store
from kachecks.notify.channels import CHANNELS, DeliveryError, sender
from kachecks.notify.event import HEARTBEAT, ID_RE, STATE_RE, describe, heartbeat_id, key
from kachecks.notify.log import LOG_ERR, LOG_WARNING, log

MAX_BACKOFF = 60.0
BATCH = ".batch"
STATES = ".states.json"
DELIVERIES = ".deliveries.json"  # attempts by result, for the agent's kachecks_notify_deliveries_total
RESULTS = ("ok", "failed", "unsendable", "expired")
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
        self.retry_for = cfg.spool["retry_for"] if linger else 0
        self.failures, self.failing_since = 0, None  # rounds in a row with a channel failing
        self.stop = False
        self.delivered = 0
        self.left = None  # events still queued when run() returned
        self.errors = {}
        self.heartbeats = []  # (channel, event) spooled by this run

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
        """Last known state per instance, once events are done with (sent or expired);
        heartbeats have no state, their time is recorded (kachecks.notify.heartbeat)."""
        heartbeat.taken(self.spool, channel, events)
        changes = [event for event in events if event["type"] != HEARTBEAT]
        if not changes:
            return
        states = self.states(channel)
        for event in changes:
            states[key(event)] = {"state": event["state"], "event": event["id"], "time": event["time"]}
        self.spool.write(channel, STATES, states)

    def count(self, channel, result, number=1):
        """Add to ``<channel>/.deliveries.json``: attempts (events, for ``expired``) by result."""
        counts = {r: n for r, n in self.record(channel, DELIVERIES).items()
                  if r in RESULTS and isinstance(n, int) and not isinstance(n, bool) and n >= 0}
        counts[result] = counts.get(result, 0) + number
        self.spool.write(channel, DELIVERIES, counts)

    def attempted(self, channel, error):
        """Note the failed attempt in ``.batch`` (what `spool list` shows) and count it."""
        saved = self.record(channel, BATCH)
        if saved:
            attempts = saved.get("attempts")
            saved["attempts"] = (attempts if isinstance(attempts, int) and attempts > 0 else 0) + 1
            saved["last_attempt"] = self.clock()
            saved["last_error"] = str(error)[:500]
            delay = self.plan()
            saved["next_attempt"] = None if delay is None else self.clock() + delay  # None: the timer
            self.spool.write(channel, BATCH, saved)
        self.count(channel, "failed")

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
            self.count(channel, "expired", len(expired))

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
        # Less than batch_window after the first: with 0, one event per mail, even for two
        # events stamped the same nanosecond (notifies forked in one clock tick are).
        names = [n for n in pending if _event_ns(n) < end_ns] or pending[:1]
        # A heartbeat goes alone: its mail says HEARTBEAT, and no state change hides in it.
        names = names[:1] if heartbeat_id(names[0]) else [n for n in names if not heartbeat_id(n)]
        return self.decide(channel, names)

    def decide(self, channel, names):
        """Record ``names`` as the batch to send (Message-ID and previous states fixed now)."""
        states, previous, host, kept = self.previous_states(channel), {}, "localhost", []
        for name in names:
            event = self.load(channel, name)
            if event and event["type"] != HEARTBEAT:
                previous[name] = states.get(key(event))
                states[key(event)] = event["state"]
            if event:
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
                accepted = send(events, self.cfg, msgid)
            except DeliveryError as exc:
                self.errors[channel] = str(exc)
                log(f"{channel} delivery failed, {len(self.queue(channel))} event(s) "
                    f"kept in spool for retry: {exc}", LOG_WARNING)
                self.attempted(channel, exc)
                return False
            except Exception as exc:  # not the relay's answer: this content cannot go as it is
                self.count(channel, "unsendable")
                self.unsendable(channel, sent, exc)
                continue
            for address, answer in getattr(accepted, "refused", {}).items():
                log(f"{channel} {msgid}: the relay refused {address}: {answer} "
                    "(delivered to the other recipients; not retried)", LOG_ERR)
            self.remember(channel, events)
            self.count(channel, "ok")
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

    def plan(self):
        """Seconds to back off after this round's failure, or None: leave it to `spool flush`
        (told to stop, or the channels have been failing for ``retry_for``)."""
        delay = min(MAX_BACKOFF, 2.0 ** self.failures)
        since = time.monotonic() if self.failing_since is None else self.failing_since
        if self.stop or time.monotonic() + delay > since + self.retry_for:
            return None
        return delay

    def drain(self):
        """Deliver everything possible; back off and retry while lingering.

        Returns only with incoming/ and every channel's queue empty, or once the
        channels have been failing for ``retry_for`` (counted from the first
        failure: an event spooled late in a long burst gets the same retries as
        the first), or when told to stop.
        """
        self.spool.tidy(self.clock())
        while True:
            self.fan_out()
            ok = True
            for channel in CHANNELS:
                self.expire(channel)
                if channel in self.cfg.channels():
                    ok = self.deliver(channel, sender(channel)) and ok
            if ok:
                self.failures, self.failing_since = 0, None
                # A channel's batch wait fans out new events to every queue, also
                # to those of channels already done with in this round.
                if self.stop or not any(self.queue(q) for q in ("incoming", *self.cfg.channels())):
                    return not self.stop
                continue
            delay = self.plan()
            self.failures += 1
            self.failing_since = time.monotonic() if self.failing_since is None else self.failing_since
            if delay is None:
                if self.retry_for and not self.stop:
                    log(f"still failing after {self.retry_for:g} s: {store.count(self.spool)} event(s) "
                        "left for `kachecks spool flush` (the timer)", LOG_WARNING)
                return False
            self.sleep(delay)


def run(cfg, linger=False, wait_lock=0.0, clock=time.time, heartbeats=False):
    """Deliver under the spool lock. Returns the Deliverer, or None if another holds the lock.

    ``clock``: the wall time (tests pass a later one instead of waiting for expiry). With
    ``heartbeats`` (`spool flush`), the heartbeats that are due are spooled first.
    """
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
                first, ran = not ran, True
                try:
                    if first and heartbeats:
                        deliverer.heartbeats = heartbeat.spool_due(spool, cfg, deliverer.clock())
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
