"""The failover what-if: every single failure on either director, and who holds the addresses after.

From the steady state (both directors started together, every script
passing, every tracked interface up, every track file at its start value),
one failure at a time: each tracked vrrp_script failing, each track_file
reading its failing value, each tracked interface down, each track_process
losing quorum, keepalived stopped, the director down. For each, keepalived's
rules (docs/reference.md, "The pair and the what-if") give every instance's
effective priority and state on both directors and who holds its addresses
once things settle:

* priority = base + the trackers' weights, clamped to 1..254 (255, the
  address owner, never changes); a weight-0 tracker failing is FAULT;
* a FAULT, stopped or dead MASTER gives way to a peer that is not in FAULT,
  nopreempt or not;
* a BACKUP takes over a MASTER only with a strictly higher priority and
  without nopreempt (after preempt_delay); an equal priority keeps the MASTER;
* at start-up the first whose master-down timer expires is MASTER (three
  advert intervals plus a skew, shorter at a higher priority; ``state
  MASTER`` changes nothing below priority 255); two at once: the higher
  priority, then the higher primary address;
* a sync group is in FAULT when one member is, and MASTER only for all its
  members at once.

A failure that leaves the addresses on the director where it happened, at a
lower priority, is a ``failover`` warning with its arithmetic.
"""

from kachecks.doctor.findings import WARNING, Finding
from kachecks.doctor.pair import match, where
from kachecks.doctor.vrrp import FAULT, FILE, INTERFACE, PROCESS, SCRIPT
from kachecks.vrrp.instances import OWNER

MASTER, BACKUP, STOP, DOWN, UNKNOWN = "MASTER", "BACKUP", "STOP", "DOWN", "UNKNOWN"
_UNKNOWN = object()  # a holder that cannot be told from the files


class Failure:
    """One failure on one director: a tracker (kind, name), or keepalived stopped / the director down."""

    __slots__ = ("director", "kind", "name", "value", "text", "node")

    def __init__(self, director, kind, name=None, value=None, text=None, node=None):
        self.director = director
        self.kind = kind
        self.name = name
        self.value = value  # a track file's failing value
        self.text = text
        self.node = node  # where it is tracked first (the failover finding's line)

    def hits(self, director, tracker):
        return (director is self.director and tracker.kind == self.kind
                and tracker.name == self.name)


class Side:
    """One instance on one director in one scenario."""

    __slots__ = ("state", "priority", "fault", "terms", "base")

    def __init__(self, state, priority, fault=None, terms=(), base=None):
        self.state = state
        self.priority = priority
        self.fault = fault  # why it is in FAULT (or stopped/down)
        self.terms = terms  # [(tracker, contribution)] that changed the base priority
        self.base = base

    @property
    def up(self):
        return self.fault is None

    def cell(self):
        if self.state in (STOP, DOWN, FAULT):
            return self.state
        return f"{self.state} {self.priority}"

    def arithmetic(self):
        """``100 - 20 (chk_web1) = 80``."""
        text = str(self.base)
        for tracker, value in self.terms:
            text += f" {'+' if value >= 0 else '-'} {abs(value)} ({tracker.name})"
        if not self.terms:
            return text
        total = self.base + sum(v for _, v in self.terms)
        text += f" = {total}"
        if total != self.priority:
            text += f", clamped to {self.priority}"
        return text


class Row:
    """One instance of the pair: its Instance on each director (None where absent)."""

    __slots__ = ("name", "instances")

    def __init__(self, name, instances):
        self.name = name
        self.instances = instances  # one per director, or None


class Outcome:
    __slots__ = ("holder", "sides", "note")

    def __init__(self, holder, sides, note=None):
        self.holder = holder  # a director index, None (nobody), or _UNKNOWN
        self.sides = sides
        self.note = note


class Scenario:
    __slots__ = ("failure", "outcomes")

    def __init__(self, failure, outcomes):
        self.failure = failure
        self.outcomes = outcomes  # one Outcome per Row


def rows(directors):
    """The instances of the pair, in the first file's order, then the peer's alone."""
    if len(directors) == 1:
        return [Row(i.name, [i]) for i in directors[0].instances]
    mine, peer = directors
    pairs = match(mine, peer)
    paired = {id(b) for _, b in pairs}
    out = []
    for inst in mine.instances:
        partner = next((b for a, b in pairs if a is inst), None)
        out.append(Row(inst.name, [inst, partner]))
    for inst in peer.instances:
        if id(inst) not in paired:
            out.append(Row(inst.name, [None, inst]))
    return out


def failures(directors):
    """Every single failure, director by director: scripts, files, interfaces, processes (each in
    the order the file tracks them), keepalived stopped, the director down."""
    found = []
    for d in directors:
        seen = set()
        for kind in (SCRIPT, FILE, INTERFACE, PROCESS):
            for inst in d.instances:
                for tracker in inst.trackers:
                    key = (tracker.kind, tracker.name)
                    if tracker.kind != kind or key in seen or tracker.ignored:
                        continue
                    seen.add(key)
                    found.append(_failure(d, tracker))
        found.append(Failure(d, STOP, text="keepalived stopped"))
        found.append(Failure(d, DOWN, text="director down"))
    return found


def _failure(d, tracker):
    if tracker.kind == FILE:
        return Failure(d, FILE, tracker.name, tracker.failing,
                       f"track_file {tracker.name} reads {tracker.failing}", tracker.entry)
    text = {SCRIPT: f"vrrp_script {tracker.name} fails", INTERFACE: f"interface {tracker.name} down",
            PROCESS: f"track_process {tracker.name} loses quorum"}[tracker.kind]
    return Failure(d, tracker.kind, tracker.name, text=text, node=tracker.entry)


def side(d, inst, failure):
    """The instance's effective priority (and FAULT) on director ``d`` under ``failure``."""
    if failure is not None and failure.director is d and failure.kind in (STOP, DOWN):
        return Side(failure.kind, 0, fault=failure.text, base=inst.priority)
    terms = []
    fault = None
    for tracker in inst.trackers:
        failing = failure is not None and failure.hits(d, tracker)
        if tracker.kind == FILE:
            value = failure.value if failing else tracker.steady
            got = tracker.contribution(value=value)
        else:
            got = tracker.contribution(ok=not failing)
        if got == FAULT:
            fault = fault or f"{tracker.what()} {'fails' if failing else 'is down'}"
        elif got and inst.priority != OWNER:
            terms.append((tracker, got))
    if inst.priority == OWNER:
        priority = OWNER
    else:
        priority = max(1, min(OWNER - 1, inst.priority + sum(v for _, v in terms)))
    return Side(FAULT if fault else None, priority, fault=fault, terms=terms, base=inst.priority)


def simulate(directors):
    """[Scenario]: the steady state first (failure None), then each single failure."""
    table = rows(directors)
    steady = _scenario(directors, table, None, None)
    out = [steady]
    for failure in failures(directors):
        out.append(_scenario(directors, table, failure, steady))
    return out


def _scenario(directors, table, failure, steady):
    sides = []
    for row in table:
        sides.append([side(d, inst, failure) if inst is not None else None
                      for d, inst in zip(directors, row.instances)])
    _sync_faults(directors, table, sides)
    outcomes = []
    for i, row in enumerate(table):
        before = steady.outcomes[i] if steady is not None else None
        outcomes.append(_elect(directors, row, sides[i], before))
    _sync_masters(directors, table, outcomes)
    for outcome in outcomes:
        for j, s in enumerate(outcome.sides):
            if s is None or s.state in (STOP, DOWN, FAULT):
                continue
            if outcome.holder is _UNKNOWN:
                s.state = UNKNOWN
            else:
                s.state = MASTER if outcome.holder == j else BACKUP
    return Scenario(failure, outcomes)


def _sync_faults(directors, table, sides):
    """A member in FAULT puts its whole sync group in FAULT, on that director."""
    for j, d in enumerate(directors):
        for group in d.groups.values():
            members = [i for i, row in enumerate(table)
                       if row.instances[j] is not None and row.instances[j].sync_group is group]
            faulty = [table[i].name for i in members if sides[i][j].state == FAULT]
            if not faulty:
                continue
            for i in members:
                s = sides[i][j]
                if s.state is None:
                    s.state = FAULT
                    s.fault = f"sync group {group.name}: {faulty[0]} is in FAULT"


def _timer(inst, s):
    """Seconds from start-up to MASTER when nothing is heard (keepalived's vrrp_init_state):
    at once for an address owner with ``state MASTER``, else the master-down timer, whatever
    the state line says."""
    if inst.state == MASTER and s.priority == OWNER:
        return 0.0
    adv = inst.advert_int
    skew = 256 - s.priority
    return 3 * adv + (skew / 256 if inst.version == 2 else skew * adv / 256)


def _address(row, j):
    """The primary address director ``j`` sends from: unicast_src_ip/mcast_src_ip, else the
    peer's only unicast_peer, else None."""
    inst = row.instances[j]
    if inst.source is not None:
        return inst.source
    other = row.instances[1 - j] if len(row.instances) == 2 else None
    if other is not None and len(other.peers) == 1:
        return other.peers[0]
    return None


def _elect(directors, row, sides, before):
    avail = [j for j, s in enumerate(sides) if s is not None and s.up]
    if len(directors) == 1:
        return Outcome(0 if avail else None, sides)
    if not avail:
        return Outcome(None, sides)
    if before is None or before.holder is None:
        if len(avail) == 1:
            return Outcome(avail[0], sides)
        return _start(row, sides)
    holder = before.holder
    if holder is _UNKNOWN:
        if len(avail) == 1:
            return Outcome(avail[0], sides)
        return Outcome(_UNKNOWN, sides, before.note)
    if holder not in avail:
        return Outcome(avail[0] if avail else None, sides)
    other = 1 - holder
    if other in avail:
        inst = row.instances[other]
        if not inst.nopreempt and sides[other].priority > sides[holder].priority:
            delay = f" after preempt_delay {inst.preempt_delay:g} s" if inst.preempt_delay else ""
            return Outcome(other, sides, f"preempts{delay}" if delay else None)
    return Outcome(holder, sides)


def _start(row, sides):
    """Both directors up from start-up: who ends up MASTER."""
    a, b = (row.instances[j] for j in (0, 1))
    ta, tb = _timer(a, sides[0]), _timer(b, sides[1])
    if abs(ta - tb) < 1e-6:
        pa, pb = sides[0].priority, sides[1].priority
        if pa != pb:
            return Outcome(0 if pa > pb else 1, sides)
        ia, ib = _address(row, 0), _address(row, 1)
        if ia is None or ib is None or ia.family != ib.family or ia == ib:
            return Outcome(_UNKNOWN, sides,
                           f"equal priorities, both MASTER at once: the higher primary address on"
                           f" {a.interface} wins, and the files do not give both (unicast_src_ip)")
        return Outcome(0 if ia > ib else 1, sides,
                       f"equal priorities: the higher primary address wins ({max(ia, ib)})")
    first = 0 if ta < tb else 1
    second = 1 - first
    late = row.instances[second]
    if not late.nopreempt and sides[second].priority > sides[first].priority:
        return Outcome(second, sides)
    return Outcome(first, sides)


def _sync_masters(directors, table, outcomes):
    """A sync group is MASTER for all its members or none.

    Split on one director only, the group there gives way and the peer takes
    its members; split on both (members that prefer different directors),
    keepalived settles by the timing of the adverts: unknown.
    """
    if len(directors) != 2:
        return
    splits = {}
    for j, d in enumerate(directors):
        for group in d.groups.values():
            members = [i for i, row in enumerate(table)
                       if row.instances[j] is not None and row.instances[j].sync_group is group]
            if any(outcomes[i].holder is _UNKNOWN for i in members):
                continue
            held = [i for i in members if outcomes[i].holder == j]
            if held and len(held) < len(members):
                splits[(j, group.name)] = (group, held, members)
    for (j, name), (_group, held, members) in splits.items():
        if (1 - j, name) in splits:
            for i in members:
                outcomes[i].holder = _UNKNOWN
                outcomes[i].note = (f"sync group {name}'s members prefer different directors:"
                                    " keepalived settles by the timing of the adverts")
            continue
        for i in held:
            other = outcomes[i].sides[1 - j]
            outcomes[i].holder = 1 - j if other is not None and other.up else None
            outcomes[i].note = f"sync group {name} cannot be MASTER for only some of its members"


# -- what people read --------------------------------------------------------

def findings(directors, scenarios):
    """``failover`` warnings: a failure at a lower priority that leaves the addresses where it happened."""
    if len(directors) != 2:
        return []
    table = rows(directors)
    steady = scenarios[0]
    found = []
    for scenario in scenarios[1:]:
        failure = scenario.failure
        if failure.kind in (STOP, DOWN):
            continue
        j = directors.index(failure.director)
        for i, row in enumerate(table):
            after = scenario.outcomes[i]
            if stays(directors, row, failure, steady.outcomes[i], after):
                found.append(_failover(directors, row, j, failure, after.sides[j],
                                       after.sides[1 - j]))
    return found


def stays(directors, row, failure, before, after):
    """Whether ``failure`` lowers the holder's priority and leaves the addresses there."""
    if len(directors) != 2 or failure is None or failure.kind in (STOP, DOWN):
        return False
    j = directors.index(failure.director)
    if before.holder != j or after.holder != j or row.instances[1 - j] is None:
        return False
    return after.sides[j].priority < before.sides[j].priority


def _failover(directors, row, j, failure, mine, theirs):
    here, there = directors[j], directors[1 - j]
    inst, peer_inst = row.instances[j], row.instances[1 - j]
    tracker = _tracker_of(inst, failure)
    node = tracker.entry if tracker is not None else failure.node
    reasons = []
    if not theirs.up:
        reasons.append(f"{there.name}'s {peer_inst.name} is in FAULT ({theirs.fault})")
    else:
        if mine.priority > theirs.priority:
            reasons.append(f"{mine.priority} > {there.name}'s {theirs.priority}"
                           f" ({where(peer_inst.at('priority'))})")
        elif mine.priority == theirs.priority:
            reasons.append(f"{mine.priority} = {there.name}'s {theirs.priority}"
                           f" ({where(peer_inst.at('priority'))}), and an equal priority does not"
                           " preempt")
        if peer_inst.nopreempt:
            lead = "and " if reasons else f"{mine.priority} < {there.name}'s {theirs.priority}, but "
            reasons.append(f"{lead}{there.name} has nopreempt ({where(peer_inst.at('nopreempt'))}):"
                           " no priority change moves the addresses, only a FAULT, a stop or a"
                           " director down does")
    how = f" ({tracker.reading(failure.value)})" if failure.kind == FILE and tracker else ""
    text = (f"{failure.text} on {here.name}{how}: {inst.name}'s addresses stay on {here.name}, where"
            f" it failed: priority {mine.arithmetic()}; " + ", ".join(reasons))
    return Finding(node.file, node.line, WARNING, "failover", text)


def _tracker_of(inst, failure):
    """The tracker of ``inst`` that ``failure`` hits, or None."""
    if inst is None:
        return None
    for tracker in inst.trackers:
        if tracker.kind == failure.kind and tracker.name == failure.name:
            return tracker
    return None


def as_json(directors, scenarios):
    """The scenarios as the list ``--json`` prints (docs/reference.md)."""
    table = rows(directors)
    names = [d.name for d in directors]
    out = []
    for scenario in scenarios:
        failure = scenario.failure
        instances = {}
        for row, outcome in zip(table, scenario.outcomes):
            holder = outcome.holder
            instances[row.name] = {
                "holder": names[holder] if isinstance(holder, int) else None,
                "priority": {names[j]: s.priority for j, s in enumerate(outcome.sides) if s is not None},
                "state": {names[j]: s.state for j, s in enumerate(outcome.sides) if s is not None},
            }
        out.append({"director": failure.director.name if failure else None,
                    "failure": failure.text if failure else None,
                    "instances": instances})
    return out


def table(directors, scenarios):
    """The scenarios as text: one table per instance, the failures that touch it."""
    rows_ = rows(directors)
    names = [d.name for d in directors]
    lines = []
    if len(directors) == 1:
        lines.append(f"Peer unknown (no --peer): {names[0]} is assumed to hold every instance"
                     " before each failure; a lower priority moves the addresses only if the"
                     " peer's is higher and it preempts.")
    for i, row in enumerate(rows_):
        steady = scenarios[0].outcomes[i]
        inst = next(x for x in row.instances if x is not None)
        lines.append("")
        lines.append(f"{row.name}: vrid {inst.vrid} on {inst.interface},"
                     f" {', '.join(inst.address_texts()) or 'no address'}")
        body = [["failure", *names, "addresses on"]]
        notes = []
        for scenario in scenarios:
            outcome = scenario.outcomes[i]
            if scenario.failure is not None and not _touches(outcome, steady):
                continue
            label = "(none: steady state)" if scenario.failure is None else \
                f"{scenario.failure.director.name}: {scenario.failure.text}"
            cells = [s.cell() if s is not None else "-" for s in outcome.sides]
            holder = outcome.holder
            held = names[holder] if isinstance(holder, int) else \
                ("unknown" if holder is _UNKNOWN else
                 "the peer, if up" if len(names) == 1 else "nobody")
            if stays(directors, row, scenario.failure, steady, outcome):
                held += " (stays where it failed)"
            body.append([label, *cells, held])
            if outcome.note:
                notes.append(f"{label}: {outcome.note}")
            failure = scenario.failure
            if failure is not None and failure.kind == FILE:
                # what the value does in this instance, with its entry's own weight
                j = directors.index(failure.director)
                tracker = _tracker_of(row.instances[j], failure)
                if tracker is not None:
                    notes.append(f"{label}: {tracker.reading(failure.value)}")
        widths = [max(len(r[c]) for r in body) for c in range(len(body[0]))]
        for r in body:
            lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
        for note in dict.fromkeys(notes):
            lines.append(f"  note: {note}")
    return "\n".join(lines).lstrip("\n")


def _touches(outcome, steady):
    for now, then in zip(outcome.sides, steady.sides):
        if now is None:
            continue
        if (now.state, now.priority) != (then.state, then.priority):
            return True
    return outcome.holder != steady.holder
