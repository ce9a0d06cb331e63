"""The status page and the status table, rendered from a status document: what they show,
what they escape, what they never load."""

import html.parser

from kachecks.agent import page, status

NOW = 1.7e9
HOSTILE = '"><script>alert(1)</script><img src="http://evil.example/x.png">'


def check(name, **fields):
    entry = {"name": name, "file": f"/run/kachecks/track/{name}", "target": "[192.168.8.101]:80",
             "state": "UP", "up": True, "value": 1, "since": NOW - 65, "latency": 0.0017,
             "lateness": 0.0, "reason": "200 OK", "runs": 40, "failed_runs": 0, "error": None,
             "cause": "L7OK", "health": 1, "rise": 1, "fall": 1, "going": None, "downtime": 0.0,
             "downs": 0, "flapping": False, "state_change": 0.0,
             "latencies": "1700 1650 2100 1800"}
    entry.update(fields)
    return entry


def document(*checks, **fields):
    doc = {"version": 1, "pid": 911, "state": "running", "started": NOW - 600, "written": NOW,
           "config": "/etc/kachecks/kachecks.toml", "track_dir": "/run/kachecks/track",
           "checks": list(checks), "files": []}
    doc.update(fields)
    return doc


class Elements(html.parser.HTMLParser):
    """Every start tag with its attributes, and the text, of a page."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def rendered(doc):
    return page.render(doc, now=NOW, host="lvs1").decode("utf-8")


def test_text_from_a_peer_or_a_configuration_is_escaped_not_obeyed():
    vrrp = {"watching": True, "keepalived_conf": HOSTILE, "error": None, "foreign": [],
            "instances": [{"name": HOSTILE, "label": HOSTILE, "addresses": [HOSTILE],
                           "holder": True, "held_since": NOW - 5, "advertising": 2,
                           "sources": [{"address": HOSTILE, "priority": HOSTILE, "own": False,
                                        "alive": True, "adverts": 3, "last": NOW - 1}],
                           "problems": [{"code": HOSTILE, "severity": "critical",
                                         "since": NOW - 4, "text": HOSTILE}]}]}
    doc = document(check("web1", state="DOWN", reason=HOSTILE, target=HOSTILE, error=HOSTILE,
                         cause=HOSTILE, latencies=HOSTILE), config=HOSTILE, vrrp=vrrp)
    text = rendered(doc)
    parsed = Elements(text)
    assert not [tag for tag, _ in parsed.tags if tag in ("script", "img")]
    assert "".join(parsed.text).count(HOSTILE) >= 9  # shown as text, every time
    loading = [value for _, attrs in parsed.tags for key, value in attrs.items()
               if key in ("src", "href", "style", "points", "transform") and "evil" in value]
    assert loading == []  # in an id or a title it is text; nowhere does it load anything


def test_the_page_is_self_contained_readable_without_script_and_refreshes_itself():
    text = rendered(document(check("web1"), check("web2", state="DOWN", cause="L4CON")))
    parsed = Elements(text)
    tags = {tag for tag, _ in parsed.tags}
    assert tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p",
                    "table", "thead", "tbody", "tr", "th", "td", "small", "br", "abbr", "span",
                    "svg", "polyline", "div", "footer", "a"}
    links = [a.get("href") or a.get("src") for _, a in parsed.tags if "href" in a or "src" in a]
    assert links == ["status.json", "metrics"]  # relative: the same endpoint
    assert "url(" not in text and "@import" not in text and "http" not in text.lower().replace(
        'http-equiv="refresh"', "")
    assert ("meta", {"http-equiv": "refresh", "content": str(page.REFRESH)}) in parsed.tags


def test_a_row_shows_state_cause_latency_history_and_flapping():
    rows = [check("web1"),
            check("web2", state="DOWN", up=False, cause="L4CON", reason="connection refused",
                  downtime=125.0, downs=3),
            check("web3", state="UP", going="down", health=3, rise=2, fall=3),
            check("web4", flapping=True, state_change=62.4)]
    text = rendered(document(*rows))
    assert 'class="state DOWN">DOWN</td>' in text
    assert '<abbr title="TCP connection refused, unreachable, reset or lost">L4CON</abbr>' in text
    assert 'class="state going-down">UP, going down 1/3</td>' in text
    assert '<td class="flapping">FLAPPING 62 %</td>' in text
    assert ">2m05s<" in text and ">1.7 ms<" in text
    assert text.count("<polyline") == 4
    assert "4 checks: 3 up, 1 down; 1 flapping" in text


def test_the_sparkline_draws_the_ring_scaled_to_its_highest():
    svg = page.sparkline("1000 2000 4000")
    assert 'points="0,1000 2,2000 4,4000"' in svg
    assert f"scale(1 -{(page.SPARK_HEIGHT - 2) / 4000:.6g})" in svg
    assert "1.0 to 4.0 ms" in svg
    assert page.sparkline("") == "" and page.sparkline("12 x") == ""


def test_each_watched_vrrp_instance_has_a_block_with_holder_sources_and_problems():
    vrrp = {"watching": True, "keepalived_conf": "/etc/keepalived/keepalived.conf",
            "error": None, "foreign": [],
            "instances": [{"name": "VI_1", "vrid": 50, "interface": "eth0",
                           "label": "VI_1 vrid 50 on eth0", "addresses": ["192.168.8.142"],
                           "holder": True, "held_since": NOW - 30, "advertising": 2,
                           "adverts": 60,
                           "sources": [{"address": "192.168.8.100", "priority": 150, "own": True,
                                        "alive": True, "adverts": 30, "last": NOW - 1},
                                       {"address": "192.168.8.110", "priority": 100,
                                        "own": False, "alive": True, "adverts": 30,
                                        "last": NOW - 1}],
                           "problems": [{"code": "split-brain", "severity": "critical",
                                         "since": NOW - 10,
                                         "text": "VI_1 vrid 50 on eth0: split brain"}]}]}
    text = rendered(document(check("web1"), vrrp=vrrp))
    assert '<div class="instance" id="vrrp-VI_1">' in text
    assert "held here since" in text and "(192.168.8.142); 2 advertising now." in text
    assert "192.168.8.100 (this director)</td>" in text and ">100</td>" in text
    assert '<p class="problem">split-brain (critical) since' in text
    stopped = rendered(document(vrrp={"watching": False, "error": "no CAP_NET_RAW",
                                      "keepalived_conf": "/etc/keepalived/keepalived.conf"}))
    assert "Not watching: no CAP_NET_RAW" in stopped
    assert 'id="vrrp"' not in rendered(document(check("web1")))  # no [vrrp]: no block


def test_a_route_renders_once_per_snapshot_whoever_asks_and_within_its_share():
    made, clock, snapshot = [], [100.0], [object()]

    def make(taken):
        made.append(taken)
        clock[0] += 0.01  # a render takes 10 ms
        return b"page"

    route = page.Rendered(lambda: snapshot[0], make, "text/html", clock=lambda: clock[0])
    for _ in range(50):
        assert route() == ("text/html", b"page")
    assert made == [snapshot[0]]  # one render for that snapshot
    snapshot[0] = object()
    route()
    assert len(made) == 1  # a new snapshot, but within 9 × 10 ms of the last render
    clock[0] += 0.1  # past 9 × 10 ms
    route()
    assert made[-1] is snapshot[0] and len(made) == 2


def test_the_table_has_the_pages_columns_and_colour_only_when_asked():
    doc = document(check("web1"), check("web2", state="DOWN", cause="L4CON", downs=2,
                                        reason="connection refused", flapping=True,
                                        state_change=55.0),
                   check("web3", going="up", state="DOWN", health=1, rise=2, fall=3))
    plain = status.render(doc, now=NOW)
    assert plain[1].split() == ["CHECK", "STATE", "VALUE", "SINCE", "CAUSE", "LATENCY", "LAST",
                                "60", "DOWNTIME", "DOWNS", "FLAPPING", "LAST", "RESULT"]
    assert "DOWN, going up 1/2" in plain[4]
    assert "L4CON" in plain[3] and "FLAPPING 55%" in plain[3] and "\033[" not in "".join(plain)
    assert len({line.index("CAUSE") if "CAUSE" in line else None for line in plain[1:2]}) == 1
    painted = status.render(doc, now=NOW, colour=True)
    assert "\033[31mDOWN" in painted[3] and "\033[35mFLAPPING" in painted[3]
    assert "\033[32mUP" in painted[2]


def test_the_terminal_sparkline_keeps_the_peaks_of_the_ring():
    ring = " ".join(["1000"] * 57 + ["8000", "1000", "1000"])
    line = status.spark(ring)
    assert len(line) == status.SPARK_CELLS and line[-1] == "█" and set(line[:-1]) == {"▁"}
    assert status.spark(ring, status.ASCII_SPARKS)[-1] == "#"
    assert status.spark("") == "" and status.spark(None) == ""
