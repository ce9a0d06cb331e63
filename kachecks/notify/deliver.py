"""Drain the spool: fan out in order, batch, send, back off, expire.

One process delivers at a time (the spool lock), so each event is sent once
in practice; a crash between "accepted" and "removed" re-sends the same batch
with the same Message-ID (at-least-once). Whoever releases the lock looks at
incoming/ again, so an event spooled while the lock was busy is never
stranded. Running this detached from keepalived is kachecks.notify.detach's job.
"""

import os
import signal
import time

from kachecks.notify import spool
from kachecks.notify.channels import CHANNELS, DeliveryError, sender
from kachecks.notify.event import describe, key
from kachecks.notify.log import LOG_ERR, LOG_WARNING, log

MAX_BACKOFF = 60.0


def message_id(first_id, count, domain):
    """Stable for a batch: the same events always get the same Message-ID."""
    suffix = f"+{count}" if count > 1 else ""
    return f"<{first_id}{suffix}.kachecks@{domain}>"


def _event_ns(name):
    return int(name.split("-", 1)[0])


class Deliverer:
    def __init__(self, cfg, linger=False):
        self.cfg = cfg
        self.root = cfg.spool_dir
        self.linger_until = time.monotonic() + (cfg.spool["retry_for"] if linger else 0)
        self.stop = False
        self.delivered = 0
        self.errors = {}

    def sleep(self, seconds):
        """Sleep, but wake at once when told to stop (SIGTERM, or SIGUSR1 from a flush)."""
        end = time.monotonic() + seconds
        while not self.stop and time.monotonic() < end:
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))

    # -- steps ----------------------------------------------------------------
    def fan_out(self):
        """incoming/ -> one copy per channel (none: the syslog line was the delivery)."""
        incoming = spool.names(self.root, "incoming")
        if not incoming:
            return
        for name in incoming:
            path = os.path.join(self.root, "incoming", name)
            event = spool.read_json(path)
            if not isinstance(event, dict) or "id" not in event:
                log(f"unreadable spool file {path} moved to expired/", LOG_ERR)
                os.replace(path, os.path.join(self.root, "expired", name + ".bad"))
                continue
            for channel in self.cfg.channels():
                spool.write_json(self.root, os.path.join(self.root, channel, name), event)
            spool.remove(path)
        spool.fsync_dir(os.path.join(self.root, "incoming"))

    def states(self, channel):
        return spool.read_json(os.path.join(self.root, channel, ".states.json"), {})

    def remember(self, channel, events):
        """Last known state per instance, once events are done with (sent or expired)."""
        states = self.states(channel)
        for event in events:
            states[key(event)] = {"state": event["state"], "event": event["id"], "time": event["time"]}
        spool.write_json(self.root, os.path.join(self.root, channel, ".states.json"), states)

    def expire(self, channel):
        limit = time.time() - self.cfg.spool["expire"]
        expired = []
        for name in spool.names(self.root, channel):
            if _event_ns(name) / 1e9 >= limit:
                break
            path = os.path.join(self.root, channel, name)
            event = spool.read_json(path, {})
            os.replace(path, os.path.join(self.root, "expired", f"{name[:-5]}.{channel}.json"))
            log(f"expired undelivered by {channel} after {self.cfg.spool['expire']:g} s, "
                f"kept in {self.root}/expired: {describe(event) if event else name} "
                f"(event {name[:-5]}, raw {event.get('raw', '')!r})", LOG_ERR)
            if event:
                expired.append(event)
        if expired:
            self.remember(channel, expired)

    def batch(self, channel):
        """The next batch: file names, Message-ID, previous state of each.

        Decided once and recorded in ``.batch`` before the first attempt, so a
        retry (even after a crash) sends the very same message.
        """
        pending = spool.names(self.root, channel)
        batch_path = os.path.join(self.root, channel, ".batch")
        saved = spool.read_json(batch_path)
        if saved and saved.get("names") and saved["names"][0] == pending[0]:
            names = [n for n in saved["names"] if n in set(pending)]
            return names, saved["message_id"], saved.get("previous", {})
        end_ns = _event_ns(pending[0]) + int(self.cfg.spool["batch_window"] * 1e9)
        wait = end_ns / 1e9 - time.time()
        if wait > 0:
            self.sleep(wait)
            self.fan_out()
            pending = spool.names(self.root, channel)
        names = [n for n in pending if _event_ns(n) <= end_ns]
        states, previous, host = self.states(channel), {}, "localhost"
        for name in names:
            event = spool.read_json(os.path.join(self.root, channel, name), {})
            if event:
                previous[name] = states.get(key(event), {}).get("state")
                states[key(event)] = {"state": event["state"]}
                host = event.get("host", host)
        msgid = message_id(names[0][:-5], len(names), host)
        spool.write_json(self.root, batch_path, {"names": names, "message_id": msgid, "previous": previous})
        return names, msgid, previous

    def deliver(self, channel, send):
        """Send batches in order until the queue is empty (True) or one fails (False)."""
        while spool.names(self.root, channel):
            names, msgid, previous = self.batch(channel)
            paths = [os.path.join(self.root, channel, n) for n in names]
            events = []
            for name, path in zip(names, paths):
                event = spool.read_json(path)
                if event:
                    event["previous"] = previous.get(name)
                    events.append(event)
            try:
                send(events, self.cfg, msgid)
            except DeliveryError as exc:
                self.errors[channel] = str(exc)
                log(f"{channel} delivery failed, {len(spool.names(self.root, channel))} event(s) "
                    f"kept in spool for retry: {exc}", LOG_WARNING)
                return False
            self.remember(channel, events)
            for path in paths:
                spool.remove(path)
            spool.remove(os.path.join(self.root, channel, ".batch"))
            spool.fsync_dir(os.path.join(self.root, channel))
            self.delivered += len(events)
            self.errors.pop(channel, None)
            more = f" (+{len(events) - 1} more)" if len(events) > 1 else ""
            log(f"delivered by {channel} {msgid}: {describe(events[0])}{more}")
        return True

    def drain(self):
        """Deliver everything possible; back off and retry while lingering."""
        failures = 0
        while True:
            self.fan_out()
            ok = True
            for channel in CHANNELS:
                self.expire(channel)
                if channel in self.cfg.channels():
                    ok = self.deliver(channel, sender(channel)) and ok
            if ok:
                if not spool.names(self.root, "incoming"):
                    return True
                continue
            failures += 1
            delay = min(MAX_BACKOFF, 2.0 ** (failures - 1))
            if self.stop or time.monotonic() + delay > self.linger_until:
                return False
            self.sleep(delay)

    def pending(self):
        return spool.count(self.root)


def run(cfg, linger=False, wait_lock=0.0):
    """Deliver under the spool lock. Returns the Deliverer, or None if another holds the lock."""
    deliverer = Deliverer(cfg, linger)

    def stop(signum, frame):
        deliverer.stop = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGUSR1)}
    lock = spool.Lock(cfg.spool_dir)
    try:
        ran = False
        while True:
            if not lock.acquire(wait_lock, lambda: deliverer.stop):
                return deliverer if ran else None
            ran = True
            try:
                deliverer.drain()
            finally:
                lock.release()
            # An event spooled while we held the lock found it busy: take it.
            if deliverer.stop or not spool.names(cfg.spool_dir, "incoming"):
                return deliverer
            wait_lock = 0.0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
