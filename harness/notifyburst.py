"""Bursts of `kachecks notify` processes at once, against a real SMTP relay, under CPU load.

keepalived forks one notify per event; a sync group or a whole director
switching at once forks hundreds. Each burst starts ``count`` notify processes
at the same moment (each its own instance), waits for them to exit, then for
the relay to hold ``count`` messages within ``bound`` seconds, and says what
it saw: messages, distinct Message-IDs, DATA attempts, what is left in the
spool and where, whether a deliverer still holds the lock, and the
deliverers' warnings. The notify processes are forked by a shell loop, as
fast as keepalived forks them, so several start in one clock tick. Not a CI
test (minutes of CPU): the figures for a report, repeatable::

    python -m harness.notifyburst --bursts 10 --count 200 --load 2
    python -m harness.redteam --only notify-burst      # the same, as a red-team trial
"""

import argparse
import collections
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import signalled
from harness.config import toml_text
from harness.peers import cli
from harness.peers.smtp import SmtpSink
from harness.peers.syslog import SyslogSink

QUEUES = ("incoming", "mail", "webhook", "expired")
TROUBLE = ("failed", "cannot", "set aside", "expired", "ignoring", "gave up", "left")


@contextlib.contextmanager
def cpu_load(workers, seconds):
    """``workers`` processes spinning on the CPU, each ending by itself after ``seconds``
    at most, and killed (by pid) when the block ends."""
    spin = f"import time\nend = time.monotonic() + {float(seconds)}\nwhile time.monotonic() < end: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", spin], stdin=subprocess.DEVNULL)
                for _ in range(workers)]
    try:
        yield spinners
    finally:
        for proc in spinners:
            signalled.stop(proc, signal.SIGKILL, 10, what="CPU spinner")


class Outcome:
    """What one burst did."""

    def __init__(self, count, bound):
        self.count, self.bound = count, bound
        self.delivered = self.late = self.distinct = self.attempts = 0
        self.events = self.batched = self.same_ns = 0  # event ids in the messages; mails with several
        self.notify_s = self.all_s = None
        self.failed_notify = 0
        self.left = {}
        self.holder = None
        self.trouble = []

    @property
    def ok(self):
        return (self.delivered == self.count and self.distinct == self.count and not self.late
                and not self.failed_notify and not any(self.left.values()))

    def row(self, index):
        left = ", ".join(f"{q} {n}" for q, n in self.left.items() if n) or "-"
        done = f"{self.all_s:6.1f}" if self.delivered >= self.count else "     -"
        return (f"{index:>5}  {self.delivered:>3}/{self.count:<3}  {self.distinct:>4}  {self.attempts:>4}"
                f"  {self.events:>6}  {self.batched:>7}  {self.same_ns:>7}"
                f"  {self.notify_s:7.1f}  {done}  {'yes' if self.ok else 'NO':>3}  {left}")


HEADER = ("burst  delivered  msgids  DATA  events  batched  same-ns  notify s  all s   ok  left in spool\n"
          "-----  ---------  ------  ----  ------  -------  -------  --------  ------  ---  -------------")
LEGEND = ("delivered: messages at the relay within the bound; events: distinct event ids in them;\n"
          "batched: messages carrying more than one event; same-ns: events sharing their time to the\n"
          "nanosecond with another; notify s: until the last notify exited; all s: until the last message")


def _spool_counts(spool_dir):
    counts = {}
    for queue in QUEUES:
        path = Path(spool_dir) / queue
        counts[queue] = len([n for n in os.listdir(path) if n.endswith(".json") and not n.startswith(".")]) \
            if path.is_dir() else 0
    return counts


def _holder(spool_dir):
    from kachecks.notify import spool as store

    try:
        opened = store.Spool.existing(str(spool_dir))
        if opened is None:
            return None
        with opened:
            return opened.lock().holder()
    except store.SpoolError:
        return None


def burst(count=200, bound=120.0, scratch=None, config=None):
    """One burst of ``count`` notify processes; an Outcome.

    ``config`` adds to (or overrides) the sections of kachecks.toml.
    """
    outcome = Outcome(count, bound)
    work = Path(tempfile.mkdtemp(prefix="burst-", dir=scratch))
    lines, done = [], threading.Event()
    sink = SyslogSink(work / "log")

    def read_log():
        while not done.is_set():
            lines.extend(sink.messages())
            time.sleep(0.005)

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    try:
        with SmtpSink() as relay:
            sections = {"smtp": {"host": "127.0.0.1", "port": relay.port, "security": "none", "timeout": 5,
                                 "helo": "lvs1.example.org"},
                        "mail": {"to": ["admin@lvs.example.org"], "from": "kachecks@lvs1.example.org"},
                        "spool": {"dir": str(work / "spool"), "batch_window": 0, "retry_for": "20s"}}
            for section, values in (config or {}).items():
                sections.setdefault(section, {}).update(values)
            (work / "kachecks.toml").write_text(toml_text(sections))
            env = dict(os.environ, KACHECKS_CONFIG=str(work / "kachecks.toml"),
                       KACHECKS_SYSLOG_SOCKET=sink.path)
            started = time.monotonic()
            # Forked as fast as keepalived forks them (a shell loop, not one Popen after the
            # other): several per clock tick, which is what stamps two events the same ns.
            script = ('for i in $(seq 0 $((N - 1))); do '
                      '( "$K" notify INSTANCE "VI_$i" MASTER $((i % 255 + 1)) >/dev/null 2>&1 '
                      '|| echo "VI_$i failed" ) & done; wait')
            env.update(K=cli.command("kachecks")[0], N=str(count))
            try:
                shell = subprocess.run(["sh", "-c", script], env=env, stdin=subprocess.DEVNULL,
                                       capture_output=True, text=True, timeout=bound)
                outcome.failed_notify = shell.stdout.count(" failed")
            except subprocess.TimeoutExpired:
                outcome.failed_notify = count  # unknown which: the burst failed
            outcome.notify_s = time.monotonic() - started
            with contextlib.suppress(AssertionError):
                relay.wait_for(count, timeout=bound)
            outcome.all_s = time.monotonic() - started
            outcome.delivered = len(relay.messages)  # within the bound
            outcome.holder = _holder(work / "spool")
            if outcome.holder is None:  # settled: nobody delivers any more
                outcome.left = _spool_counts(work / "spool")
            else:  # someone still delivers: let them finish before the relay goes
                end = time.monotonic() + 30
                while _holder(work / "spool") and time.monotonic() < end:
                    time.sleep(0.1)
                outcome.left = _spool_counts(work / "spool")
            outcome.late = len(relay.messages) - outcome.delivered
            outcome.distinct = len({m["Message-ID"] for m in relay.messages})
            ids = [i for m in relay.messages for i in str(m["X-Kachecks-Events"] or "").split()]
            outcome.events = len(set(ids))
            outcome.batched = sum(len(str(m["X-Kachecks-Events"] or "").split()) > 1 for m in relay.messages)
            times = collections.Counter(i.split("-", 1)[0] for i in ids)
            outcome.same_ns = sum(n for n in times.values() if n > 1)
            outcome.attempts = relay.attempts
    finally:
        done.set()
        reader.join()
        lines.extend(sink.messages())
        sink.close()
    outcome.trouble = [line for line in lines if any(word in line for word in TROUBLE)]
    if outcome.ok:
        shutil.rmtree(work, ignore_errors=True)
    else:
        outcome.kept = work
    return outcome


def trial(bursts=10, count=200, bound=120.0, load=None, config=None, out=print):
    """``bursts`` bursts in a row under ``load`` spinning processes (default: one per CPU);
    prints a table and returns the Outcomes."""
    load = os.cpu_count() if load is None else load
    out(f"notify-burst: {bursts} burst(s) of {count} `kachecks notify` at once, bound {bound:g} s,"
        f" {load} CPU spinner(s), {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}")
    out(LEGEND)
    out(HEADER)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="kachecks-burst-") as scratch:
        keep = Path(tempfile.mkdtemp(prefix="kachecks-burst-kept-"))
        with cpu_load(load, bursts * (3 * bound + 30)):
            for index in range(1, bursts + 1):
                outcome = burst(count, bound, scratch, config)
                outcomes.append(outcome)
                out(outcome.row(index))
                if not outcome.ok:
                    target = keep / f"burst-{index}"
                    shutil.copytree(outcome.kept, target, symlinks=True,
                                    ignore=shutil.ignore_patterns("log"))  # the syslog socket
                    out(f"       kept in {target}; deliverer holding the lock: {outcome.holder}")
                    for line in outcome.trouble[-20:]:
                        out(f"       log: {line}")
        if not os.listdir(keep):
            keep.rmdir()
    good = sum(o.ok for o in outcomes)
    after = sorted(o.all_s - o.notify_s for o in outcomes if o.delivered >= o.count)
    worst = f"; the last mail {after[len(after) // 2]:.1f} s (median), {after[-1]:.1f} s (worst) after " \
        f"the last notify exited (bound {bound:g} s)" if after else ""
    out(f"notify-burst: {good}/{len(outcomes)} bursts delivered {count}/{count} exactly once{worst}")
    return outcomes


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m harness.notifyburst",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=10)
    parser.add_argument("--count", type=int, default=200, help="notify processes per burst (200)")
    parser.add_argument("--bound", type=float, default=120.0,
                        help="seconds for a burst to be delivered once its notify processes"
                             " have exited, as in the test (120)")
    parser.add_argument("--load", type=int, default=None,
                        help="CPU spinners running meanwhile (default: one per CPU)")
    args = parser.parse_args(argv)
    outcomes = trial(args.bursts, args.count, args.bound, args.load)
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
