"""``/metrics``: the agent's own numbers in the Prometheus text format.

Built on Debian's python3-prometheus-client (a Recommends of the package): a
collector turns the agent's last snapshot (kachecks.agent.snapshot: copies of
the counters the schedule keeps anyway) into metric families, so a check run
costs no metrics work and a scrape takes no lock. The page is rendered once per
snapshot and served as it is to every scraper until the next one (4 scrapers in
a loop cost one render a second, not four hundred). Served by
kachecks.agent.endpoint. Without the library the agent runs without an endpoint
and says so once.
"""

import time

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
        self.snapshot = None

    def collect(self):
        from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                            HistogramMetricFamily)

        families = {
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
    families = {
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
    foreign = {}  # an IPv4 and an IPv6 router on one VRID share a series
    for router in view.foreign:
        key = (router.interface, str(router.vrid))
        foreign[key] = foreign.get(key, 0) + router.advertising
    for key, advertising in foreign.items():
        families["foreign"].add_metric(list(key), advertising)
    return [watching, *families.values()]


class Page:
    """The ``/metrics`` route: ``page()`` -> (content type, body) of ``source()``'s snapshot.

    Rendered once per snapshot, and never busier than ``SHARE`` of a core: a render
    (about 0.2 ms a check) is followed by at least ``1 / SHARE - 1`` times its
    duration on the last page (10,000 checks: a page every 25 s or so, while a
    Prometheus takes one every 15 s). Scrapers in a loop get the same bytes again.
    """

    SHARE = 0.1

    def __init__(self, source, clock=time.monotonic):
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        self.source = source
        self.clock = clock
        self.content_type = CONTENT_TYPE_LATEST
        self._generate = generate_latest
        self._collector = Collector()
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self._collector)
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
