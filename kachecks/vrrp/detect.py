"""The pair watcher's judgement: adverts and held addresses in, problems out.

Pure: no socket, no clock, no thread. Fed with events, each with its time
(monotonic seconds):

- ``packet(capture)``: an advert seen from one vantage point (wire.Capture);
- ``addresses(time, interface, addresses)``: the addresses on an interface
  now (so: does this director hold an instance's VIPs, and which source
  addresses are its own);
- ``tick(time)``: time passed (call it a few times a second).

Each returns the problems that started or ended then (Change). The codes
and their rules are docs/vrrp.md's and docs/reference.md's
("kachecks-vrrp"):

- ``split-brain`` (critical): this director holds the addresses while
  another source keeps advertising the VRID with priority > 0 for longer
  than ``hold``; from a director that does not hold them (or a witness),
  two such sources for longer than ``hold``. Two masters are often not
  both on the wire at once (each restarts its advert timer on the other's
  advert), hence "holds the addresses" against "another source advertises".
- ``no-master`` (critical): no advert carrying the instance's address list
  for 3 × advert_int + 1 s, and this director does not hold it.
- ``filtered`` (critical): adverts from another source reach the interface
  (packet socket) but not the VRRP stack (raw socket).
- ``mismatch`` (critical): an advert for the VRID whose version,
  advert_int (v2), address list, auth type or PASS password (compared as
  digests) differs from this director's instance.
- ``foreign`` (warning): adverts for a VRID the configuration does not use.

Debounce: a source "keeps advertising" while its adverts come at most
3 × advert_int + 1 s apart, and an advert vouches for one advert interval
after it; a priority-0 advert means its source resigned. A condition
must hold for longer than ``hold`` (default 3 × advert_int) before
split-brain or filtered starts, so a preemption or hand-over (an overlap
of an advert or two) is not split brain; mismatch and foreign start at the
first advert that shows them. Every problem but no-master ends once its
condition has been false for ``hold``.
"""

from kachecks.vrrp.wire import STACK, WIRE, address_text, is_multicast

SPLIT_BRAIN = "split-brain"
NO_MASTER = "no-master"
FILTERED = "filtered"
MISMATCH = "mismatch"
FOREIGN = "foreign"
CODES = (SPLIT_BRAIN, NO_MASTER, FILTERED, MISMATCH, FOREIGN)
CRITICAL, WARNING = "critical", "warning"
SEVERITY = {SPLIT_BRAIN: CRITICAL, NO_MASTER: CRITICAL, FILTERED: CRITICAL, MISMATCH: CRITICAL,
            FOREIGN: WARNING}
HOLD_ADVERTS = 3  # --hold's default, in advert intervals (keepalived's down_timer_adverts)
SETTLE = 0.3  # seconds within which a raw socket's copy follows the packet socket's
MAX_SOURCES = 32  # per VRID: an address spray cannot grow memory
EPSILON = 1e-3


class Problem:
    """One problem while it lasts.

    ``code``, ``severity``; ``instance`` (its name; None for foreign);
    ``interface``, ``family``, ``vrid``; ``since`` (when its condition began),
    ``started`` (when it was declared); ``last_true`` (the last moment its
    evidence covered); ``detail`` (the text after the
    place, e.g. ``split brain: … for 6.0 s``), ``sources`` ((address text,
    priority) pairs involved), ``fields`` (mismatch: (source, field, theirs,
    ours) tuples, never a password), ``ended`` (time, once over).
    """

    __slots__ = ("code", "severity", "instance", "interface", "family", "vrid", "since",
                 "started", "detail", "sources", "fields", "last_true", "ended")

    def __init__(self, code, instance, interface, family, vrid, since, started, finding):
        self.code = code
        self.severity = SEVERITY[code]
        self.instance = instance
        self.interface = interface
        self.family = family
        self.vrid = vrid
        self.since = since
        self.started = started
        self.ended = None
        self.update(finding)

    def update(self, finding):
        self.last_true = finding.until
        self.detail = finding.detail
        self.sources = finding.sources
        self.fields = finding.fields

    @property
    def where(self):
        kind = "IPv6 vrid" if self.family == 6 else "vrid"
        if self.instance is None:
            return f"{self.interface} {kind} {self.vrid}"
        return f"{self.instance} {kind} {self.vrid} on {self.interface}"

    def text(self):
        """``VI_1 vrid 50 on eth0: split brain: …``"""
        return f"{self.where}: {self.detail}"

    def __repr__(self):
        return f"Problem({self.code}, {self.text()!r})"


class Change:
    """A problem that ``started`` (True) or ended (False) at ``time``; ``message`` is
    what it said then (the problem itself goes on changing while it lasts)."""

    __slots__ = ("time", "started", "problem", "message", "lasted")

    def __init__(self, time, started, problem):
        self.time = time
        self.started = started
        self.problem = problem
        self.lasted = problem.last_true - problem.since
        if started:
            self.message = f"{problem.code} ({problem.severity}): {problem.text()}"
        else:
            self.message = f"{problem.code} over: {problem.where}, after {self.lasted:.1f} s"

    def text(self):
        return self.message

    def __repr__(self):
        return f"Change({self.time:.3f}, {'start' if self.started else 'end'}, {self.problem!r})"


class Finding:
    """What one evaluation found for one code: the condition, since when, until when
    the evidence covers (``evidence``: that span), and words."""

    __slots__ = ("true", "evidence", "since", "until", "detail", "sources", "fields")

    def __init__(self, true, since=None, until=None, detail="", sources=(), fields=()):
        self.true = true
        self.since = since
        self.until = until
        self.evidence = until - since if true else 0.0
        self.detail = detail
        self.sources = sources
        self.fields = fields


FALSE = Finding(False)


class Source:
    """One source address advertising one VRID on one interface."""

    __slots__ = ("address", "own", "run_start", "last", "advert", "adverts", "stack_adverts",
                 "wire_last", "stack_last", "unmatched_since", "unmatched", "mismatch",
                 "mismatch_last", "exact")

    def __init__(self, address):
        self.address = address
        self.own = False
        self.run_start = None
        self.last = None
        self.advert = None
        self.adverts = 0  # seen on the wire (or on the stack where no wire copy exists)
        self.stack_adverts = 0
        self.wire_last = None  # the last one addressed to this host, seen on the wire
        self.stack_last = None
        self.unmatched_since = None  # first wire advert to us the stack has not seen since
        self.unmatched = 0
        self.mismatch = ()  # the fields in which its last mismatched advert differed
        self.mismatch_last = None
        self.exact = False  # has advertised the instance's exact address list

    @property
    def text(self):
        return address_text(self.advert.family, self.address)

    @property
    def priority(self):
        return self.advert.priority

    def alive(self, now, gap):
        """Advertising now: its last advert had priority > 0 and came within ``gap``."""
        return self.priority > 0 and now - self.last <= gap

    def covered_until(self, now):
        """An advert vouches for its source until the next one is due."""
        return min(now, self.last + max(self.advert.interval, 0.01))


class Router:
    """What was seen of one (interface, family, VRID)."""

    __slots__ = ("key", "instance", "sources", "exact_last", "last")

    def __init__(self, key, instance):
        self.key = key
        self.instance = instance
        self.sources = {}
        self.exact_last = None  # last advert with priority > 0 carrying the exact address list
        self.last = None

    def source(self, address):
        found = self.sources.get(address)
        if found is None:
            if len(self.sources) >= MAX_SOURCES:
                oldest = min(self.sources.values(), key=lambda s: s.last)
                del self.sources[oldest.address]
            found = self.sources[address] = Source(address)
        return found


class Tracker:
    __slots__ = ("problem", "false_since")

    def __init__(self):
        self.problem = None
        self.false_since = None


class InstanceStatus:
    """What the watcher knows of one watched instance now (for output and metrics)."""

    __slots__ = ("instance", "held", "held_since", "sources", "problems", "adverts")

    def __init__(self, instance, held, held_since, sources, problems, adverts):
        self.instance = instance
        self.held = held
        self.held_since = held_since
        self.sources = sources  # every Source seen, own included
        self.problems = problems  # {code: Problem} of those active
        self.adverts = adverts


class Detector:
    """Problems of the ``watched`` instances (default: all ``instances``), judged from
    the events fed in. ``instances``: every instance of the configuration (adverts
    for their VRIDs are not foreign); ``hold``: seconds (default 3 × each instance's
    advert_int); ``ignore_vrids``: VRIDs never reported as foreign; ``started``:
    when listening began (nothing was heard before it)."""

    def __init__(self, instances, started, watched=None, hold=None, ignore_vrids=()):
        self.started = started
        self.hold = hold
        self.ignore = frozenset(ignore_vrids)
        watched = list(instances if watched is None else watched)
        self.instances = {i.key: i for i in watched}
        self.configured = {i.key for i in instances}
        self.groups = {}
        for instance in instances:
            self.groups.setdefault(instance.interface, set()).add(instance.group)
        self.routers = {}
        self.local = {}  # interface -> its addresses
        self.held = {i.name: False for i in watched}
        self.held_since = {i.name: None for i in watched}
        self.released = {i.name: None for i in watched}
        self.trackers = {}
        self.now = started

    # --- events -----------------------------------------------------------------

    def addresses(self, time, interface, addresses):
        """The addresses on ``interface`` are now ``addresses`` (packed)."""
        self.now = max(self.now, time)
        self.local[interface] = frozenset(addresses)
        for instance in self.instances.values():
            held = any(packed in self.local.get(dev, ()) for packed, dev in instance.vips)
            if held != self.held[instance.name]:
                self.held[instance.name] = held
                if held:
                    self.held_since[instance.name] = time
                else:
                    self.released[instance.name] = time
        return self.evaluate(time)

    def packet(self, capture):
        """An advert seen from one vantage point."""
        time = capture.time
        self.now = max(self.now, time)
        advert = capture.advert
        if advert.kind != 1 or not advert.checksum_ok:
            return []  # keepalived discards it before anything else
        key = (capture.interface, advert.family, advert.vrid)
        instance = self.instances.get(key)
        if instance is None and key in self.configured:
            return []  # an instance of this configuration that is not watched
        router = self.routers.get(key)
        if router is None:
            router = self.routers[key] = Router(key, instance)
        local = self.local.get(capture.interface, ())
        source = router.source(advert.source)
        own = capture.outgoing or advert.source in local
        if capture.vantage == STACK:
            source.stack_adverts += 1
            source.stack_last = time
            if source.unmatched_since is not None and time >= source.unmatched_since - SETTLE:
                source.unmatched_since = None
                source.unmatched = 0
            if source.advert is not None:
                return self.evaluate(time, router)
        else:
            source.adverts += 1
        source.own = source.own or own
        gap = self._gap(instance, advert)
        if source.last is None or time - source.last > gap or source.priority == 0:
            source.run_start = time
        if capture.vantage == WIRE or source.last is None:
            source.last = time
            source.advert = advert
        router.last = time
        if not own and capture.vantage == WIRE and self._to_us(capture.interface, advert, local):
            source.wire_last = time
            if source.unmatched_since is None:
                if source.stack_last is None or time - source.stack_last > SETTLE:
                    source.unmatched_since = time
                    source.unmatched = 1
            else:
                source.unmatched += 1
        if instance is not None:
            exact = _exact(advert, instance)
            if exact and advert.priority > 0:
                router.exact_last = time
            if not own:
                source.exact = source.exact or exact
                differences = _differences(advert, instance, exact)
                if differences:
                    source.mismatch = differences
                    source.mismatch_last = time
        return self.evaluate(time, router)

    def tick(self, time):
        self.now = max(self.now, time)
        return self.evaluate(time)

    # --- judgement ----------------------------------------------------------------

    def evaluate(self, now, router=None):
        """Start and end problems by what is known at ``now``; the changes."""
        changes = []
        instances = [router.instance] if router is not None and router.instance else (
            [] if router is not None else list(self.instances.values()))
        for instance in instances:
            router_ = self.routers.get(instance.key)
            for code, finding in self._findings(instance, router_, now):
                changes += self._track((code, instance.name), code, instance, instance.key,
                                       finding, now)
        foreign = [router] if router is not None and router.instance is None else (
            [] if router is not None else [r for r in self.routers.values() if r.instance is None])
        for router_ in foreign:
            interface, family, vrid = router_.key
            finding = self._foreign(router_, now) if vrid not in self.ignore else FALSE
            changes += self._track((FOREIGN,) + router_.key, FOREIGN, None, router_.key, finding,
                                   now)
        return changes

    def _track(self, key, code, instance, router_key, finding, now):
        tracker = self.trackers.get(key)
        if tracker is None:
            if not finding.true:
                return []
            tracker = self.trackers[key] = Tracker()
        problem = tracker.problem
        hold = self._hold(instance)
        if problem is None:
            needed = hold if code in (SPLIT_BRAIN, FILTERED) else 0.0
            if finding.true and (finding.evidence > needed or not needed):
                interface, family, vrid = router_key
                tracker.problem = Problem(code, instance.name if instance else None, interface,
                                          family, vrid, finding.since, now, finding)
                tracker.false_since = None
                return [Change(now, True, tracker.problem)]
            if not finding.true:
                del self.trackers[key]
            return []
        if finding.true:
            tracker.false_since = None
            problem.update(finding)
            return []
        if tracker.false_since is None:
            tracker.false_since = now
        if code == NO_MASTER or now - tracker.false_since >= hold - EPSILON:
            problem.ended = now
            del self.trackers[key]
            return [Change(now, False, problem)]
        return []

    def _hold(self, instance):
        if self.hold is not None:
            return self.hold
        return HOLD_ADVERTS * (instance.advert_int if instance else 1.0)

    def _gap(self, instance, advert):
        """The longest silence between two adverts of a source that keeps advertising."""
        interval = instance.advert_int if instance is not None else max(advert.interval, 0.01)
        return HOLD_ADVERTS * interval + 1

    def _to_us(self, interface, advert, local):
        if is_multicast(advert.family, advert.destination):
            return advert.destination in self.groups.get(interface, ()) or \
                advert.destination == _DEFAULT_GROUPS[advert.family]
        return advert.destination in local

    def _findings(self, instance, router, now):
        gap = HOLD_ADVERTS * instance.advert_int + 1
        held = self.held[instance.name]
        sources = list(router.sources.values()) if router is not None else []
        yield SPLIT_BRAIN, self._split_brain(instance, sources, held, now, gap)
        yield NO_MASTER, self._no_master(instance, router, sources, held, now, gap)
        yield FILTERED, self._filtered(sources, now, gap)
        yield MISMATCH, self._mismatch(instance, sources, now, gap)

    def _split_brain(self, instance, sources, held, now, gap):
        alive = [s for s in sources if s.alive(now, gap)]
        others = [s for s in alive if not s.own]
        if held:
            if not others:
                return FALSE
            held_since = self.held_since[instance.name]
            best = max(others, key=lambda s: s.covered_until(now) - max(held_since, s.run_start))
            since = max(held_since, best.run_start)
            own = [s for s in alive if s.own]
            here = (f"{own[0].text} prio {own[0].priority} (this director)" if own
                    else f"this director (prio {instance.priority} configured)")
            vips = ", ".join(instance.address_texts()) or "its addresses"
            detail = (f"split brain: {best.text} prio {best.priority} and {here} both master"
                      f" for {now - since:.1f} s (this director holds {vips})")
            pairs = [(best.text, best.priority)] + [(s.text, s.priority) for s in own]
            return Finding(True, since, best.covered_until(now), detail, tuple(pairs))
        if len(alive) < 2:
            return FALSE
        best, best_overlap = None, None
        for i, a in enumerate(alive):
            for b in alive[i + 1:]:
                since = max(a.run_start, b.run_start)
                until = min(a.covered_until(now), b.covered_until(now))
                if best_overlap is None or until - since > best_overlap:
                    best, best_overlap = (a, b, since, until), until - since
        a, b, since, until = best
        a, b = sorted((a, b), key=lambda s: -s.priority)
        detail = (f"split brain: {a.text} prio {a.priority} and {b.text} prio {b.priority}"
                  f" both advertising for {now - since:.1f} s")
        return Finding(True, since, until, detail, ((a.text, a.priority), (b.text, b.priority)))

    def _no_master(self, instance, router, sources, held, now, gap):
        if held:
            return FALSE
        last = max(t for t in (self.started, router.exact_last if router else None,
                               self.released[instance.name]) if t is not None)
        silent = now - last
        if silent < gap - EPSILON:
            return FALSE
        vips = ", ".join(instance.address_texts()) or "its addresses"
        others = [s for s in sources if s.alive(now, gap)]
        also = "".join(f"; {s.text} prio {s.priority} advertises {_addresses(s.advert)}"
                       for s in others)
        detail = (f"no master: no advert for {vips} for {silent:.1f} s and this director"
                  f" does not hold it{also}")
        return Finding(True, last, now, detail, tuple((s.text, s.priority) for s in others))

    def _filtered(self, sources, now, gap):
        found = []
        for s in sources:
            if (s.own or s.unmatched_since is None or now - s.unmatched_since < SETTLE
                    or now - s.wire_last > gap):
                continue
            until = min(now, s.wire_last + max(s.advert.interval, 0.01))
            found.append((until - s.unmatched_since, until, s))
        if not found:
            return FALSE
        _evidence, until, s = max(found, key=lambda found: found[0])
        count = f"{s.unmatched} advert{'s' * (s.unmatched != 1)}"
        detail = (f"filtered: {count} from {s.text} prio {s.priority} reached the interface but not"
                  f" the VRRP stack for {now - s.unmatched_since:.1f} s (a firewall dropping IP"
                  f" protocol {51 if s.advert.ah else 112} on this director?)")
        return Finding(True, s.unmatched_since, until, detail, ((s.text, s.priority),))

    def _mismatch(self, instance, sources, now, gap):
        bad = [s for s in sources if not s.own and s.mismatch_last is not None
               and now - s.mismatch_last <= gap]
        if not bad:
            return FALSE
        parts, fields = [], []
        for s in bad:
            words = []
            for field, theirs, ours in s.mismatch:
                fields.append((s.text, field, theirs, ours))
                words.append(f"{field} differs" if ours is None else f"{field} {theirs}, here {ours}")
            note = "" if _known(s, instance) else (
                f" ({s.text} is not a known peer: " + ("not a unicast_peer" if instance.unicast_peers
                                                      else "it never advertised this instance's"
                                                           " address list")
                + f"; another cluster on vrid {instance.vrid}?)")
            parts.append(f"{s.text} prio {s.priority}: {'; '.join(words)}{note}")
        since = min(s.mismatch_last for s in bad)
        until = max(s.mismatch_last for s in bad)
        return Finding(True, since, until, "mismatch: " + " | ".join(parts),
                       tuple((s.text, s.priority) for s in bad), tuple(fields))

    def _foreign(self, router, now):
        seen = [s for s in router.sources.values() if now - s.last <= _gap_of(s)]
        if not seen:
            return FALSE
        words = ", ".join(f"{s.text} prio {s.priority} (v{s.advert.version},"
                          f" {_addresses(s.advert)})" for s in seen)
        since = min(s.run_start for s in seen)
        until = max(s.last for s in seen)
        return Finding(True, since, until, f"foreign: adverts from {words}: a VRID keepalived.conf"
                                         " does not use", tuple((s.text, s.priority) for s in seen))

    # --- what is known now ------------------------------------------------------

    def status(self, now=None):
        """An InstanceStatus per watched instance."""
        now = self.now if now is None else now
        found = []
        for instance in self.instances.values():
            router = self.routers.get(instance.key)
            sources = list(router.sources.values()) if router else []
            problems = {key[0]: t.problem for key, t in self.trackers.items()
                        if t.problem is not None and len(key) == 2 and key[1] == instance.name}
            found.append(InstanceStatus(instance, self.held[instance.name],
                                        self.held_since[instance.name], sources, problems,
                                        sum(s.adverts for s in sources)))
        return found

    def problems(self):
        """Every problem active now."""
        return [t.problem for t in self.trackers.values() if t.problem is not None]

    def foreign_routers(self):
        """(interface, family, vrid, sources) of every VRID seen that no instance uses."""
        return [(*r.key, list(r.sources.values())) for r in self.routers.values()
                if r.instance is None]


_DEFAULT_GROUPS = {4: bytes([224, 0, 0, 18]), 6: bytes([0xFF, 0x02] + [0] * 13 + [0x12])}


def _known(source, instance):
    """A unicast_peer or, with multicast, a source that advertised the exact address list."""
    if instance.unicast_peers:
        return source.address in instance.unicast_peers
    return source.exact


def _gap_of(source):
    return HOLD_ADVERTS * max(source.advert.interval, 0.01) + 1


def _addresses(advert):
    texts = advert.address_texts()
    return " ".join(texts) if texts else "no address"


def _exact(advert, instance):
    """Whether ``advert`` carries the instance's address list. An address listed twice in
    one instance is advertised twice by keepalived 2.2 and once by 2.3 (which ignores the
    second, "VIP duplicates a VIP"): either is the list."""
    ours = instance.addresses
    if advert.count == len(ours) and sorted(advert.addresses) == sorted(ours):
        return True
    distinct = set(ours)
    return len(distinct) < len(ours) and advert.count == len(distinct) and \
        sorted(advert.addresses) == sorted(distinct)


def _differences(advert, instance, exact):
    """(field, theirs, ours) for each way ``advert`` differs from ``instance``;
    ours None where the values must not be shown (a password)."""
    if advert.version != instance.version:
        return (("version", str(advert.version), str(instance.version)),)
    found = []
    if not exact:
        found.append(("addresses", _addresses(advert), " ".join(instance.address_texts())
                      or "no address"))
    if advert.version == 2:
        if advert.interval != round(instance.advert_int):
            found.append(("advert_int", f"{advert.interval:g} s", f"{round(instance.advert_int)} s"))
        theirs = advert.auth_name
        if theirs != instance.auth_type:
            found.append(("auth_type", theirs, instance.auth_type))
        elif theirs == "pass" and advert.auth_digest != instance.auth_digest:
            found.append(("auth_pass", None, None))
    return tuple(found)
