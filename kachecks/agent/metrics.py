"""The Prometheus endpoint: the agent's own numbers in the text format.

Built on Debian's python3-prometheus-client (a Recommends of the package): a
collector turns the counters the agent keeps anyway (kachecks.agent.stats)
into metric families at scrape time, so a check run costs no metrics work;
the HTTP server is the standard library's, started and stopped by the agent
(reloads may move it). Without the library the agent runs without an endpoint
and says so once.
"""

import http.server
import socket
import threading

from kachecks.agent import stats

MISSING = "python3-prometheus-client is not installed"


def available():
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


class Collector:
    """Reads the agent's runners on each scrape (``source()`` -> (runners, lateness, pair):
    pair is the kachecks.agent.pair.PairView the main loop published last)."""

    def __init__(self, source):
        self.source = source

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
        with stats.LOCK:
            runners, late, pair = self.source()
            for r in runners:
                name = [r.spec.name]
                families["up"].add_metric(name, 1 if r.health.up else 0)
                families["value"].add_metric(name, r.health.value)
                families["runs"].add_metric(name, r.stats.runs)
                families["failures"].add_metric(name, r.stats.failures)
                families["transitions"].add_metric(name, r.stats.transitions)
                if r.health.since is not None:
                    families["changed"].add_metric(name, r.health.since)
                families["duration"].add_metric(name, _buckets(r.stats.duration),
                                                r.stats.duration.sum)
            lateness.add_metric([], _buckets(late), late.sum)
        yield from families.values()
        yield lateness
        yield from pair_families(pair)


def pair_families(view):
    """The ``kachecks_vrrp_*`` families of a PairView (none without a [vrrp] table)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    from kachecks.vrrp.detect import CODES

    if not view.configured:
        return []
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


def _buckets(histogram):
    return [(_le(bound), count) for bound, count in histogram.cumulative()]


def _le(bound):
    return "+Inf" if bound == float("inf") else repr(float(bound))


class Endpoint:
    """``http://HOST:PORT/metrics`` served by daemon threads until ``close()``."""

    def __init__(self, address, source):
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        registry.register(Collector(source))

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 10  # a client that connects and says nothing is dropped

            def do_GET(self):  # noqa: N802 - http.server's naming
                if self.path.split("?", 1)[0] not in ("/metrics", "/"):
                    self.send_error(404, "only /metrics here")
                    return
                body = generate_latest(registry)
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        host, port = address

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        self.address = address
        self.server = Server((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       kwargs={"poll_interval": 0.5}, name="kachecks-metrics")
        self.thread.start()

    def close(self, wait=True):
        """Stop listening; ``wait`` for the serving loop (a reload), not at exit."""
        if wait:
            self.server.shutdown()
        self.server.server_close()
