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

from kachecks.agent import history as histories
from kachecks.agent import stats

MISSING = "python3-prometheus-client is not installed"


def available():
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


class Collector:
    """Reads the agent's runners on each scrape (``source()`` -> (runners, lateness))."""

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
        with stats.LOCK:
            runners, late = self.source()
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
                record = r.history
                for code, count in record.results.items():
                    families["results"].add_metric([r.spec.name, code], count)
                families["downtime"].add_metric(name, record.downtime)
                families["flapping"].add_metric(name, 1 if record.flapping else 0)
                families["health"].add_metric(name, histories.position(r.health, r.spec.rise,
                                                                       r.spec.fall))
            lateness.add_metric([], _buckets(late), late.sum)
        yield from families.values()
        yield lateness


def _buckets(histogram):
    return [(_le(bound), count) for bound, count in histogram.cumulative()]


def _le(bound):
    return "+Inf" if bound == float("inf") else repr(float(bound))


class SpoolCollector:
    """The notify spool's counters (kachecks.notify.summary), read at scrape time from
    ``root()`` (the ``[spool] dir`` of the agent's kachecks.toml; None: no spool series).
    A listing of the queues, no event read: cheap at Prometheus' pace."""

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


class Page:
    """The ``/metrics`` route: ``page()`` -> (content type, body) of ``source()`` and of
    the spool at ``spool()``."""

    def __init__(self, source, spool=lambda: None):
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        self.content_type = CONTENT_TYPE_LATEST
        self._generate = generate_latest
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(Collector(source))
        self._registry.register(SpoolCollector(spool))

    def __call__(self):
        return self.content_type, self._generate(self._registry)


def unavailable():
    """The ``/metrics`` route without the library: the page says why, in its own words."""
    return 503, "text/plain; charset=utf-8", f"no metrics here: {MISSING}\n".encode()


class Endpoint:
    """``http://HOST:PORT`` serving ``routes`` ({path: callable() -> (content type, body)
    or (status, content type, body)}) from daemon threads until ``close()``."""

    def __init__(self, address, routes, log=None):
        routes = dict(routes)

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 10  # a client that connects and says nothing is dropped
            server_version = "kachecks"  # no version
            sys_version = ""

            def do_GET(self):  # noqa: N802 - http.server's naming
                route = routes.get(self.path.split("?", 1)[0])
                if route is None:
                    self.send_error(404, f"only {', '.join(sorted(routes))} here")
                    return
                answer = route()
                status, kind, body = answer if len(answer) == 3 else (200, *answer)
                self.send_response(status)
                self.send_header("Content-Type", kind)
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
