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

The checked server's contextCSN and each provider's are read on threads of
their own while the check's search runs on the calling thread, every one
under the run's single deadline: a provider costs no more than its slowest
round trips beside the search, and a stopped one no more than --timeout.
"""

import threading
import time

from kachecks.checks.result import Result
from kachecks.errors import ProbeFailure
from kachecks.utctime import generalized_time

PROVIDER_DOWN = ("ok", "fail")
DEFAULT_MAX_LAG = 60.0
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
        self.box = []
        self.thread = threading.Thread(target=self._run, args=(read, server, deadline),
                                       name="kachecks contextCSN", daemon=True)
        self.thread.start()

    def _run(self, read, server, deadline):
        try:
            self.box.append(read(server, deadline))
        except BaseException as exc:  # handed to the calling thread, which judges or re-raises
            self.box.append(exc)

    def outcome(self, deadline):
        """(dn, values), or the ProbeFailure that ended the read; other errors re-raised."""
        self.thread.join(max(0.0, deadline.expires - time.monotonic()) + JOIN_GRACE)
        if not self.box:
            return ProbeFailure(f"no answer within {deadline.timeout:g} s", "contextCSN",
                                "unreachable")
        value = self.box[0]
        if isinstance(value, BaseException) and not isinstance(value, ProbeFailure):
            raise value
        return value


def probe(target, deadline, search, read):
    """The check's own ``search`` (a Result) and the freshness verdict folded into it.

    ``read(server, deadline)`` -> (dn, contextCSN values) for the checked
    server and for each of ``target.providers``.
    """
    readers = [_Reader(read, server, deadline) for server in (target, *target.providers)]
    result = search(target, deadline)  # a failure raises: the readers end by the deadline
    outcomes = [reader.outcome(deadline) for reader in readers]
    return judge(target, result, outcomes[0], list(zip(target.providers, outcomes[1:])),
                 time.time())


# --- judging ---------------------------------------------------------------

def url_of(server):
    host = f"[{server.host}]" if ":" in server.host else server.host
    return f"{server.scheme}://{host}:{server.port}"


def _seconds(value):
    return f"{value:.1f} s" if value >= 0.05 or value == 0 else f"{value:.3f} s"


def _limit(seconds):
    return f"{seconds:g} s"


class _Gap:
    """A SID where the checked server lacks the provider's newest change."""

    __slots__ = ("provider", "sid", "csn", "age", "missing")

    def __init__(self, provider, sid, csn, age, missing):
        self.provider, self.sid, self.csn, self.age, self.missing = (provider, sid, csn, age,
                                                                     missing)

    def failure(self, max_lag):
        if self.missing:
            return (f"SID {self.sid} missing: {self.provider} holds changes of SID {self.sid}"
                    f" this server never received, the newest {_seconds(self.age)} old"
                    f" (max {_limit(max_lag)})")
        return (f"behind by {_seconds(self.age)} on SID {self.sid} of {self.provider}"
                f" (max {_limit(max_lag)})")

    def pending(self, max_lag):
        if self.missing:
            return (f"SID {self.sid} of {self.provider} not here yet, {_seconds(self.age)} old"
                    f" (max {_limit(max_lag)})")
        return (f"{_seconds(self.age)} behind {self.provider} on SID {self.sid}"
                f" (max {_limit(max_lag)})")


def _failure_word(exc):
    """"unreachable" for a provider that never answered, "failed" for one that said no."""
    return "unreachable" if exc.reason == "unreachable" else "failed"


def _failed(result, reason, details=()):
    return Result(False, reason=reason, perfdata=result.perfdata,
                  details=(*result.details, *details))


def judge(target, result, consumer, providers, now):
    """The Result of a run whose search gave ``result``, with its freshness judged.

    ``consumer``: (dn, values) read from the checked server, or a
    ProbeFailure; ``providers``: (provider target, (dn, values) or
    ProbeFailure) pairs; ``now``: Unix time the staleness is measured at.
    """
    from kachecks.checks.result import Result

    if not result.ok:
        return result
    if isinstance(consumer, ProbeFailure):
        return _failed(result, f"cannot read contextCSN: {consumer}")
    dn, values = consumer
    try:
        mine = by_sid(values)
    except ValueError as exc:
        return _failed(result, f"malformed contextCSN on {dn}: {exc}")
    if not mine:
        return _failed(result, f"not a replica: no contextCSN on {dn or 'the root DSE'}"
                               " (no syncrepl or syncprov there, or not readable by this bind)")
    details = [f"this server, {dn}: contextCSN {csn.text}" for csn in mine.values()]
    problems, compared, gaps, in_sync, seen = [], [], [], set(), set()
    for provider, outcome in providers:
        name = url_of(provider)
        if isinstance(outcome, ProbeFailure):
            problems.append(f"provider {name} {_failure_word(outcome)}: {outcome}")
            continue
        their_dn, their_values = outcome
        try:
            theirs = by_sid(their_values)
        except ValueError as exc:
            problems.append(f"provider {name}: malformed contextCSN on {their_dn}: {exc}")
            continue
        if not theirs:
            problems.append(f"provider {name} has no contextCSN on {their_dn or 'the root DSE'}")
            continue
        compared.append(name)
        seen.update(theirs)
        for sid, csn in sorted(theirs.items()):
            details.append(f"{name}, {their_dn}: contextCSN {csn.text}")
            have = mine.get(sid)
            if have is not None and have.order >= csn.order:
                in_sync.add(sid)
                continue
            gaps.append(_Gap(name, sid, csn, max(0.0, now - csn.seconds()), have is None))
    details += [f"SID {sid}: on this server only" for sid in sorted(set(mine) - seen) if compared]
    if problems and target.provider_down == "fail":
        return _failed(result, "; ".join(problems), details)
    warning = "; ".join(filter(None, [result.warning, *problems]))
    if not compared:
        return Result(True, summary=result.summary,
                      warning=f"{warning}; replication freshness not checked",
                      perfdata=result.perfdata, details=(*result.details, *details), figure="lag")
    worst = max(gaps, key=lambda gap: gap.age, default=None)
    lag = worst.age if worst is not None else 0.0
    perfdata = (*result.perfdata, ("lag", round(lag, 6), "s"))
    if worst is not None and lag >= target.max_lag:
        return Result(False, reason=worst.failure(target.max_lag), perfdata=perfdata,
                      details=(*result.details, *details))
    if worst is not None:
        freshness = worst.pending(target.max_lag)
    else:
        sids = sorted(in_sync)
        freshness = (f"in sync with {', '.join(compared)}"
                     f" (SID{'s' if len(sids) > 1 else ''} {', '.join(sids)})")
    return Result(True, summary=f"{result.summary}; {freshness}", warning=warning,
                  perfdata=perfdata, details=(*result.details, *details), figure="lag")
