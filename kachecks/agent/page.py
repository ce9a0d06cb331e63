"""The agent's status page: its status document (kachecks.agent.status) as one HTML page.

What HAProxy's stats page shows a server, for each check: its state in colour
("going down 1/3" between thresholds), the cause code of its last run and the
reason, the last latency with a sparkline of the last 60, when its state last
changed, its downtime, how often it went down, whether it flaps; and one block per
VRRP instance the agent watches (who holds it, who advertises, what is wrong).

One self-contained page: no script, no external style sheet, font or image (the
sparklines are inline SVG), so it reads the same in a text browser, behind a
firewall and without JavaScript; it refreshes itself (a meta refresh). Every text
that comes from a peer or a configuration — a reason phrase is whatever an HTTP
server put on its status line — is escaped before it reaches the page.
"""

import html
import json
import os
import time

from kachecks.agent.status import _ago as _duration
from kachecks.agent.status import _stamp as _wall
from kachecks.agent.status import state_label
from kachecks.checks.result import MEANINGS

REFRESH = 5  # seconds between the page's reloads of itself
RING = 60  # latencies drawn (kachecks.agent.history.RING)
SPARK_WIDTH = 2 * RING  # px: 2 per latency of the ring
SPARK_HEIGHT = 18
_ESCAPE = html.escape
_XS = tuple(f"{2 * i}," for i in range(RING))  # each point's "x," (its y is the latency)

_STYLE = """\
body{font:13px/1.35 system-ui,sans-serif;margin:1em;color:#111;background:#fff}
h1{font-size:1.3em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.2em 0 .3em}
p.summary{margin:.2em 0 .8em;color:#333}
table{border-collapse:collapse}
th,td{border:1px solid #bbb;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#e8e8e8;font-weight:600}
td.num{text-align:right;white-space:nowrap}
td.state{font-weight:700;white-space:nowrap}
small{color:#555}
.UP{background:#c0f0c0}.DOWN{background:#ff9090}.DRAIN{background:#a0d8f0}
.PENDING{background:#e0e0e0}.going-down{background:#ffd070}.going-up{background:#e8f090}
.flapping{background:#ffb0e0;font-weight:700}
.problem{color:#a00000;font-weight:700}
svg.spark{vertical-align:middle}svg.spark polyline{fill:none;stroke:#2050a0;stroke-width:1}
footer{margin-top:1.5em;color:#555}
"""


def render(document, now=None, host=None):
    """The page (bytes, UTF-8) for a status ``document``, as of ``now`` (Unix time)."""
    now = time.time() if now is None else now
    host = os.uname().nodename if host is None else host
    checks = [c for c in document.get("checks", ()) if isinstance(c, dict)]
    counts: dict[str, int] = {}
    flapping = 0
    for c in checks:
        state = c.get("state") or "PENDING"
        counts[state] = counts.get(state, 0) + 1
        flapping += bool(c.get("flapping"))
    summary = ", ".join(f"{counts[s]} {s.lower()}" for s in ("UP", "DOWN", "DRAIN", "PENDING")
                        if counts.get(s))
    if flapping:
        summary += f"; {flapping} flapping"
    title = f"kachecks agent on {host}: {len(checks)} checks, {counts.get('UP', 0)} up"
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_ESCAPE(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>kachecks agent on {_ESCAPE(host)}</h1>",
        f'<p class="summary">{len(checks)} checks: {summary or "none"}. pid'
        f" {_ESCAPE(str(document.get('pid')))}, started {_when(document.get('started'), now)};"
        f" this status as of {_stamp(document.get('written') or now)}; refreshes every"
        f" {REFRESH} s. Configuration: {_ESCAPE(str(document.get('config')))}.</p>",
    ]
    if document.get("state") == "stopped":
        parts.append('<p class="problem">The agent has stopped: every track file was set to'
                     " 0.</p>")
    parts.append(
        '<table id="checks"><thead><tr><th>Check</th><th>State</th><th>Cause</th>'
        "<th>Reason</th><th>Latency</th><th>Last 60 runs</th><th>Last change</th>"
        "<th>Downtime</th><th>Downs</th><th>Flapping</th></tr></thead><tbody>")
    parts += [_row(c, now) for c in checks]
    parts.append("</tbody></table>")
    parts += _pair(document.get("vrrp"), now)
    parts.append('<footer>Also here: <a href="status.json">status.json</a> (this page as'
                 ' data), <a href="metrics">metrics</a> (Prometheus).</footer></body></html>\n')
    return "".join(parts).encode("utf-8")


def _row(c, now):
    name = _ESCAPE(str(c.get("name")))
    state, label, css = state_label(c)
    cause = c.get("cause")
    meaning = MEANINGS.get(cause, "")
    cause_cell = (f'<abbr title="{_ESCAPE(meaning)}">{_ESCAPE(cause)}</abbr>' if cause
                  else "-")
    error = c.get("error")
    reason = _ESCAPE(str(c.get("reason") or "-"))
    if error:
        reason += f'<br><span class="problem">track file: {_ESCAPE(str(error))}</span>'
    latency = c.get("latency")
    since = c.get("since")
    flap = ""
    if c.get("flapping"):
        flap = f'<td class="flapping">FLAPPING {c.get("state_change", 0):.0f} %</td>'
    else:
        flap = f'<td class="num">{c.get("state_change", 0) or 0:.0f} %</td>'
    return (f'<tr id="check-{name}"><td>{name}<br><small>{_ESCAPE(str(c.get("target")))}'
            f'</small></td><td class="state {css}">{_ESCAPE(label)}</td><td>{cause_cell}</td>'
            f'<td>{reason}</td><td class="num">{_ms(latency)}</td>'
            f"<td>{sparkline(c.get('latencies') or '')}</td>"
            f'<td class="num">{_when(since, now) if since else "-"}</td>'
            f'<td class="num">{_duration(c.get("downtime") or 0)}</td>'
            f'<td class="num">{_ESCAPE(str(c.get("downs", 0)))}</td>{flap}</tr>')


def sparkline(latencies):
    """An inline SVG polyline of a ring (microseconds separated by spaces), scaled to its
    largest value by the SVG itself (the ring's own numbers are the points: no arithmetic
    per point here), the range in its title; "" when there is nothing to draw."""
    texts = latencies.split()[-RING:]
    try:
        values = list(map(int, texts))
    except ValueError:
        return ""
    if not values:
        return ""
    top, low = max(values) or 1, min(values)
    points = " ".join(map(str.__add__, _XS, texts))
    scale = (SPARK_HEIGHT - 2) / top
    span = f"{low / 1000:.1f} to {top / 1000:.1f} ms"
    return (f'<svg class="spark" width="{SPARK_WIDTH}" height="{SPARK_HEIGHT}" role="img"'
            f' aria-label="last {len(values)} latencies: {span}"><title>last {len(values)}'
            f' runs: {span}</title><polyline vector-effect="non-scaling-stroke"'
            f' transform="translate(0 {SPARK_HEIGHT - 1}) scale(1 -{scale:.6g})"'
            f' points="{points}"/></svg>')


def _pair(pair, now):
    """One block per watched VRRP instance (the document's ``vrrp`` member)."""
    if not isinstance(pair, dict):
        return []
    conf = _ESCAPE(str(pair.get("keepalived_conf")))
    parts = [f'<h2 id="vrrp">VRRP <small>({conf})</small></h2>']
    if not pair.get("watching"):
        why = _ESCAPE(str(pair.get("error") or "starting"))
        return parts + [f'<p class="problem">Not watching: {why}</p>']
    for i in pair.get("instances", ()):
        if not isinstance(i, dict):
            continue
        label = _ESCAPE(str(i.get("label") or i.get("name")))
        addresses = ", ".join(_ESCAPE(str(a)) for a in i.get("addresses", ()))
        if i.get("holder"):
            held = "held here" + (f" since {_when(i['held_since'], now)}"
                                  if i.get("held_since") else "")
        else:
            held = "not held here"
        problems = [p for p in i.get("problems", ()) if isinstance(p, dict)]
        css = "DOWN" if problems else "UP"
        parts.append(f'<div class="instance" id="vrrp-{_ESCAPE(str(i.get("name")))}">'
                     f'<h3><span class="{css}">{label}</span></h3>'
                     f"<p>{_ESCAPE(held)} ({addresses}); {_ESCAPE(str(i.get('advertising', 0)))}"
                     " advertising now.</p>")
        for p in problems:
            since = p.get("since")
            parts.append(f'<p class="problem">{_ESCAPE(str(p.get("code")))}'
                         f' ({_ESCAPE(str(p.get("severity")))})'
                         f"{' since ' + _when(since, now) if since else ''}:"
                         f" {_ESCAPE(str(p.get('text')))}</p>")
        sources = [s for s in i.get("sources", ()) if isinstance(s, dict)]
        if sources:
            parts.append("<table><thead><tr><th>Source</th><th>Priority</th><th>Advertising"
                         "</th><th>Adverts</th><th>Last seen</th></tr></thead><tbody>")
            for s in sources:
                who = _ESCAPE(str(s.get("address"))) + (" (this director)" if s.get("own")
                                                        else "")
                last = s.get("last")
                parts.append(f"<tr><td>{who}</td><td class=\"num\">"
                             f"{_ESCAPE(str(s.get('priority')))}</td>"
                             f"<td>{'yes' if s.get('alive') else 'no'}</td>"
                             f"<td class=\"num\">{_ESCAPE(str(s.get('adverts')))}</td>"
                             f"<td class=\"num\">{_when(last, now) if last else '-'}</td></tr>")
            parts.append("</tbody></table>")
        parts.append("</div>")
    for f in pair.get("foreign", ()):
        if isinstance(f, dict) and f.get("problem"):
            heard = ", ".join(f"{_ESCAPE(str(s.get('address')))} prio"
                              f" {_ESCAPE(str(s.get('priority')))}"
                              for s in f.get("sources", ()) if isinstance(s, dict))
            parts.append(f'<p class="problem">foreign router: vrid'
                         f" {_ESCAPE(str(f.get('vrid')))} on {_ESCAPE(str(f.get('interface')))}"
                         f" ({heard})</p>")
    return parts


def _ms(seconds):
    return "-" if not isinstance(seconds, (int, float)) else f"{seconds * 1000:.1f} ms"


def _stamp(when):
    return _wall(when) if isinstance(when, (int, float)) else "-"


def _when(when, now):
    """``2026-11-26 09:12:03 (4m10s ago)``."""
    if not isinstance(when, (int, float)):
        return "-"
    return f"{_stamp(when)} ({_duration(now - when)} ago)"


class Rendered:
    """A route of the endpoint (kachecks.agent.endpoint): ``make(snapshot)``'s bytes for
    ``source()``, the agent's last snapshot, made when asked and kept for that snapshot
    (one render a second at most, however many clients), never busier than ``SHARE`` of
    a core (a render is followed by ``1 / SHARE - 1`` times its duration on the same
    bytes), as ``/metrics`` (kachecks.agent.metrics.Page)."""

    SHARE = 0.1

    def __init__(self, source, make, content_type, clock=time.monotonic):
        self.source = source
        self.make = make
        self.content_type = content_type
        self.clock = clock
        self._rendered = None  # (snapshot, body)
        self._next = 0.0

    def __call__(self):
        snapshot = self.source()
        rendered = self._rendered
        if rendered is None or (rendered[0] is not snapshot and self.clock() >= self._next):
            started = self.clock()
            self._rendered = rendered = (snapshot, self.make(snapshot))
            finished = self.clock()
            self._next = finished + (finished - started) * (1 / self.SHARE - 1)
        return self.content_type, rendered[1]


def routes(source, document):
    """The status page's routes: ``/`` (this page) and ``/status.json`` (the status
    document as is) of ``document(snapshot)`` for the last snapshot ``source()``."""
    return {
        "/": Rendered(source, lambda snapshot: render(document(snapshot)),
                      "text/html; charset=utf-8"),
        "/status.json": Rendered(source, lambda snapshot: json.dumps(
            document(snapshot), separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
            "application/json"),
    }
