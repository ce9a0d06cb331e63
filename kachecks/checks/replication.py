"""Replication freshness for ``kachecks-ldap --provider`` (docs/ldap.md).

A syncrepl consumer whose replication stopped still answers every search,
with old passwords and deleted accounts. Each server keeps, on the suffix
of a replicated database, one ``contextCSN`` value per server ID (SID) that
ever wrote there: ``YYYYmmddHHMMSS.uuuuuuZ#count#sid#mod``, the newest
change of that SID it holds.

For every SID a provider holds, the checked server must hold a CSN at least
as new, or the provider's newest change it lacks must be younger than
``--max-lag``. The figure is that staleness, ``now - time of the provider's
newer CSN`` (0 when in sync): how long this server has been missing a
change. LTB's check_ldap_syncrepl_status reports ``provider CSN - consumer
CSN`` instead, which calls a consumer a day behind during the 100 ms after
the first write that follows a quiet day.

The newest change alone cannot tell that quiet day from a consumer stopped
for hours behind a provider that writes every second (its newest change is
always young). When the checked server's own CSN of a SID is older than
--max-lag, one more search asks the provider for entries changed between
that CSN and ``now - --max-lag``: any such change it lacks is older than
--max-lag, and its age becomes the figure.

The checked server's contextCSN and each provider's are read on threads of
their own while the check's search runs on the calling thread, every one
under the run's single deadline: a provider costs no more than its slowest
round trips beside the search, and a stopped one no more than --timeout.
"""

import time

from kachecks.checks.result import L7RSP, L7TOUT, Cause, Result
from kachecks.errors import ProbeFailure
from kachecks.utctime import generalized_time

# Seconds past the deadline a reader may take to report: its sockets time out
# at the deadline, and the thread still has to build the exception.
JOIN_GRACE = 0.2


class CSN:
    """One change sequence number: when (UTC, microseconds), which SID, in what order.

    ``time``: microseconds since the epoch; ``count``: orders changes within
    the same microsecond; ``sid``: the server ID, as written (``001``).
    """

    __slots__ = ("text", "time", "count", "sid", "mod")

    def __init__(self, text, time_us, count, sid, mod):
        for name, value in (("text", text), ("time", time_us), ("count", count), ("sid", sid),
                            ("mod", mod)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError("CSN is immutable")

    @property
    def order(self):
        """What makes one CSN of a SID newer than another."""
        return self.time, self.count, self.mod

    def seconds(self):
        return self.time / 1e6

    def __repr__(self):
        return f"CSN({self.text!r})"


def parse_csn(text):
    """The CSN of ``YYYYmmddHHMMSS[.uuuuuu]Z#count#sid#mod``; ValueError if it is not one."""
    fields = text.strip().split("#")
    if len(fields) != 4 or not fields[0].endswith("Z"):
        raise ValueError(f"not a CSN: {text!r}")
    stamp, count, sid, mod = fields
    whole, _, fraction = stamp[:-1].partition(".")
    if (len(whole) != 14 or not whole.isdigit() or len(fraction) > 6
            or (fraction and not fraction.isdigit()) or not sid or not _is_hex(count + sid + mod)):
        raise ValueError(f"not a CSN: {text!r}")
    micros = int(fraction.ljust(6, "0")) if fraction else 0
    return CSN(text.strip(), generalized_time(whole) * 1_000_000 + micros, int(count, 16),
               sid.lower(), int(mod, 16))


def _is_hex(text):
    return bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)


def by_sid(values):
    """{sid: newest CSN} of contextCSN values; ValueError naming a malformed one."""
    out = {}
    for value in values:
        csn = parse_csn(value)
        known = out.get(csn.sid)
        if known is None or csn.order > known.order:
            out[csn.sid] = csn
    return out


# --- where contextCSN lives ------------------------------------------------

def _rdns(dn):
    """A DN as a tuple of normalised RDNs (case and spaces around , = + ignored)."""
    parts, current, escaped = [], [], False
    for char in dn:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char in ",;":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    rdns = []
    for part in parts:
        avas = ("=".join(side.strip() for side in ava.split("=", 1)) for ava in part.split("+"))
        rdns.append("+".join(sorted(avas)).lower())
    return tuple(r for r in rdns if r)


def naming_context(base, contexts):
    """The naming context (from the root DSE's ``contexts``) holding ``base``.

    The longest one ``base`` ends with; with an empty ``base``, the only
    one. None when there is none (or several and no base to choose).
    """
    wanted = _rdns(base)
    if not wanted:
        return contexts[0] if len(contexts) == 1 else None
    best = None
    for context in contexts:
        suffix = _rdns(context)
        if suffix and wanted[len(wanted) - len(suffix):] == suffix \
                and (best is None or len(suffix) > len(_rdns(best))):
            best = context
    return best


def same_dn(one, other):
    return _rdns(one) == _rdns(other)


# --- reading everything at once ----------------------------------------------

class _Reader:
    """One server's contextCSN, read on a thread of its own under the run's deadline."""

    __slots__ = ("thread", "box")

    def __init__(self, read, server, deadline):
        import threading  # ~5 ms: only for runs with --provider (ldap3 has loaded it by then)

        self.box = []
        from kachecks import interrupt

        self.thread = threading.Thread(target=self._run, args=(read, server, deadline),
                                       name="kachecks contextCSN", daemon=True)
        interrupt.start_deaf(self.thread.start)  # a SIGTERM is the main thread's to take

    def _run(self, read, server, deadline):
        try:
            self.box.append(read(server, deadline))
        except BaseException as exc:  # handed to the calling thread, which judges or re-raises
            self.box.append(exc)

    def outcome(self, deadline):
        """(dn, values), or the ProbeFailure that ended the read; other errors re-raised."""
        self.thread.join(max(0.0, deadline.expires + JOIN_GRACE - time.monotonic()))
        if not self.box:
            return ProbeFailure(f"no answer within {deadline.timeout:g} s", "contextCSN",
                                "unreachable", code=L7TOUT)
        value = self.box[0]
        if isinstance(value, BaseException) and not isinstance(value, ProbeFailure):
            raise value
        return value


def probe(target, deadline, search, read, find):
    """The check's own ``search`` (a Result) with the freshness verdict folded in.

    ``read(server, deadline)`` -> (dn, contextCSN values), for the checked
    server and each of ``target.providers``, all at once; then, only where
    the contextCSNs cannot tell, ``find(provider, deadline, dn, low, high)``
    -> entryCSN values of the provider's changes in that window.
    """
    readers = [_Reader(read, server, deadline) for server in (target, *target.providers)]
    result = search(target, deadline)  # a failure raises: the readers end by the deadline
    outcomes = [reader.outcome(deadline) for reader in readers]
    freshness = Freshness(target, outcomes[0], list(zip(target.providers, outcomes[1:])),
                          time.time())
    for provider, dn, low, high in freshness.windows():
        try:
            freshness.found(provider, find(provider, deadline, dn, low, high))
        except ProbeFailure as exc:  # the contextCSNs' verdict stands
            freshness.details.append(f"{url_of(provider)}: changes not searched: {exc}")
    return freshness.judge(result)


def judge(target, result, consumer, providers, now, changes=()):
    """The Result of a run whose search gave ``result``, with its freshness judged.

    ``consumer``: (dn, values) read from the checked server, or a
    ProbeFailure; ``providers``: (provider target, (dn, values) or
    ProbeFailure) pairs; ``now``: Unix time the staleness is measured at;
    ``changes``: (provider target, entryCSN values) a window search found.
    """
    freshness = Freshness(target, consumer, providers, now)
    for provider, values in changes:
        freshness.found(provider, values)
    return freshness.judge(result)


# --- judging ---------------------------------------------------------------

def url_of(server):
    host = f"[{server.host}]" if ":" in server.host else server.host
    return f"{server.scheme}://{host}:{server.port}"


def _seconds(value):
    return f"{value:.1f} s" if value >= 0.05 or value == 0 else f"{value:.3f} s"


def _limit(seconds):
    return f"{seconds:g} s"


def csn_at(when, sid=0xFFF):
    """The greatest CSN of server ``sid`` at Unix time ``when`` (a window's end)."""
    seconds, micros = divmod(int(when * 1_000_000), 1_000_000)
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(seconds))
    return f"{stamp}.{micros:06d}Z#ffffff#{sid:03x}#ffffff"


class _Gap:
    """A SID of a provider whose newest change the checked server lacks.

    ``have``: the checked server's newest CSN of that SID (None: missing);
    ``age``: how long it has lacked a change, from the provider's newest
    CSN, or from an older change a window search found.
    """

    __slots__ = ("provider", "sid", "have", "age")

    def __init__(self, provider, sid, have, age):
        self.provider, self.sid, self.have, self.age = provider, sid, have, age

    def lacks(self, csn):
        return csn.sid == self.sid and (self.have is None or csn.order > self.have.order)

    def failure(self, max_lag):
        if self.have is None:
            return (f"SID {self.sid} missing: {self.provider} holds changes of SID {self.sid}"
                    f" this server never received, for {_seconds(self.age)}"
                    f" (max {_limit(max_lag)})")
        return (f"behind by {_seconds(self.age)} on SID {self.sid} of {self.provider}"
                f" (max {_limit(max_lag)})")

    def pending(self, max_lag):
        if self.have is None:
            return (f"SID {self.sid} of {self.provider} not here yet, for {_seconds(self.age)}"
                    f" (max {_limit(max_lag)})")
        return (f"{_seconds(self.age)} behind {self.provider} on SID {self.sid}"
                f" (max {_limit(max_lag)})")


def _failure_word(exc):
    """"unreachable" for a provider that never answered, "failed" for one that said no."""
    return "unreachable" if exc.reason == "unreachable" else "failed"


class Freshness:
    """The comparison of one run: the checked server's CSNs against each provider's."""

    def __init__(self, target, consumer, providers, now):
        self.target, self.now = target, now
        self.failure = None  # why the checked server itself fails, or None
        self.failure_cause = None  # ... and its Cause
        self.problems = []  # providers that could not be compared
        self.compared = []  # (provider target, dn) of those that were
        self.gaps = []
        self.in_sync = set()
        self.details = []
        self.mine = self._mine(consumer)
        if self.mine is None:
            return
        seen = set()
        for provider, outcome in providers:
            theirs = self._theirs(provider, outcome)
            if theirs is None:
                continue
            seen.update(theirs)
            for sid, csn in sorted(theirs.items()):
                have = self.mine.get(sid)
                if have is not None and have.order >= csn.order:
                    self.in_sync.add(sid)
                else:
                    self.gaps.append(_Gap(url_of(provider), sid, have,
                                          max(0.0, now - csn.seconds())))
        if self.compared:
            self.details += [f"SID {sid}: on this server only"
                             for sid in sorted(set(self.mine) - seen)]

    def _mine(self, consumer):
        if isinstance(consumer, ProbeFailure):
            self.failure = f"cannot read contextCSN: {consumer}"
            self.failure_cause = Cause(L7RSP, "contextCSN", "unreadable")
            return None
        dn, values = consumer
        try:
            mine = by_sid(values)
        except ValueError as exc:
            self.failure = f"malformed contextCSN on {dn}: {exc}"
            self.failure_cause = Cause(L7RSP, "contextCSN", "malformed")
            return None
        if not mine:
            self.failure = (f"not a replica: no contextCSN on {dn or 'the root DSE'}"
                            " (no syncrepl or syncprov there, or not readable by this bind)")
            self.failure_cause = Cause(L7RSP, "contextCSN", "not-a-replica")
            return None
        self.details += [f"this server, {dn}: contextCSN {csn.text}" for csn in mine.values()]
        return mine

    def _theirs(self, provider, outcome):
        name = url_of(provider)
        if isinstance(outcome, ProbeFailure):
            self.problems.append(f"provider {name} {_failure_word(outcome)}: {outcome}")
            return None
        dn, values = outcome
        try:
            theirs = by_sid(values)
        except ValueError as exc:
            self.problems.append(f"provider {name}: malformed contextCSN on {dn}: {exc}")
            return None
        if not theirs:
            self.problems.append(f"provider {name} has no contextCSN on {dn or 'the root DSE'}")
            return None
        self.compared.append((provider, dn))
        self.details += [f"{name}, {dn}: contextCSN {csn.text}" for csn in theirs.values()]
        return theirs

    def windows(self):
        """(provider, dn, low, high) to search for changes the contextCSNs cannot show.

        A provider's newest change can be young while the checked server has
        lacked an older one for long (a stopped consumer of a busy provider).
        Where the server's own CSN of a SID is older than --max-lag, a change
        of the provider between it (``low``) and ``now - --max-lag``
        (``high``) is such a change. None is needed once a gap fails anyway;
        a missing SID has no lower bound and is judged by its newest change.
        """
        horizon = self.now - self.target.max_lag
        if any(gap.age >= self.target.max_lag for gap in self.gaps):
            return []
        out = []
        for provider, dn in self.compared:
            name = url_of(provider)
            lows = [g.have for g in self.gaps if g.provider == name and g.have is not None
                    and g.have.seconds() <= horizon]
            if lows:
                low = min(lows, key=lambda csn: csn.order)
                out.append((provider, dn, low.text, csn_at(horizon)))
        return out

    def found(self, provider, values):
        """entryCSN values of ``provider``'s changes in a window: each one the checked
        server lacks ages its SID's gap."""
        name = url_of(provider)
        horizon = self.now - self.target.max_lag
        for value in values:
            try:
                csn = parse_csn(value)
            except ValueError:
                continue
            for gap in self.gaps:
                if gap.provider == name and gap.lacks(csn) and csn.seconds() <= horizon:
                    gap.age = max(gap.age, self.now - csn.seconds())
                    self.details.append(f"{name}: change {csn.text} of SID {csn.sid}"
                                        " not on this server")

    def judge(self, result):
        """``result`` (the search's) with the freshness folded in."""
        details = (*result.details, *self.details)
        if not result.ok:
            return result
        if self.failure is not None:
            return Result(False, reason=self.failure, perfdata=result.perfdata,
                          details=details, cause=self.failure_cause)
        if self.problems and self.target.provider_down == "fail":
            return Result(False, reason="; ".join(self.problems), perfdata=result.perfdata,
                          details=details, cause=Cause(L7RSP, "provider", "provider-down"))
        warning = "; ".join(filter(None, [result.warning, *self.problems]))
        if not self.compared:
            return Result(True, summary=result.summary,
                          warning=f"{warning}; replication freshness not checked",
                          perfdata=result.perfdata, details=details, figure="lag",
                          cause=result.cause)
        worst = max(self.gaps, key=lambda gap: gap.age, default=None)
        lag = worst.age if worst is not None else 0.0
        perfdata = (*result.perfdata, ("lag", round(lag, 6), "s"))
        if worst is not None and lag >= self.target.max_lag:
            return Result(False, reason=worst.failure(self.target.max_lag), perfdata=perfdata,
                          details=details, cause=Cause(L7RSP, "replication", "stale"))
        if worst is not None:
            freshness = worst.pending(self.target.max_lag)
        else:
            sids = sorted(self.in_sync)
            freshness = (f"in sync with {', '.join(url_of(p) for p, _ in self.compared)}"
                         f" (SID{'s' if len(sids) > 1 else ''} {', '.join(sids)})")
        return Result(True, summary=f"{result.summary}; {freshness}", warning=warning,
                      perfdata=perfdata, details=details, figure="lag", cause=result.cause)
