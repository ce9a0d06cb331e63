"""``kachecks agent status``: what the running agent last published, read from a file.

The agent rewrites a small JSON file beside its track files (at most once a
second, and on every stop), so status needs no connection to the agent: it
is a read of a file whose mode decides who may see it, and a dead agent's
last words stay readable. The file also lists every track file the agent
wrote, so ``kachecks agent zero`` (systemd's ExecStopPost) can set them all to
0 even when kachecks.toml was edited after the agent loaded it.
"""

import json
import time

from kachecks import files
from kachecks.agent import trackfile

VERSION = 1
MAX_SIZE = 16 << 20  # bytes: 10,000 checks take about 4 MB


def write(path, document):
    """Atomically replace the status file (0644, like the track files)."""
    data = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    files.replace(path, data, trackfile.MODE)


def read(path):
    """The status document; files.UnusableFile (missing, unreadable: ``reason`` says which)
    or ValueError (not a status document)."""
    data = files.read_regular(path, "agent status file", MAX_SIZE, follow=False)
    try:
        document = json.loads(data)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if not isinstance(document, dict) or document.get("version") != VERSION:
        raise ValueError(f"{path}: not a kachecks agent status file")
    return document


def agent_alive(document):
    """True when the pid that wrote ``document`` is still a kachecks-agent process."""
    pid = document.get("pid")
    if document.get("state") == "stopped" or not isinstance(pid, int):
        return False
    try:
        with open(f"/proc/{pid}/comm", "rb") as handle:
            return handle.read().strip() == b"kachecks-agent"
    except OSError:
        return False


def render(document, now=None, alive=True):
    """The lines ``kachecks agent status`` prints: a header, then one per check."""
    now = time.time() if now is None else now
    checks = document.get("checks", [])
    up = sum(1 for c in checks if c.get("up"))
    written = document.get("written") or now
    if alive:
        head = f"kachecks agent (pid {document.get('pid')}): {len(checks)} checks, {up} up"
    else:
        head = (f"kachecks agent is not running; last status from pid {document.get('pid')},"
                f" {_ago(now - written)} ago ({document.get('state', 'unknown')})")
    lines = [head]
    rows = [("CHECK", "STATE", "VALUE", "SINCE", "LATENCY", "LAST RESULT")]
    stopped = document.get("state") == "stopped"  # files zeroed by the agent or `zero`
    for c in checks:
        since = c.get("since")
        rows.append((
            c.get("name", "?"), "STOPPED" if stopped else c.get("state") or "PENDING",
            str(c.get("value", 0)),
            f"{_stamp(since)} ({_ago(now - since)})" if since else "-",
            f"{c['latency'] * 1000:.1f} ms" if c.get("latency") is not None else "-",
            _last(c),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  "
                     + row[5])
    return [line.rstrip() for line in lines]


def _last(check):
    text = check.get("reason") or "-"
    if check.get("error"):
        text = f"{text} [track file: {check['error']}]"
    return text


def _stamp(when):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


def _ago(seconds):
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 172800:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
