"""What happened during a lab run, in order, from every source the lab can observe.

A background thread polls the sources (keepalived logs, the syslog datagrams our
checks send, the SMTP sink's mailbox) and stamps each new line with the time it was
seen, so the lab's own actions and the system's reactions land on one clock.
"""

import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# keepalived -l prefixes every line with "Thu Nov 26 04:16:58 2026: "
KEEPALIVED_STAMP = re.compile(r"^\w{3} \w{3} +\d+ [\d:]{8} \d{4}: ")
KEEPALIVED_INTERESTING = re.compile(
    r"Entering \w+ STATE|VRRP_Script\(|Changing effective priority|"
    r"SECURITY|Unsafe permissions|disabling|Stopped Keepalived|Starting VRRP|"
    r"not executable|Cannot find|WARNING - script"
)
# RFC 3164: "<29>Nov 26 04:18:50 host ident[pid]: message" (host optional)
SYSLOG_LINE = re.compile(
    r"^<\d+>\w{3} +\d+ [\d:]{8} (?:[^\s:\[]+ )?(?P<ident>[^:\[ ]+)(?:\[\d+\])?: "
)


@dataclass(frozen=True)
class Event:
    t: float  # seconds since the lab started
    host: str
    kind: str  # lab, vrrp, script, check, agent, notify, mail, client, config
    text: str

    def __str__(self):
        return f"{self.t:7.1f}s  {self.host:<7} {self.kind:<7} {self.text}"


class Timeline:
    """Thread-safe, ordered list of events; ``echo`` prints them as they arrive."""

    def __init__(self, echo=None):
        self.t0 = time.monotonic()
        self.events = []
        self.echo = echo
        self.lock = threading.Lock()

    def add(self, host, kind, text):
        event = Event(round(time.monotonic() - self.t0, 1), host, kind, text)
        with self.lock:
            self.events.append(event)
        if self.echo:
            self.echo(str(event))
        return event

    def of(self, kind=None, host=None):
        with self.lock:
            return [e for e in self.events
                    if (kind is None or e.kind == kind) and (host is None or e.host == host)]

    def wait(self, predicate, timeout, what):
        """Wait until some event satisfies ``predicate``; return it or raise TimeoutError."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for e in self.of():
                if predicate(e):
                    return e
            time.sleep(0.05)
        raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


class LogSource:
    """New interesting lines of a keepalived log (the file may be appended by restarts)."""

    rank = 0

    def __init__(self, host, path):
        self.host, self.path, self.offset, self.partial = host, Path(path), 0, b""

    def poll(self, timeline):
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        for raw in lines:
            line = KEEPALIVED_STAMP.sub("", raw.decode(errors="replace")).strip()
            if KEEPALIVED_INTERESTING.search(line):
                kind = "vrrp" if "STATE" in line or "priority" in line else "script"
                timeline.add(self.host, kind, line)


class SyslogSource:
    """Datagrams our executables send to $KACHECKS_SYSLOG_SOCKET on one host."""

    rank = 1

    def __init__(self, host, path):
        self.host = host
        self.path = Path(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.path.chmod(0o666)
        self.sock.setblocking(False)

    def poll(self, timeline):
        while True:
            try:
                raw = self.sock.recv(65536).decode(errors="replace").rstrip("\n")
            except BlockingIOError:
                return
            m = SYSLOG_LINE.match(raw)
            ident = m["ident"] if m else ""
            text = f"{ident}: {raw[m.end():]}" if m else raw
            kind = "notify" if "notify" in ident else "agent" if ident == "kachecks-agent" \
                else "check"
            timeline.add(self.host, kind, text)

    def close(self):
        self.sock.close()


class MailboxSource:
    """Subjects of the messages the SMTP sink stored in an mbox file."""

    rank = 2

    def __init__(self, host, path):
        self.host, self.path = host, Path(path)
        self.messages = []
        self.lock = threading.Lock()  # polled by the watcher and by callers waiting for mail

    def poll(self, timeline):
        from harness.peers.smtp import mbox_messages, subject

        with self.lock:
            messages = mbox_messages(self.path)
            if messages is None:  # half-written by the sink: read again next time
                return
            for msg in messages[len(self.messages):]:
                self.messages.append(msg)
                timeline.add(self.host, "mail", f"Subject: {subject(msg) or '(none)'}")

    def subjects(self):
        from harness.peers.smtp import subject

        with self.lock:
            return [subject(m) for m in self.messages]


class Watcher:
    """Polls every source into the timeline from a daemon thread until stopped."""

    def __init__(self, timeline, interval=0.1):
        self.timeline = timeline
        self.interval = interval
        self.sources = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="lab-watcher", daemon=True)

    def add(self, source):
        self.sources.append(source)
        return source

    def start(self):
        self.thread.start()
        return self

    def poll(self):
        # causes before effects within one poll: logs, then syslog, then the mailbox
        for source in sorted(self.sources, key=lambda s: s.rank):
            source.poll(self.timeline)

    def _run(self):
        while not self.stopping.wait(self.interval):
            self.poll()

    def stop(self):
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(5)
        self.poll()  # what arrived last
        for source in self.sources:
            if hasattr(source, "close"):
                source.close()
