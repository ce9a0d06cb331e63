"""The agent as its users see it: a real Prometheus scraping it (the shipped alert rules
loaded), and its status page in a real browser (headless Chromium).

One agent, three checks: web1 healthy, web2 refused (nothing listens on its port), and
flappy, whose server answers the right page and the wrong one in turn: with rise and
fall 2 it never goes down, but it flaps.
"""

import http.server
import itertools
import re
import threading
import urllib.request
from pathlib import Path

import pytest

from harness.checks import SERVER1, SERVER2
from harness.peers.agent import http_check
from harness.peers.chromium import Chromium, png_pixels
from harness.peers.ports import RefusingPort, free_port
from harness.peers.prometheus import Prometheus, hastened
from harness.peers.rawhttp import RawHTTPServer, http_response
from harness.wait import wait_for

REPO = Path(__file__).resolve().parents[2]
RULES = "packaging/debian/examples/kachecks-alerts.yml"
DOWN_COLOUR = (0xff, 0x90, 0x90)  # the page's .DOWN background
FLAPPING_COLOUR = (0xff, 0xb0, 0xe0)  # its .flapping one

pytestmark = pytest.mark.slow  # a browser start, Prometheus' scrapes and rule evaluations


@pytest.fixture
def three_checks(agent_factory):
    """A running agent with web1 (up), web2 (refused: L4CON) and flappy; its port."""
    turns = itertools.cycle([http_response(SERVER1), http_response(SERVER2)])
    with RawHTTPServer(http_response(SERVER1)) as web, \
            RawHTTPServer(lambda request: [next(turns)]) as flapping, RefusingPort() as refused:
        port = free_port()
        agent = agent_factory([http_check("web1", web), http_check("web2", refused),
                               http_check("flappy", flapping, rise=2, fall=2)],
                              metrics=f"127.0.0.1:{port}", interval=0.25, timeout=0.2)
        with agent:
            agent.wait_status(ready, timeout=30, what="web2 down (L4CON), flappy flapping")
            yield agent, port


def ready(document):
    seen = {c["name"]: c for c in document["checks"]}
    return ((seen["web1"]["state"], seen["web2"]["state"], seen["web2"]["cause"],
             seen["flappy"]["state"], seen["flappy"]["flapping"])
            == ("UP", "DOWN", "L4CON", "UP", True))


def test_prometheus_scrapes_the_agent_and_the_shipped_rules_fire_for_the_failing_check(
        three_checks, tmp_path):
    agent, port = three_checks
    rules = tmp_path / "kachecks-alerts.yml"
    rules.write_text(hastened((REPO / RULES).read_text(), "2s"))
    with Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{port}"], rules=[rules]) as prom:
        prom.wait_for_series('kachecks_check_flapping{check="flappy"} == 1', 60)
        up = dict((s["check"], v) for s, v in prom.query("kachecks_check_up"))
        assert up == {"web1": 1, "web2": 0, "flappy": 1}
        refused = prom.query('kachecks_check_results_total{check="web2"}')
        assert {s["cause"] for s, _ in refused} == {"L4CON"}
        assert all(s["job"] == "kachecks" and s["instance"] == f"127.0.0.1:{port}"
                   for s, _ in refused)
        down = prom.wait_for_series('kachecks_check_downtime_seconds_total{check="web2"} > 0',
                                    30)
        assert prom.query('kachecks_check_downtime_seconds_total{check="web1"}')[0][1] == 0
        assert down[0][1] > 0
        health = dict((s["check"], v) for s, v in prom.query("kachecks_check_health"))
        assert health["web1"] == 1 and health["web2"] == 0 and health["flappy"] in (2, 3)

        def firing():
            found = {(a["labels"]["alertname"], a["labels"].get("check"))
                     for a in prom.alerts() if a["state"] == "firing"}
            return found if {("KachecksCheckDown", "web2"),
                             ("KachecksCheckFlapping", "flappy")} <= found else None

        alerts = wait_for(firing, 60, interval=0.5, what="the alerts to fire in Prometheus")
        assert alerts == {("KachecksCheckDown", "web2"), ("KachecksCheckFlapping", "flappy")}
        assert prom.query('ALERTS{alertname="KachecksAgentAbsent"}') == []


def test_the_status_page_in_a_browser_shows_the_down_check_its_cause_and_the_flapping_one(
        three_checks, tmp_path):
    agent, port = three_checks
    url = f"http://127.0.0.1:{port}/"
    with Chromium(tmp_path / "chromium") as browser:
        dom = browser.dump_dom(url)
        png = browser.screenshot(url)
        fetched = browser.fetched_for_pages()
    with urllib.request.urlopen(url, timeout=10) as reply:  # what a browser without script reads
        served = reply.read().decode()
    web2 = row(dom, "web2")
    assert re.search(r'<td class="state DOWN">DOWN</td>', web2), web2
    assert ">L4CON</abbr>" in web2 and "refused" in web2
    assert '<td class="flapping">FLAPPING ' in row(dom, "flappy")
    assert '<td class="state UP">UP</td>' in row(dom, "web1")
    assert fetched == []  # nothing loaded from outside
    # nothing scripted: no script, no handler, every row already in the HTML served
    assert not re.search(r"<script|\son\w+=", dom + served)
    assert row(served, "web2") and "FLAPPING" in row(served, "flappy")
    width, height, pixels = png_pixels(png)
    seen = {pixel for line in pixels for pixel in line}
    assert (width, height) == browser.size
    assert DOWN_COLOUR in seen and FLAPPING_COLOUR in seen  # the colours a person sees


def test_the_browser_harness_sees_what_a_page_fetches_from_outside(tmp_path):
    page = (b'<html><body><p id="here">here</p><img src="http://example.invalid/x.png">'
            b'<link rel="stylesheet" href="https://fonts.example/f.css"></body></html>')

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with Chromium(tmp_path / "chromium") as browser:
            dom = browser.dump_dom(f"http://127.0.0.1:{server.server_address[1]}/")
            fetched = wait_for(lambda: len(browser.fetched_for_pages()) >= 2 and
                               browser.fetched_for_pages(), 10, what="the page's fetches")
    finally:
        server.shutdown()
        server.server_close()
    assert 'id="here"' in dom
    assert sorted(line.split()[0] + " " + line.split()[1] for line in fetched) == [
        "CONNECT fonts.example:443", "GET http://example.invalid/x.png"]


def row(dom, name):
    found = re.search(rf'<tr id="check-{name}">.*?</tr>', dom, re.S)
    return found.group(0) if found else ""
