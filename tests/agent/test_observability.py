"""What the agent tells Prometheus and systemd, read the way they read it."""

import json
import signal
import socket
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.checks import MD5_SERVER2, SERVER1, SERVER2
from harness.peers.agent import http_check
from harness.peers.ports import RefusingPort, free_port
from harness.peers.rawhttp import RawHTTPServer, http_response


@pytest.fixture
def web():
    with RawHTTPServer(http_response(SERVER1)) as server:
        yield server


def scrape(port, path="/metrics"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, check=None, **labels):
    if check is not None:
        labels["check"] = check
    return samples[(name, tuple(sorted(labels.items())))]


def wait_scrape(port, predicate, timeout=10):
    end = time.monotonic() + timeout
    while True:
        try:
            samples = scrape(port)
            if predicate(samples):
                return samples
        except (urllib.error.URLError, ConnectionError, KeyError):
            pass
        if time.monotonic() > end:
            raise AssertionError(f"metrics on port {port} never matched")
        time.sleep(0.1)


def test_prometheus_scrape_shows_state_runs_transitions_and_durations(agent_factory, web):
    port = free_port()
    agent = agent_factory([http_check("web1", web), http_check("web2", web, MD5_SERVER2)],
                          metrics=f"127.0.0.1:{port}", interval=0.3, timeout=0.2)
    with agent:
        samples = wait_scrape(port, lambda s: value(s, "kachecks_check_runs_total", "web2") >= 2)
        assert value(samples, "kachecks_check_up", "web1") == 1
        assert value(samples, "kachecks_check_up", "web2") == 0
        assert value(samples, "kachecks_check_value", "web1") == 1
        assert value(samples, "kachecks_check_failed_runs_total", "web2") >= 2
        assert value(samples, "kachecks_check_failed_runs_total", "web1") == 0
        serve_changed = time.time()
        web.response = http_response(SERVER2)
        samples = wait_scrape(port, lambda s: value(s, "kachecks_check_up", "web2") == 1)
        assert value(samples, "kachecks_check_transitions_total", "web2") == 1
        changed = value(samples, "kachecks_check_last_change_timestamp_seconds", "web2")
        assert serve_changed - 0.1 < changed < time.time()
        runs = value(samples, "kachecks_check_runs_total", "web1")
        count = value(samples, "kachecks_check_duration_seconds_count", "web1")
        inf = value(samples, "kachecks_check_duration_seconds_bucket", "web1", le="+Inf")
        fast = value(samples, "kachecks_check_duration_seconds_bucket", "web1", le="0.1")
        assert runs == count == inf and fast == count  # loopback: every run well under 0.1 s
        assert 0 < value(samples, "kachecks_check_duration_seconds_sum", "web1") < 0.1 * count
        late = value(samples, "kachecks_agent_run_lateness_seconds_count")
        assert late >= runs
        with pytest.raises(urllib.error.HTTPError) as error:
            scrape(port, "/other")
        assert error.value.code == 404


def test_metrics_listen_on_loopback_by_default(tmp_path):
    from kachecks.agent import config

    assert config.DEFAULT_METRICS.startswith("127.0.0.1:")
    assert config.parse({"agent": {}}, "kachecks.toml").metrics == (
        "127.0.0.1", int(config.DEFAULT_METRICS.split(":")[1]))


def test_a_reload_moves_the_endpoint_and_forgets_removed_checks(agent_factory, web):
    first, second = free_port(), free_port()
    agent = agent_factory([http_check("web1", web), http_check("web2", web)],
                          metrics=f"127.0.0.1:{first}", interval=0.3, timeout=0.2)
    with agent:
        wait_scrape(first, lambda s: value(s, "kachecks_check_up", "web2") == 1)
        agent.rewrite([http_check("web1", web)], metrics=f"127.0.0.1:{second}", interval=0.3,
                      timeout=0.2)
        agent.send(signal.SIGHUP)
        samples = wait_scrape(second, lambda s: value(s, "kachecks_check_up", "web1") == 1)
        assert not [key for key in samples if ("check", "web2") in key[1]]
        with pytest.raises(urllib.error.URLError):
            scrape(first)


def test_without_prometheus_client_the_page_is_served_and_metrics_say_why(agent_factory, web,
                                                                           syslog_socket):
    port = free_port()
    agent = agent_factory([http_check("web1", web)], metrics=f"127.0.0.1:{port}",
                          preamble="import sys; sys.modules['prometheus_client'] = None",
                          interval=0.3, timeout=0.2)
    with agent:
        agent.wait_value("web1", "1\n")
        with pytest.raises(urllib.error.HTTPError) as error:
            scrape(port)
        assert error.value.code == 503
        assert b"python3-prometheus-client is not installed" in error.value.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as reply:
            assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
            assert b'id="check-web1"' in reply.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=5) as reply:
            assert json.load(reply)["checks"][0]["name"] == "web1"
    lines = [m for m in syslog_socket() if "metrics" in m]
    assert len(lines) == 1, lines
    assert "no /metrics: python3-prometheus-client is not installed" in lines[0]


def test_a_busy_metrics_port_costs_the_endpoint_not_the_checks(agent_factory, web, syslog_socket):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        agent = agent_factory([http_check("web1", web)], metrics=f"127.0.0.1:{port}",
                              interval=0.3, timeout=0.2)
        with agent:
            agent.wait_value("web1", "1\n")
    lines = [m for m in syslog_socket() if "metrics endpoint" in m]
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], lines


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    messages = []

    def read(until=None, timeout=10):
        """Every message so far; with ``until``, wait for one that matches."""
        end = time.monotonic() + timeout
        while True:
            try:
                messages.append(sock.recv(4096, socket.MSG_DONTWAIT).decode())
                continue
            except BlockingIOError:
                pass
            if until is None or any(until(m) for m in messages):
                return messages
            if time.monotonic() > end:
                raise AssertionError(f"no matching notify message in {messages}")
            time.sleep(0.02)

    yield str(path), read
    sock.close()


@pytest.mark.slow
def test_systemd_hears_ready_status_watchdog_reloading_and_stopping(agent_factory, web,
                                                                    notify_socket):
    path, read = notify_socket
    agent = agent_factory([http_check("web1", web), http_check("web2", web, MD5_SERVER2)],
                          env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"},
                          interval=0.3, timeout=0.2)
    with agent:
        read(until=lambda m: m == "STATUS=2 checks, 1 up")
        read(until=lambda m: m == "READY=1")
        start = len(read())
        time.sleep(1.0)
        watchdogs = read()[start:].count("WATCHDOG=1")
        assert 3 <= watchdogs <= 7, read()  # every 0.2 s (half of WATCHDOG_USEC), not a flood
        agent.send(signal.SIGHUP)
        read(until=lambda m: m == "RELOADING=1")
        assert agent.stop() == 0
        messages = read(until=lambda m: m == "STOPPING=1")
    assert messages.index("READY=1") < messages.index("RELOADING=1")
    assert messages[messages.index("RELOADING=1") + 1] == "READY=1"
    assert messages[0].startswith("STATUS=") or messages[0] == "READY=1"


def test_the_shipped_unit_is_type_notify_with_fail_closed_stop_post(tmp_path):
    import subprocess
    from pathlib import Path

    from harness.peers import cli

    shipped = Path(__file__).resolve().parents[2] / "packaging/debian/kachecks.kachecks-agent.service"
    text = shipped.read_text()
    for line in ("Type=notify", "ExecStart=/usr/bin/kachecks agent", "Restart=on-failure",
                 "ExecStopPost=/usr/bin/kachecks agent zero", "ExecReload=/bin/kill -HUP $MAINPID",
                 "WatchdogSec=30"):
        assert f"\n{line}\n" in text, line
    unit = tmp_path / "kachecks-agent.service"
    here = str(cli.bin_dir() / "kachecks")  # in "…" for systemd when the path holds a blank
    unit.write_text(text.replace("/usr/bin/kachecks", f'"{here}"' if " " in here else here))
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_the_notify_spool_is_exported_for_the_stuck_notifications_alert(agent_factory, web,
                                                                      tmp_path):
    from kachecks.notify import event as events
    from kachecks.notify.spool import Spool

    root = tmp_path / "spool"
    spool = Spool(str(root))
    old = events.make("INSTANCE", "VI_1", "MASTER")
    old["id"] = events.new_id(time.time_ns() - 600 * 10**9)  # waiting for ten minutes
    spool.put(old)
    spool.put(events.make("INSTANCE", "VI_1", "BACKUP"))
    port = free_port()
    agent = agent_factory([http_check("web1", web)], metrics=f"127.0.0.1:{port}",
                          interval=0.3, timeout=0.2)
    agent.config.write_text(agent.config.read_text() + f'\n[spool]\ndir = "{root}"\n')
    with agent:
        samples = wait_scrape(port, lambda s: value(s, "kachecks_check_up", "web1") == 1)
    assert samples[("kachecks_spool_events", (("channel", "incoming"),))] == 2
    assert samples[("kachecks_spool_events", (("channel", "mail"),))] == 0
    age = samples[("kachecks_spool_oldest_event_age_seconds", (("channel", "incoming"),))]
    assert 600 <= age < 700
    assert samples[("kachecks_notify_deliveries_total",
                    (("channel", "mail"), ("result", "expired")))] == 0


def test_each_check_exports_its_history(agent_factory, web):
    port = free_port()
    with RefusingPort() as refused:
        agent = agent_factory([http_check("web1", web), http_check("web2", refused)],
                              metrics=f"127.0.0.1:{port}", interval=0.3, timeout=0.2, rise=2,
                              fall=2)
        with agent:
            samples = wait_scrape(port, lambda s: value(
                s, "kachecks_check_results_total", "web2", cause="L4CON") >= 3)
    assert value(samples, "kachecks_check_results_total", "web1", cause="L7OK") >= 1
    assert not [key for key in samples if key[0] == "kachecks_check_results_total"
                and ("check", "web1") in key[1] and ("cause", "L7OK") not in key[1]]
    assert value(samples, "kachecks_check_health", "web1") == 3  # rise + fall - 1: up
    assert value(samples, "kachecks_check_health", "web2") == 0
    assert value(samples, "kachecks_check_downtime_seconds_total", "web2") > 0
    assert value(samples, "kachecks_check_downtime_seconds_total", "web1") == 0
    assert value(samples, "kachecks_check_flapping", "web1") == 0


def test_the_shipped_unit_paces_restarts_and_fits_10000_checks():
    from pathlib import Path

    from kachecks.agent import daemon

    root = Path(__file__).resolve().parents[2]
    unit, service = (root / "packaging/debian/kachecks.kachecks-agent.service").read_text().split(
        "[Service]")
    for line in ("StartLimitIntervalSec=600", "StartLimitBurst=5"):
        assert f"\n{line}\n" in unit, line  # [Unit]: 5 starts in 10 minutes, then failed
    settings = dict(line.split("=", 1) for line in service.splitlines() if "=" in line
                    and not line.startswith("#"))
    assert int(settings["RestartSec"]) >= 10
    checks = 10_000
    need = checks * daemon.DESCRIPTORS_PER_CHECK + daemon.DESCRIPTORS_OWN
    assert int(settings["LimitNOFILE"]) >= need
    assert int(settings["TasksMax"]) >= 2 * checks + 16  # each run and a reload's old run
