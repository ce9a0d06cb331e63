"""``kachecks-vrrp``: the pair's health seen on the wire (docs/vrrp.md).

Listens for --listen seconds to every instance of keepalived.conf (or those
named by --instance) from both vantage points of their interfaces, then
judges: exit 0 when no critical problem held (split-brain, no-master,
filtered, mismatch), 1 otherwise; ``foreign`` is a warning (WARNING under
--nagios, exit 0 without). The listening itself is kachecks.vrrp.watcher's.
"""

import sys

from kachecks.argspec import MULTI, Opt, integer, seconds
from kachecks.checks.contract import Check, run
from kachecks.checks.options import COMMON, COMMON_OPTS, Target, common, threshold
from kachecks.checks.result import L7OK, L7RSP, Cause, Result
from kachecks.errors import UsageError

WATCH = "What to watch"
DEFAULT_CONFIG = "/etc/keepalived/keepalived.conf"
GRACE = 2.0  # --timeout's default beyond --listen: opening, reading keepalived.conf, printing
NOT_OFFERED = ("bind", "fwmark", "dynamic", "weight", "drain_file")  # nothing to connect to

OPTS = [
    Opt("keepalived_conf", None, "keepalived-conf", metavar="FILE", default=DEFAULT_CONFIG,
        help=f"keepalived configuration whose vrrp_instance blocks are watched (default"
             f" {DEFAULT_CONFIG})", section=WATCH),
    Opt("config_id", "i", "config-id", metavar="ID",
        help="read @ID lines as director ID would (default: this host's name, like"
             " keepalived -i)", section=WATCH),
    Opt("instances", None, "instance", kind=MULTI, metavar="NAME",
        help="watch only this vrrp_instance (repeatable; default: all)", section=WATCH),
    Opt("listen", None, "listen", metavar="SECONDS", convert=seconds,
        help="how long to listen (default: 3 x the largest advert_int + 1: long enough to see"
             " a master advertise three times, or none)", section=WATCH),
    Opt("hold", None, "hold", metavar="SECONDS", convert=seconds,
        help="how long another master (or a firewall's drop) must last to count as split brain"
             " (or filtered) (default: 3 x advert_int: a preemption or a hand-over overlaps"
             " less)", section=WATCH),
    Opt("ignore_vrids", None, "ignore-vrid", kind=MULTI, metavar="VRID", convert=integer(1, 255),
        help="never report adverts for VRID as foreign (repeatable; another cluster sharing"
             " the segment)", section=WATCH),
]

TIMEOUT = Opt("timeout", "t", "timeout", metavar="SECONDS", convert=seconds,
              help="deadline for the whole run (default: --listen + 2; must exceed --listen)",
              section=COMMON)
THRESHOLDS = {
    "warning": Opt("warning", "w", "warning", metavar="RANGE", convert=threshold,
                   help="with --nagios: WARNING when the number of sources advertising an instance"
                        " is outside RANGE (1:1, or @2: for two or more)", section=COMMON),
    "critical": Opt("critical", "c", "critical", metavar="RANGE", convert=threshold,
                    help="with --nagios: CRITICAL when that number is outside RANGE",
                    section=COMMON),
}
VRRP_COMMON = [TIMEOUT if o.dest == "timeout" else THRESHOLDS.get(o.dest, o) for o in COMMON_OPTS
               if o.dest not in NOT_OFFERED]

USAGE = "[OPTIONS]"

DESCRIPTION = """\
The VRRP pair's health seen on the wire, for Icinga/Nagios and a shell. For every
vrrp_instance of keepalived.conf it listens on the instance's interface from two
vantage points (a packet socket: what reaches the wire, before the firewall; a
raw VRRP socket: what keepalived's VRRP stack receives), filtered in the kernel
so that other traffic costs nothing.

Problems:
  split-brain  this director holds the instance's addresses while another source
               keeps advertising its VRID (or, seen from a backup or a witness,
               two sources keep advertising) for longer than --hold
  no-master    no advert carrying the instance's addresses for 3 x advert_int
               + 1 s, and this director does not hold them
  filtered     adverts from another source reach the interface but not the VRRP
               stack: a local firewall drops them
  mismatch     an advert for the VRID whose version, advert_int, address list or
               auth type (or PASS password, compared as a digest) differs
  foreign      adverts for a VRID this configuration does not use (a warning)

Needs CAP_NET_RAW (root). Exit codes: 0 no critical problem (foreign is a
warning only); 1 a critical problem, or a bad option, an unreadable
keepalived.conf, a missing interface, no CAP_NET_RAW (never 2); with
--nagios 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, perfdata sources= (the most
sources advertising one instance) and adverts= (adverts heard)."""

EPILOG = """\
Examples (reference deployment, on lvs1 or lvs2):
  kachecks-vrrp
  kachecks-vrrp --instance VI_1 --verbose
  kachecks-vrrp --nagios --listen 10 --ignore-vrid 51

What it prints:
  VRRP OK - VI_1 vrid 50 on eth0: held here (192.168.8.142), 4 adverts in 4 s
  VRRP FAIL - VI_1 vrid 50 on eth0: split brain: 192.168.8.100 prio 100 and
      192.168.8.110 prio 50 (this director) both master for 6.0 s (this director
      holds 192.168.8.142)
  VRRP CRITICAL: VI_1 vrid 50 on eth0: filtered: 4 adverts from 192.168.8.100
      prio 100 reached the interface but not the VRRP stack for 3.6 s (...)
      | sources=2 adverts=9

Live, one line per advert: kachecks vrrp watch. What each problem means and
the command that confirms it: /usr/share/doc/kachecks/docs/vrrp.md.
"""


class VrrpTarget(Target):
    """What to watch: ``instances`` (every vrrp_instance of the file), ``watched``,
    ``listen``, ``hold`` (None: 3 x advert_int), ``ignore_vrids``."""

    __slots__ = ("keepalived_conf", "instances", "watched", "listen", "hold", "ignore_vrids")

    @property
    def identity(self):
        return "[" + " ".join(i.name for i in self.watched) + "]"


def _instances(ns):
    """(every instance, watched) of ns's keepalived.conf, read once per namespace."""
    loaded = getattr(ns, "loaded", None)
    if loaded is None:
        from kachecks.vrrp import instances

        loaded = ns.loaded = instances.load(ns.keepalived_conf, ns.config_id, ns.instances)
    return loaded


def defaults(ns):
    """--listen from the instances' advert_int, --timeout from --listen (before the deadline)."""
    _all, watched = _instances(ns)
    if ns.listen is None:
        ns.listen = 3 * max(i.advert_int for i in watched) + 1
    if ns.timeout is None:
        ns.timeout = ns.listen + GRACE
    elif ns.timeout <= ns.listen:
        raise UsageError(f"--timeout ({ns.timeout:g} s) must exceed --listen ({ns.listen:g} s)")


def build(ns):
    defaults(ns)
    everything, watched = _instances(ns)
    return VrrpTarget(**common(ns), host=None, port=None, keepalived_conf=ns.keepalived_conf,
                      instances=tuple(everything), watched=tuple(watched), listen=ns.listen,
                      hold=ns.hold, ignore_vrids=tuple(ns.ignore_vrids))


def probe(target, deadline):
    """Listen, then judge: a Result (ok unless a critical problem was seen)."""
    from kachecks.vrrp.detect import CRITICAL
    from kachecks.vrrp.watcher import Watcher

    watcher = Watcher(target.instances, target.watched, target.hold, target.ignore_vrids)
    try:
        until = min(watcher.started + target.listen, deadline.expires - 0.2)
        seen = {}  # problems that started while listening, active or over
        for event in watcher.events(until):
            problem = getattr(event, "problem", None)
            if problem is not None:
                seen[id(problem)] = problem
        now = watcher.clock()
        status = watcher.status(now)
        foreign = watcher.detector.foreign_routers()
    finally:
        watcher.close()
    listened = now - watcher.started
    problems = sorted(seen.values(), key=lambda p: (p.started, p.code))
    critical = [p for p in problems if p.severity == CRITICAL]
    warnings = [p for p in problems if p.severity != CRITICAL]
    sources = max((sum(1 for s in st.sources if s.priority > 0) for st in status), default=0)
    adverts = sum(st.adverts for st in status)
    details = [_source_line(st.instance.name, s, now) for st in status for s in st.sources]
    details += [_source_line(f"foreign {'IPv6 ' if family == 6 else ''}vrid {vrid} on {interface}",
                             s, now) for interface, family, vrid, found in foreign for s in found]
    return Result(not critical, summary="; ".join(_summary(st, now, listened) for st in status),
                  reason="; ".join(_text(p) for p in critical),
                  warning="; ".join(_text(p) for p in warnings),
                  perfdata=(("sources", sources, ""), ("adverts", adverts, "")),
                  details=details, figure="sources",
                  # the wire said something a healthy pair does not: the first critical problem
                  cause=Cause(L7RSP, "listen", critical[0].code) if critical else Cause(L7OK))


def _text(problem):
    if problem.ended is None:
        return problem.text()
    return f"{problem.text()} (over after {problem.last_true - problem.since:.1f} s)"


def _summary(st, now, listened):
    """``VI_1 vrid 50 on eth0: held here (192.168.8.142), 4 adverts in 4 s``"""
    instance = st.instance
    if st.held:
        role = f"held here ({', '.join(instance.address_texts())})"
    else:
        masters = [s for s in st.sources if not s.own and s.priority > 0
                   and s.last >= now - listened - 1]
        role = ("master " + ", ".join(f"{s.text} prio {s.priority}" for s in masters)
                if masters else "no master heard")
    return (f"{instance.label()}: {role}, {st.adverts} advert{'s' * (st.adverts != 1)}"
            f" in {listened:.0f} s")


def _source_line(name, source, now):
    advert = source.advert
    addresses = " ".join(advert.address_texts()) or "no address"
    own = " (this director)" if source.own else ""
    stack = "" if source.own else f", {source.stack_adverts} reached the VRRP stack"
    return (f"{name}: {source.text}{own} v{advert.version} prio {advert.priority} int"
            f" {advert.interval:g}s addrs {addresses}: {source.adverts} adverts on the wire{stack},"
            f" last {now - source.last:.1f} s ago")


CHECK = Check(name="VRRP", prog="kachecks-vrrp", opts=OPTS, usage=USAGE, description=DESCRIPTION,
              epilog=EPILOG, build=build, probe=probe, common=VRRP_COMMON, defaults=defaults)


def main(argv=None, prog=None):
    return run(CHECK, argv, prog)


if __name__ == "__main__":
    sys.exit(main())
