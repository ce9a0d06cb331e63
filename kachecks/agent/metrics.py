"""``/metrics``: the agent's own numbers in the Prometheus text format.

Built on Debian's python3-prometheus-client (a Recommends of the package): a
collector turns the agent's last snapshot (kachecks.agent.snapshot: copies of
the counters the schedule keeps anyway) into metric families, so a check run
costs no metrics work and a scrape takes no lock. The page is rendered once per
snapshot and served as it is to every scraper until the next one (4 scrapers in
a loop cost one render a second, not four hundred). Served by
kachecks.agent.endpoint. Without the library the endpoint still serves the
status page (kachecks.agent.page), ``/metrics`` says why it has nothing, and the
agent says so once.
"""

import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any

MISSING = "python3-prometheus-client is not installed"


def available():
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


class Collector:
    """Metric families of one snapshot (``snapshot``, set before each render)."""

    def __init__(self):
        self.snapshot: Any = None

    def collect(self):
        from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                            HistogramMetricFamily)

        families: dict[str, Any] = {
            "up": GaugeMetricFamily("kachecks_check_up", "1 while the check is up (its track"
                                    " file holds a non-zero value), else 0", labels=["check"]),
            "value": GaugeMetricFamily("kachecks_check_value", "The value in the check's track"
                                       " file (1/0, or the weight with --dynamic)",
                                       labels=["check"]),
            "runs": CounterMetricFamily("kachecks_check_runs", "Probe runs", labels=["check"]),
            "failures": CounterMetricFamily("kachecks_check_failed_runs", "Probe runs that failed",
                                            labels=["check"]),
            "transitions": CounterMetricFamily("kachecks_check_transitions", "Changes of the"
                                               " published state (UP, DRAIN, DOWN)",
                                               labels=["check"]),
            "changed": GaugeMetricFamily("kachecks_check_last_change_timestamp_seconds",
                                         "When the published state last changed (Unix time)",
                                         labels=["check"]),
            "duration": HistogramMetricFamily("kachecks_check_duration_seconds",
                                              "How long each probe run took", labels=["check"]),
            "results": CounterMetricFamily("kachecks_check_results", "Probe runs by the cause"
                                           " of their result (HAProxy's codes: L7OK, L4CON,"
                                           " L7STS…)", labels=["check", "cause"]),
            "downtime": CounterMetricFamily("kachecks_check_downtime_seconds", "Time the"
                                            " check's published state was DOWN, up to its last"
                                            " result", labels=["check"]),
            "flapping": GaugeMetricFamily("kachecks_check_flapping", "1 while the check flaps"
                                          " (Nagios' percent state change of its last 21"
                                          " results above 50 %, until below 25 %)",
                                          labels=["check"]),
            "health": GaugeMetricFamily("kachecks_check_health", "HAProxy's health: 0 .."
                                        " rise+fall-1, up from rise on; below the maximum while"
                                        " up: going down; above 0 while down: going up",
                                        labels=["check"]),
        }
        lateness = HistogramMetricFamily("kachecks_agent_run_lateness_seconds",
                                         "How late each run started after its scheduled time")
        snapshot = self.snapshot
        for view in snapshot.checks:
            name = [view.name]
            families["up"].add_metric(name, 1 if view.up else 0)
            families["value"].add_metric(name, view.value)
            families["runs"].add_metric(name, view.runs)
            families["failures"].add_metric(name, view.failures)
            families["transitions"].add_metric(name, view.transitions)
            if view.since is not None:
                families["changed"].add_metric(name, view.since)
            families["duration"].add_metric(name, _buckets(view.duration), view.duration.sum)
            for code, count in view.results.items():
                families["results"].add_metric([view.name, code], count)
            families["downtime"].add_metric(name, view.downtime)
            families["flapping"].add_metric(name, 1 if view.flapping else 0)
            families["health"].add_metric(name, view.health)
        lateness.add_metric([], _buckets(snapshot.lateness), snapshot.lateness.sum)
        yield from families.values()
        yield lateness
        yield from pair_families(snapshot.vrrp)


def pair_families(view):
    """The ``kachecks_vrrp_*`` families of a PairView (none without a [vrrp] table)."""
    if view is None or not view.configured:
        return []
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    from kachecks.vrrp.detect import CODES

    watching = GaugeMetricFamily("kachecks_vrrp_watching", "1 while the [vrrp] watch runs; 0"
                                 " when it cannot (see the agent's log: keepalived.conf,"
                                 " interface, CAP_NET_RAW)")
    watching.add_metric([], 1 if view.watching else 0)
    families: dict[str, Any] = {
        "sources": GaugeMetricFamily("kachecks_vrrp_sources", "Sources advertising the"
                                     " instance now, this director included (1 in a healthy"
                                     " pair)", labels=["instance"]),
        "holder": GaugeMetricFamily("kachecks_vrrp_holder", "1 while this director holds the"
                                    " instance's virtual_ipaddress", labels=["instance"]),
        "problem": GaugeMetricFamily("kachecks_vrrp_problem", "1 while the problem is active"
                                     " (split-brain, no-master, filtered, mismatch; foreign: on"
                                     " the instance's interface)", labels=["instance", "code"]),
        "adverts": CounterMetricFamily("kachecks_vrrp_adverts", "Adverts for the instance's"
                                       " VRID seen on the wire, per source",
                                       labels=["instance", "source"]),
        "foreign": GaugeMetricFamily("kachecks_vrrp_foreign", "Sources advertising now a VRID"
                                     " keepalived.conf does not use (ignore_vrids left out)",
                                     labels=["interface", "vrid"]),
    }
    for instance in view.instances:
        name = [instance.name]
        families["sources"].add_metric(name, instance.advertising)
        families["holder"].add_metric(name, 1 if instance.holder else 0)
        active = {p.code for p in instance.problems}
        for code in CODES:
            families["problem"].add_metric([instance.name, code], 1 if code in active else 0)
        for source in instance.sources:
            families["adverts"].add_metric([instance.name, source.address], source.adverts)
    foreign: dict[tuple[str, str], int] = {}  # an IPv4 and an IPv6 router on one VRID share a series
    for router in view.foreign:
        key = (router.interface, str(router.vrid))
        foreign[key] = foreign.get(key, 0) + router.advertising
    for key, advertising in foreign.items():
        families["foreign"].add_metric(list(key), advertising)
    return [watching, *families.values()]


class SpoolCollector:
    """The notify spool's counters (kachecks.notify.summary), read when the page is
    rendered from ``root()`` (the ``[spool] dir`` of the agent's kachecks.toml; None: no
    spool series). A listing of the queues, no event read: cheap at a render a second."""

    def __init__(self, root):
        self.root = root

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from kachecks.notify import spool, summary

        root = self.root()
        if root is None:
            return
        try:
            counts = summary.counts(root)
        except (OSError, spool.SpoolError):
            return  # unreadable now: no series rather than wrong ones
        events = GaugeMetricFamily("kachecks_spool_events", "Events waiting in the notify"
                                   " spool, per queue (incoming, then each channel)",
                                   labels=["channel"])
        oldest = GaugeMetricFamily("kachecks_spool_oldest_event_age_seconds", "Age of the"
                                   " oldest event waiting, per queue (0 when none)",
                                   labels=["channel"])
        deliveries = CounterMetricFamily("kachecks_notify_deliveries", "Delivery attempts by"
                                         " result (ok, failed, unsendable; expired counts"
                                         " events given up)", labels=["channel", "result"])
        for queue, entry in counts.items():
            events.add_metric([queue], entry["events"])
            oldest.add_metric([queue], entry["oldest_age_seconds"])
            for result, count in entry.get("deliveries", {}).items():
                deliveries.add_metric([queue, result], count)
        yield from (events, oldest, deliveries)


def unavailable():
    """The ``/metrics`` route without the library: 503, and why."""
    return 503, "text/plain; charset=utf-8", f"no metrics here: {MISSING}\n".encode()


class Page:
    """The ``/metrics`` route: ``page()`` -> (content type, body) of ``source()``'s snapshot
    (and of the notify spool at ``spool()``).

    Rendered once per snapshot, and never busier than ``SHARE`` of a core: a render
    (about 0.2 ms a check) is followed by at least ``1 / SHARE - 1`` times its
    duration on the last page (10,000 checks: a page every 25 s or so, while a
    Prometheus takes one every 15 s). Scrapers in a loop get the same bytes again.
    """

    SHARE = 0.1

    def __init__(self, source, clock=time.monotonic, spool=lambda: None):
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        self.source = source
        self.clock = clock
        self.content_type = CONTENT_TYPE_LATEST
        self._generate = generate_latest
        self._collector = Collector()
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self._collector)
        self._registry.register(SpoolCollector(spool))
        self._rendered = None  # (snapshot, body)
        self._next = 0.0  # no render before this (monotonic)

    def __call__(self):
        snapshot = self.source()
        rendered = self._rendered
        if rendered is None or (rendered[0] is not snapshot and self.clock() >= self._next):
            started = self.clock()
            self._collector.snapshot = snapshot
            self._rendered = rendered = (snapshot, self._generate(self._registry))
            self._collector.snapshot = None
            finished = self.clock()
            self._next = finished + (finished - started) * (1 / self.SHARE - 1)
        return self.content_type, rendered[1]


def _buckets(histogram):
    return [(_le(bound), count) for bound, count in histogram.cumulative()]


def _le(bound):
    return "+Inf" if bound == float("inf") else repr(float(bound))
