"""The agent's ``[vrrp]``: the pair watched on the wire, beside the checks (docs/agent.md).

The agent's main loop owns one ``PairWatch``. It waits on ``fds()`` together
with its wake-up pipe, calls ``read(fd, now)`` for each that is readable and
``tick(now)`` by ``next_wake()``; the judgement is kachecks.vrrp's Watcher.
When a problem starts or ends it says so twice: a syslog line, and a
notification through kachecks.notify (spooled first, delivered after, the mail
and webhook of keepalived's own events: ``[lvs1] VI_1: SPLIT BRAIN (…)``, later
``[lvs1] VI_1: split brain over after 42 s``). It never writes a track file
and never changes keepalived's state: what to do about a split brain is the
administrator's call.

The checks matter more than the watch: a keepalived.conf the watcher cannot
use, a missing interface or no CAP_NET_RAW is one log line, the checks run on
and the watch is tried again every RETRY seconds. A reload (SIGHUP) closes the
watcher and opens a new one on keepalived.conf as it is now, keeping no stale
problem; a problem announced before it is not announced again when the new
watcher finds it, and its end is still said (``carried``).

Where keepalived's own notification of an instance's state never came (a notify
script killed, a FIFO reader that died), ``tick`` spools it once holding the
addresses and the last state notified have disagreed for ``[notify]
reconcile_after`` (kachecks.agent.reconcile decides; ``[lvs1] VI_1: MASTER (seen by
kachecks: 192.168.8.142 on eth0 since 12:00:03; keepalived's notification never
came)``).

``view(now)`` is everything a reader shows, as plain values (PairView): the
status document, ``kachecks agent status``, the metrics and the status page
all render from it, in their own threads, without touching the watcher.
"""

import os
import time

from kachecks import syslogger

RETRY = 30.0  # seconds between two attempts to start a watch that could not start
RECONCILE_PERIOD = 1.0  # seconds between two looks at the last states notified
VIEW_PERIOD = 1.0  # seconds: the published view follows the counters at most this often
PROG = "kachecks agent"
# What a notification calls each problem: "SPLIT BRAIN (…)" when it starts, "split brain
# over after 42 s" when it ends.
WORDS = {"split-brain": "split brain", "no-master": "no master", "filtered": "filtered",
         "mismatch": "mismatch", "foreign": "foreign router"}


class Unusable(Exception):
    """The watch cannot run (keepalived.conf, an interface, CAP_NET_RAW): one line."""


def open_watch(settings, clock=time.monotonic):
    """(Watcher, watched instances) of ``settings``, or Unusable saying why not."""
    from kachecks.errors import Unavailable, UsageError
    from kachecks.vrrp import instances
    from kachecks.vrrp.watcher import Watcher

    try:
        everything, watched = instances.load(settings.keepalived_conf, settings.config_id,
                                             settings.instances)
    except UsageError as exc:  # names the file (and the line)
        raise Unusable(str(exc)) from None
    where = (f" (watching {'; '.join(i.label() for i in watched)} from"
             f" {settings.keepalived_conf})")
    try:
        return Watcher(everything, watched, settings.hold, settings.ignore_vrids,
                       clock=clock), tuple(watched)
    except Unavailable as exc:
        raise Unusable(f"{exc}{where}") from None
    except OSError as exc:  # netlink refused, out of descriptors…
        raise Unusable(f"cannot watch: {exc.strerror or exc}{where}") from None


def trial(settings):
    """``kachecks agent --check-config``: what the watch of ``settings`` would watch, as
    labels (``VI_1 vrid 50 on eth0``), or Unusable. Opens it and closes it again."""
    watcher, watched = open_watch(settings)
    watcher.close()
    return [instance.label() for instance in watched]


class Notice:
    """A problem as it was announced, so that its end is said the same way (after a reload
    too): ``key``, ``code``, ``name`` (the instance, or ``eth0 vrid 51``), ``where``
    (``VI_1 vrid 50 on eth0``), ``since`` (Unix time its condition began)."""

    __slots__ = ("key", "code", "name", "where", "since")

    def __init__(self, key, code, name, where, since):
        self.key, self.code, self.name, self.where, self.since = key, code, name, where, since


# --- what readers see --------------------------------------------------------------


class SourceView:
    """A source advertising a watched VRID: ``address``, ``priority`` (its last advert's),
    ``own`` (this director), ``alive`` (advertising now), ``adverts`` (seen on the wire),
    ``stack_adverts`` (that reached the VRRP stack), ``last`` (Unix time of the last)."""

    __slots__ = ("address", "priority", "own", "alive", "adverts", "stack_adverts", "last")

    def __init__(self, address, priority, own, alive, adverts, stack_adverts, last):
        self.address, self.priority, self.own, self.alive = address, priority, own, alive
        self.adverts, self.stack_adverts, self.last = adverts, stack_adverts, last


class ProblemView:
    """An active problem: ``code``, ``severity``, ``since`` (Unix time its condition
    began), ``text`` (``VI_1 vrid 50 on eth0: split brain: …``)."""

    __slots__ = ("code", "severity", "since", "text")

    def __init__(self, code, severity, since, text):
        self.code, self.severity, self.since, self.text = code, severity, since, text


class InstanceView:
    """A watched vrrp_instance: ``name``, ``vrid``, ``family``, ``interface``, ``label``
    (``VI_1 vrid 50 on eth0``), ``addresses`` (its VIPs, text), ``holder`` (this director
    holds them), ``held_since`` (Unix time, or None), ``sources`` (SourceView, this
    director's own included), ``advertising`` (how many advertise now), ``adverts``
    (seen on the wire), ``problems`` (ProblemView: every code active now)."""

    __slots__ = ("name", "vrid", "family", "interface", "label", "addresses", "holder",
                 "held_since", "sources", "advertising", "adverts", "problems")

    def __init__(self, **fields):
        for name in self.__slots__:
            setattr(self, name, fields[name])


class ForeignView:
    """A VRID on a watched interface that keepalived.conf does not use: ``interface``,
    ``family``, ``vrid``, ``sources`` (SourceView), ``advertising`` (how many now),
    ``problem`` (the ``foreign`` problem is active; False for an ignored VRID)."""

    __slots__ = ("interface", "family", "vrid", "sources", "advertising", "problem")

    def __init__(self, interface, family, vrid, sources, advertising, problem):
        self.interface, self.family, self.vrid = interface, family, vrid
        self.sources, self.advertising, self.problem = sources, advertising, problem


class PairView:
    """The pair as the agent sees it at one instant (``taken``, Unix time): ``configured``
    (there is a [vrrp] table), ``watching``, ``error`` (why not, one line), ``keepalived_conf``,
    ``instances`` (InstanceView), ``foreign`` (ForeignView)."""

    __slots__ = ("configured", "watching", "error", "keepalived_conf", "instances", "foreign",
                 "taken")

    def __init__(self, configured, watching, error, keepalived_conf, instances, foreign, taken):
        self.configured, self.watching, self.error = configured, watching, error
        self.keepalived_conf, self.instances, self.foreign = keepalived_conf, instances, foreign
        self.taken = taken


NONE = PairView(False, False, None, None, (), (), 0.0)  # no [vrrp] table


# --- the watch -----------------------------------------------------------------------


class PairWatch:
    """The watch of ``settings`` (kachecks.agent.config.VrrpSettings, or None: nothing to
    watch). ``log(message, priority)`` is the agent's syslog; ``post(event)`` spools a
    notification (CommandFailed, or any error, if it could not); ``clock`` is the agent's
    monotonic clock, ``wallclock`` Unix time."""

    def __init__(self, settings, log, post, clock=time.monotonic, wallclock=time.time):
        self.settings = settings
        self.log = log
        self.post = post
        self.clock = clock
        self.wallclock = wallclock
        self.watcher = None
        self.watched: tuple = ()
        self.error = None  # why the watch is not running, as said in the log
        self.retry_at = None
        self.next_tick = None
        self.announced = {}  # key -> Notice: problems active now, announced
        self.carried = {}  # key -> (Notice, deadline): announced before a reload, not seen since
        self.view = NONE
        self.view_due = 0.0
        self.dirty = True  # what the status document shows changed since the last view
        self.heard = False  # a packet was read since the last view (its counters moved)
        from kachecks.agent.reconcile import Reconciler

        self.reconciler = Reconciler(settings.reconcile_after if settings else 0)
        self.reconcile_due = 0.0
        self.notified_error = None  # why the last states notified cannot be read, as said

    # ------------------------------------------------------------------ life cycle

    def start(self, now=None):
        """Open the watch (when there is a [vrrp] table); False, said once, when it cannot."""
        if self.settings is None:
            return False
        from kachecks.vrrp.watcher import TICK

        now = self.clock() if now is None else now
        settings = self.settings
        try:
            self.watcher, self.watched = open_watch(settings, self.clock)
        except Unusable as exc:
            return self._cannot(str(exc), now)
        self.error = self.retry_at = None
        self.next_tick = now + TICK
        self.dirty = True
        self.log(f"vrrp: watching {'; '.join(i.label() for i in self.watched)} (from"
                 f" {settings.keepalived_conf})", syslogger.LOG_NOTICE)
        return True

    def _cannot(self, why, now):
        """The watch is not running: say why (once per reason), try again in RETRY s. A
        problem announced as active is said to be no longer watched (its end would never
        come; a new watch that finds it again announces it again)."""
        self.close_watcher()
        for key, notice in self.announced.items():
            self.carried[key] = (notice, now)
        self.announced = {}
        self.retry_at = now + RETRY
        if why != self.error:
            self.log(f"vrrp: not watching the pair: {why}; the checks run on, the watch is"
                     f" tried again every {RETRY:g} s", syslogger.LOG_ERR)
        self.error = why
        self.dirty = True
        return False

    def reload(self, settings, now=None):
        """SIGHUP: close the watcher, read keepalived.conf again into a new one. A problem
        announced before is carried: found again by the new watcher, it is not announced
        twice; not found again within one detection (``grace``), its end is said."""
        now = self.clock() if now is None else now
        for key, notice in self.announced.items():
            self.carried[key] = (notice, None)
        self.announced = {}
        self.close_watcher()
        self.settings = settings
        self.reconciler.after = settings.reconcile_after if settings else 0
        self.error = self.retry_at = None
        started = self.start(now)
        deadline = now + self.grace() if started else now
        self.carried = {key: (notice, deadline if due is None else due)
                        for key, (notice, due) in self.carried.items()}
        self.dirty = True
        self._expire(now)

    def grace(self):
        """Seconds the new watcher needs to find a problem again: its hold, then the silence
        that ends a source, and a second."""
        from kachecks.vrrp.detect import HOLD_ADVERTS

        settings = self.settings
        return max(((settings.hold if settings.hold is not None else HOLD_ADVERTS * i.advert_int)
                    + HOLD_ADVERTS * i.advert_int + 2 for i in self.watched), default=0.0)

    def close_watcher(self):
        if self.watcher is not None:
            self.watcher.close()
            self.watcher = None

    def close(self):
        """At the agent's stop: the sockets closed; active problems are not "over"."""
        self.close_watcher()
        reap = getattr(self.post, "reap", None)
        if reap is not None:
            reap()

    # ------------------------------------------------------------------ the loop's hooks

    def fds(self):
        return self.watcher.fds() if self.watcher is not None else []

    def next_wake(self):
        """When ``tick`` is due next (monotonic), or None: nothing to do."""
        if self.settings is None:
            return None
        wakes = [due for _notice, due in self.carried.values()]
        wakes.append(self.next_tick if self.watcher is not None else self.retry_at)
        wakes = [w for w in wakes if w is not None]
        return min(wakes) if wakes else None

    def read(self, fd, now=None):
        """``fd`` (one of ``fds()``) is readable."""
        if self.watcher is None:
            return
        now = self.clock() if now is None else now
        try:
            captures, changes = self.watcher.read(fd, now)
        except Exception as exc:  # noqa: BLE001 - the watch must never stop the checks
            self._cannot(f"the watch broke: {type(exc).__name__}: {exc}", now)
            self._expire(now)
            return
        self.heard = self.heard or bool(captures)
        addresses = self.watcher.addresses
        if addresses is not None and fd == addresses.fileno():
            self.dirty = True  # addresses changed: who holds an instance may have
        self._say(changes, now)

    def tick(self, now=None):
        """Time passed: evaluate when due, retry a watch that could not start, say the end of
        carried problems that did not come back."""
        if self.settings is None:
            return
        from kachecks.vrrp.watcher import TICK

        now = self.clock() if now is None else now
        if self.watcher is None:
            if self.retry_at is not None and now >= self.retry_at:
                self.start(now)
        elif now >= self.next_tick:
            self.next_tick = now + TICK
            try:
                changes = self.watcher.tick(now)
            except Exception as exc:  # noqa: BLE001 - the watch must never stop the checks
                self._cannot(f"the watch broke: {type(exc).__name__}: {exc}", now)
                changes = []
            self._say(changes, now)
            if now >= self.reconcile_due:
                self.reconcile_due = now + RECONCILE_PERIOD
                self._reconcile(now)
        self._expire(now)
        reap = getattr(self.post, "reap", None)
        if reap is not None:
            reap()

    # ------------------------------------------------------------------ saying it

    def _say(self, changes, now):
        for change in changes:
            problem = change.problem
            key = (problem.code, problem.instance or problem.where)
            if change.started:
                carried = self.carried.pop(key, None)
                if carried is not None:
                    self.announced[key] = carried[0]
                    self.log(f"vrrp: still {change.message} (announced before the reload)",
                             syslogger.LOG_INFO)
                    continue
                notice = Notice(key, problem.code, problem.instance or problem.where,
                                problem.where, self._wall(problem.since, now))
                self.announced[key] = notice
                critical = problem.severity == "critical"
                self.log(f"vrrp: {change.message}",
                         syslogger.LOG_ERR if critical else syslogger.LOG_WARNING)
                self._notify(notice, "", title=_title(problem), raw=change.message)
            else:
                notice = self.announced.pop(key, None) or Notice(
                    key, problem.code, problem.instance or problem.where, problem.where,
                    self._wall(problem.since, now))
                lasted = self._wall(problem.last_true, now) - notice.since
                self._ended(notice, lasted)
            self.dirty = True

    def _expire(self, now):
        """Carried problems past their deadline: the new watcher did not find them again
        within its grace (over), or there is no watch to find them (no longer watched)."""
        for key, (notice, due) in list(self.carried.items()):
            if now < due:
                continue
            del self.carried[key]
            lasted = self.wallclock() - notice.since
            if self.watcher is not None:
                self._ended(notice, lasted, "not seen again after the agent's reload")
            else:
                self._unwatched(notice, lasted)
            self.dirty = True

    def _ended(self, notice, lasted, why=None):
        note = f" ({why})" if why else ""
        message = f"{notice.code} over: {notice.where}, after {lasted:.1f} s{note}"
        self.log(f"vrrp: {message}", syslogger.LOG_NOTICE)
        self._notify(notice, "_OVER", raw=message,
                     title=f"{WORDS[notice.code]} over after {lasted:.0f} s{note}")

    def _unwatched(self, notice, lasted):
        """A problem active when the watch stopped: not over, no longer known."""
        why = self.error or "no [vrrp] table any more"
        message = (f"{notice.code} no longer watched: {notice.where}, active for {lasted:.1f} s"
                   f" when the watch stopped ({why})")
        self.log(f"vrrp: {message}", syslogger.LOG_WARNING)
        self._notify(notice, "_UNWATCHED", raw=message,
                     title=f"{WORDS[notice.code]} no longer watched after {lasted:.0f} s ({why})")

    def _notify(self, notice, suffix, title, raw):
        """Spool the event of ``notice``: its state the code in capitals, plus ``suffix``
        ("" when it starts, "_OVER", "_UNWATCHED")."""
        from kachecks.notify import event as events

        state = notice.code.upper().replace("-", "_") + suffix
        evt = events.make(events.VRRP, notice.name, state, raw=raw, source="agent", title=title)
        try:
            self.post(evt)
        except Exception as exc:  # noqa: BLE001 - said, and the watch goes on
            self.log(f"vrrp: notification NOT spooled ({exc}): {notice.name}: {title}",
                     syslogger.LOG_ERR)

    def _wall(self, moment, now):
        """Unix time of monotonic ``moment``."""
        return self.wallclock() - (now - moment)

    # ------------------------------------------------------------------ reconciliation

    def _reconcile(self, now):
        """Spool each watched instance's state that keepalived never notified (the
        reconciler says which are due). Nothing is decided while the last states notified
        cannot be read: a missing record must never pass for a missed event."""
        read = getattr(self.post, "notified", None)
        if self.watcher is None or not self.reconciler.after or read is None:
            return
        from kachecks.notify.notified import holds

        detector = self.watcher.detector
        names = [instance.name for instance in self.watched]
        try:
            last = read(names)
        except Exception as exc:  # noqa: BLE001 - said once; the watch goes on
            why = str(exc) or type(exc).__name__
            if why != self.notified_error:
                self.log(f"vrrp: cannot read the last states notified ({why}): keepalived's"
                         " missed notifications are not reconciled until it can",
                         syslogger.LOG_ERR)
            self.notified_error = why
            return
        self.notified_error = None
        seen = [(name, detector.held[name],
                 holds(last[name]["state"]) if last.get(name) else None) for name in names]
        due = set(self.reconciler.due(now, seen))
        for instance in self.watched:
            if instance.name in due:
                self._missed(self.watcher, instance, last.get(instance.name), now)

    def _missed(self, watcher, instance, last, now):
        """Spool ``instance``'s state as this director sees it, marked as seen by kachecks."""
        from kachecks.notify import event as events
        from kachecks.notify.notified import NOT_MASTER

        detector, name = watcher.detector, instance.name
        holder = detector.held[name]
        moment = detector.held_since[name] if holder else detector.released[name]
        known = moment is not None and moment > watcher.started
        wall = self._wall(moment if known else watcher.started, now)
        clock = time.strftime("%H:%M:%S", time.localtime(wall))
        since = f"since {clock}" if known else f"since {clock} or before (the watch's start)"
        where = "; ".join(f"{', '.join(texts)} {'on' if holder else 'not on'} {dev}"
                          for dev, texts in _by_device(instance).items())
        state = "MASTER" if holder else NOT_MASTER
        title = (f"{state.replace('_', ' ')} (seen by kachecks: {where} {since};"
                 " keepalived's notification never came)")
        told = "nothing" if last is None else (
            f"{last['state']} at {_stamp(last['time'])}"
            f"{' (by ' + last['source'] + ')' if last.get('source') else ''}")
        raw = (f"{instance.label()}: this director {'holds' if holder else 'does not hold'}"
               f" {', '.join(instance.address_texts())} since {_stamp(wall)}"
               f"{'' if known else ' or before (when the watch started)'}; the last state"
               f" notified: {told}; no notification came within {self.reconciler.after:g} s"
               " ([notify] reconcile_after)")
        evt = events.make(events.TYPES[0], name, state, raw=raw, source="agent", title=title)
        try:
            self.post(evt)
        except Exception as exc:  # noqa: BLE001 - said, tried again after reconcile_after
            self.reconciler.failed(name, now)
            self.log(f"vrrp: {name}: missed notification NOT spooled ({exc}): {title}",
                     syslogger.LOG_ERR)
            return
        self.reconciler.spooled(name, holder)
        self.log(f"vrrp: {name}: keepalived's notification never came: spooled {state} as seen"
                 f" by kachecks ({raw})", syslogger.LOG_WARNING)

    # ------------------------------------------------------------------ what readers see

    def refresh(self, now=None):
        """Publish a new ``view`` when something changed (at once) or packets were counted
        (at most every VIEW_PERIOD); True when it did."""
        now = self.clock() if now is None else now
        if not (self.dirty or (self.heard and now >= self.view_due)):
            return False
        self.view = self.take_view(now)
        self.view_due = now + VIEW_PERIOD
        self.dirty = self.heard = False
        return True

    def take_view(self, now=None):
        """The pair now, as a PairView (the one function every reader renders from)."""
        settings = self.settings
        if settings is None:
            return NONE
        now = self.clock() if now is None else now
        wall = self.wallclock()
        if self.watcher is None:
            return PairView(True, False, self.error, settings.keepalived_conf, (), (), wall)
        from kachecks.vrrp.detect import FOREIGN, HOLD_ADVERTS

        def moment(t):
            return None if t is None else wall - (now - t)

        def source(s, gap):
            return SourceView(s.text, s.priority, s.own, s.alive(now, gap), s.adverts,
                              s.stack_adverts, moment(s.last))

        problems = self.watcher.problems()
        found = []
        for st in self.watcher.status(now):
            instance = st.instance
            gap = HOLD_ADVERTS * instance.advert_int + 1
            sources = tuple(source(s, gap) for s in st.sources if s.advert is not None)
            active = [p for p in problems if p.instance == instance.name] + [
                p for p in problems if p.code == FOREIGN and p.interface == instance.interface
                and p.family == instance.family]
            found.append(InstanceView(
                name=instance.name, vrid=instance.vrid, family=instance.family,
                interface=instance.interface, label=instance.label(),
                addresses=tuple(instance.address_texts()), holder=st.held,
                held_since=moment(st.held_since) if st.held else None, sources=sources,
                advertising=sum(1 for s in sources if s.alive), adverts=st.adverts,
                problems=tuple(ProblemView(p.code, p.severity, moment(p.since), p.text())
                               for p in active)))
        foreign = []
        ignored = set(settings.ignore_vrids)
        for interface, family, vrid, seen in self.watcher.detector.foreign_routers():
            if vrid in ignored:
                continue
            views = tuple(source(s, HOLD_ADVERTS * max(s.advert.interval, 0.01) + 1)
                          for s in seen if s.advert is not None)
            problem = any(p.code == FOREIGN and (p.interface, p.family, p.vrid)
                          == (interface, family, vrid) for p in problems)
            foreign.append(ForeignView(interface, family, vrid, views,
                                       sum(1 for s in views if s.alive), problem))
        return PairView(True, True, None, settings.keepalived_conf, tuple(found),
                        tuple(foreign), wall)


def _by_device(instance):
    """{device: [address texts]} of ``instance``'s virtual addresses, in their order."""
    found: dict[str, list[str]] = {}
    for address in instance.vip_addresses:
        found.setdefault(address.dev or instance.interface, []).append(str(address))
    return found


def _stamp(when):
    """Unix time ``when`` as a person reads it in a notification: ``2026-11-26 04:19:40 UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(when))


def _title(problem):
    """What a notification says when ``problem`` starts: ``SPLIT BRAIN (192.168.8.100 prio
    100, 192.168.8.110 prio 50)``."""
    words = WORDS[problem.code].upper()
    if problem.fields:  # mismatch: which fields differ, per source
        by_source: dict[str, list[str]] = {}
        for source, field, _theirs, _ours in problem.fields:
            by_source.setdefault(source, []).append(field)
        prio = dict(problem.sources)
        parts = [f"{source} prio {prio.get(source, '?')}: {', '.join(fields)}"
                 for source, fields in by_source.items()]
        return f"{words} ({'; '.join(parts)})"
    if problem.sources:  # highest priority first: both directors say it the same way
        ordered = sorted(problem.sources, key=lambda source: -source[1])
        return f"{words} ({', '.join(f'{a} prio {p}' for a, p in ordered)})"
    return words


class Poster:
    """``post(event)``: the event spooled as `kachecks notify` spools one (kachecks.notify:
    spool first, then a deliverer), with the agent's kachecks.toml. The deliverer is
    started by exec (kachecks.notify.detach.launch): the agent has threads."""

    def __init__(self, config_path):
        self.config_path = config_path
        self.children = []
        self.spool: tuple = (None, None)  # (the file's identity when read, its [spool] dir)

    def __call__(self, evt):
        from kachecks.notify import commands

        commands.spool_event(PROG, evt, {"config_path": self.config_path}, kick=self._launch)

    def _launch(self, opened, cfg):
        from kachecks.notify import detach

        child = detach.launch(opened, cfg)
        if child is not None:
            self.children.append(child)

    def notified(self, names):
        """``{name: last state notified or None}`` for the instances ``names``, from the
        notify spool of the agent's kachecks.toml (kachecks.notify.notified)."""
        from kachecks.notify import notified

        return notified.read(self.spool_dir(), names)

    def spool_dir(self):
        """``[spool] dir`` of the agent's kachecks.toml, read again only when the file
        changed (asked every second; the file may hold 10,000 checks)."""
        from kachecks import configfile
        from kachecks.notify import config as notify_config

        try:
            info = os.stat(configfile.location(self.config_path)[0])
            identity = (info.st_ino, info.st_mtime_ns, info.st_size)
        except OSError:
            identity = None
        if identity is None or identity != self.spool[0]:
            try:
                root = notify_config.spool_dir(self.config_path)
            except notify_config.ConfigError:  # where `kachecks notify` spools then, too
                root = notify_config.DEFAULT_SPOOL
            self.spool = (identity, root)
        return self.spool[1]

    def reap(self):
        """Collect the launchers that exited (each does in well under a second)."""
        self.children = [child for child in self.children if child.poll() is None]
