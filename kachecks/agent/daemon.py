"""The resident agent: a Schedule (kachecks.agent.schedule) driven by one event loop.

The schedule decides; this module does the I/O it is handed. The main thread
sleeps in the event loop (kachecks.agent.loop: one epoll) until a probe's socket
is ready or the schedule's next wake-up is due (signals arrive through the
loop's wake-up pipe, ``signal.set_wakeup_fd``), then ticks the schedule, which
hands each due run to the executor (kachecks.agent.runner). HTTP and TCP probes
(TLS over either) run as steps on that same loop: the result is judged, counted
(rise/fall, counters) and written to its track file (``TrackFiles``, the
publisher) in the loop's thread, no hand-over and no wake-up of anything. A probe
that blocks in a library (LDAP) runs in a thread of its own and answers the
schedule from there, under the one lock (``stats.LOCK``) the main thread, the
status document and the metrics endpoint also take; only a change of state
wakes the main thread, to refresh the status document and systemd's STATUS at
once. A run that hangs only ever holds its own socket or thread, up to its
deadline.

The status document is rewritten only when something in it changed, at most once
a second (once every ten seconds with 10,000 checks: ``STATUS_CHECKS_PER_SECOND``),
and incrementally: each check's entry is kept rendered and redone only when a
result of that check came in (kachecks.agent.status.Renderer).

Fail-closed: SIGTERM/SIGINT write 0 to every track file before exiting 0;
SIGHUP reloads (a broken file is logged and the running set kept; a check whose
name and file stay keeps its state, see ``schedule.diff``).
"""

import gc
import os
import random
import signal
import sys
import time

from kachecks import syslogger
from kachecks.agent import config as configuration
from kachecks.agent import schedule as schedules
from kachecks.agent import stats, status, trackfile
from kachecks.agent.loop import Loop
from kachecks.agent.runner import Runner
from kachecks.status import ExitCode

STATUS_PERIOD = 1.0  # seconds at least between status-document rewrites
# ... and at least a second per this many checks: a rewrite costs what its size does
# (10,000 checks: 3 MB, 3 ms), and an agent whose checks are quiet must stay cheap.
STATUS_CHECKS_PER_SECOND = 1000
IDENT = "kachecks-agent"
PROCESS_NAME = b"kachecks-agent"  # what keepalived's vrrp_track_process looks for


def set_process_name(name=PROCESS_NAME):
    """prctl(PR_SET_NAME): /proc/PID/comm becomes ``name`` (keepalived sees the change)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(15, name, 0, 0, 0) != 0:  # 15 = PR_SET_NAME
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NAME) failed")


class Log:
    """Syslog (ident kachecks-agent), and stderr too when it is a terminal."""

    def __init__(self, echo=None):
        self.echo = sys.stderr.isatty() if echo is None else echo

    def __call__(self, message, priority=syslogger.LOG_INFO):
        syslogger.send(IDENT, message, priority)
        if self.echo:
            sys.stderr.write(f"kachecks agent: {message}\n")
            sys.stderr.flush()


class TrackFiles:
    """The publisher: a check's value into its track file; remembers every file written
    (``zero`` covers them even after a reload dropped their check).

    A result whose value the file holds already (``trackfile.holds``: read, not
    assumed) is not written again: three calls instead of a temporary file and a
    rename, the file the same.
    """

    def __init__(self):
        self.written = set()

    def __call__(self, path, value):
        """Make ``path`` hold ``value``: None, or why it could not."""
        if path in self.written and trackfile.holds(path, value):
            return None
        try:
            trackfile.write(path, value)
        except OSError as exc:
            return exc.strerror or str(exc)
        self.written.add(path)
        return None

    @staticmethod
    def zero(paths):
        return trackfile.zero(paths)


def settle_memory():
    """Everything loaded and configured so far lives as long as the configuration: move it
    out of the garbage collector's sight (gc.freeze), so that its collections, paid for
    by every run's short-lived objects, never walk thousands of checks' state again."""
    gc.collect()
    gc.freeze()


def serve_metrics(address, source, log):
    """The Prometheus endpoint on ``address`` reading ``source()``, or None (said why)."""
    from kachecks.agent import metrics

    if not metrics.available():
        log(f"no metrics endpoint: {metrics.MISSING} (set [agent] metrics = \"\" to silence"
            " this)", syslogger.LOG_WARNING)
        return None
    try:
        return metrics.Endpoint(address, source)
    except OSError as exc:
        host, port = address
        log(f"no metrics endpoint: cannot listen on {host}:{port}: {exc.strerror or exc}",
            syslogger.LOG_ERR)
        return None


class Agent:
    """The daemon: ``run()`` until SIGTERM/SIGINT. Every piece of I/O is handed in or made
    here: ``log`` (syslog), ``notifier`` (systemd), ``rng`` and ``clock`` (the schedule's),
    ``loop`` (kachecks.agent.loop), ``runner`` (the executor, on that loop, answering
    ``answer``), ``tracks`` (the publisher), ``status_writer(path, data)`` (the status
    document's bytes), ``serve_metrics(address, source, log)``."""

    def __init__(self, cfg, log=None, notifier=None, rng=None, clock=time.monotonic,
                 loop=None, runner=None, tracks=None, status_writer=status.write_bytes,
                 serve_metrics=serve_metrics):
        self.cfg = cfg
        self.log = log or Log()
        self.notifier = notifier
        self.rng = rng or random.Random()
        self.clock = clock
        self.loop = loop or Loop()
        self.runner = runner or Runner(self.loop, clock, self.answer)
        self.tracks = tracks or TrackFiles()
        self.status_writer = status_writer
        self.serve_metrics = serve_metrics
        self.schedule = None  # made when run() starts, after the track directory is checked
        self.signals = []
        self.renderer = status.Renderer()
        self.endpoint = None
        self.started = time.time()
        self.status_due = 0.0  # the next rewrite, not before
        self.status_dirty = True  # something in the document changed
        self.status_error = None
        self.watchdog_due = 0.0

    # ------------------------------------------------------------------ lifecycle

    def run(self):
        """Run until SIGTERM/SIGINT; return ExitCode.OK (files zeroed) or raise on a bug."""
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        old_wakeup = signal.set_wakeup_fd(self.loop.wake_fd, warn_on_full_buffer=False)
        try:
            trackfile.prepare(self.cfg.track_dir, self.cfg.files)
            self._start_metrics()
            with stats.LOCK:
                self.schedule = schedules.Schedule(
                    self.cfg.checks, self.clock(), rng=self.rng, executor=self.runner,
                    publisher=self.tracks, wallclock=time.time)
            settle_memory()
            count = len(self.cfg.checks)
            self.log(f"started: {count} check{'s' * (count != 1)} from {self.cfg.path},"
                     f" track files in {self.cfg.track_dir}", syslogger.LOG_NOTICE)
            self._notify("READY=1")
            self._loop()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._shutdown()
        return ExitCode.OK

    def _on_signal(self, signum, frame):
        self.signals.append(signum)

    def _loop(self):
        schedule, runner = self.schedule, self.runner
        while True:
            now = self.clock()
            with stats.LOCK:
                wake = schedule.next_wake()
            probes = runner.next_wake()
            wake = min(now + 60 if wake is None else wake,
                       now + 60 if probes is None else probes,
                       self.status_due if self.status_dirty else now + 60,
                       self.watchdog_due if self._watchdog() else now + 60)
            self.loop.poll(wake - now if wake > now else 0)  # probes go on in here
            while self.signals:
                signum = self.signals.pop(0)
                if signum == signal.SIGHUP:
                    self.reload()
                else:
                    name = "SIGTERM" if signum == signal.SIGTERM else "SIGINT"
                    self.log(f"{name}: stopping; every track file set to 0", syslogger.LOG_NOTICE)
                    return
            now = self.clock()
            with stats.LOCK:
                outcome = schedule.tick(now)
                self.status_dirty |= outcome.counted
            self._say(outcome.lines)
            runner.step(now)
            self._housekeeping(now)

    def _shutdown(self):
        """Fail closed: 0 in every file this agent wrote or manages, final status."""
        self._notify("STOPPING=1")
        with stats.LOCK:  # a probe finishing now waits, then writes nothing
            files = self.schedule.files if self.schedule is not None else []
            failed = self.tracks.zero(sorted(self.tracks.written | set(files)))
            if self.schedule is not None:
                self.schedule.stop()
        for path, error in failed:
            self.log(f"could not set {path} to 0: {error}", syslogger.LOG_ERR)
        self._write_status(state="stopped")
        self._stop_metrics(wait=False)
        self.runner.close()
        self.loop.close()

    # ------------------------------------------------------------------ configuration

    def reload(self):
        """SIGHUP: the new configuration, or the old one kept with one log line."""
        self._notify("RELOADING=1")
        try:
            cfg = configuration.load(self.cfg.path)
            trackfile.prepare(cfg.track_dir, cfg.files)
        except (configuration.ConfigError, OSError) as exc:
            why = exc if isinstance(exc, configuration.ConfigError) else \
                f"cannot use {cfg.track_dir}: {exc.strerror or exc}"
            self.log(f"reload failed, running configuration kept: {why}", syslogger.LOG_ERR)
            self._notify("READY=1")
            return False
        with stats.LOCK:
            change = self.schedule.reload(cfg.checks, self.clock())
            # removed: nobody writes them any more; added: down until their first result,
            # whatever the file held (a file moved to where another check's was)
            failed = self.tracks.zero([spec.file for spec in (*change.removed, *change.added)])
        for path, error in failed:
            self.log(f"could not set {path} to 0: {error}", syslogger.LOG_ERR)
        metrics_moved = cfg.metrics != self.cfg.metrics
        self.cfg = cfg
        if metrics_moved:
            self._stop_metrics()
            self._start_metrics()
        self.status_dirty = True
        settle_memory()
        self.log(f"reloaded {cfg.path}: {len(change.added)} added, {len(change.changed)} changed"
                 f" (run at once, state kept), {len(change.removed)} removed (track files set"
                 f" to 0), {len(change.kept)} kept", syslogger.LOG_NOTICE)
        self._notify("READY=1")
        return True

    # ------------------------------------------------------------------ results

    def answer(self, run, result, started, finished):
        """A run's result, in the thread that ran it (the loop's, or a probe thread's):
        count it, say what changed."""
        with stats.LOCK:
            outcome = self.schedule.complete(run, result, started, finished)
            self.status_dirty |= outcome.counted
        self._say(outcome.lines)
        if outcome.changed:
            self.loop.wake()  # status document and systemd's STATUS now, not at the next run

    def _say(self, lines):
        for message, priority in lines:
            self.log(message, priority)

    # ------------------------------------------------------------------ status, systemd

    def summary(self):
        with stats.LOCK:
            checks = self.schedule.checks if self.schedule is not None else ()
            up = sum(1 for check in checks if check.health.up)
        return f"{len(checks)} checks, {up} up"

    def _housekeeping(self, now):
        if self.status_dirty and now >= self.status_due:
            self._write_status()
            self.status_due = now + max(STATUS_PERIOD,
                                        len(self.schedule.checks) / STATUS_CHECKS_PER_SECOND)
            self._notify_status()
        if self._watchdog() and now >= self.watchdog_due:
            self._notify("WATCHDOG=1")
            self.watchdog_due = now + self.notifier.watchdog

    def _watchdog(self):
        return self.notifier is not None and self.notifier.watchdog is not None

    def _notify(self, *lines):
        if self.notifier is not None:
            self.notifier.send(*lines)
            if lines == ("READY=1",):
                self._notify_status()

    def _notify_status(self):
        if self.notifier is not None:
            self.notifier.status(self.summary())

    def document(self, state="running"):
        """The status document (schema: kachecks.agent.status) as of now, rendered (bytes)."""
        with stats.LOCK:
            schedule = self.schedule
            checks = schedule.checks if schedule is not None else ()
            changed = schedule.take_changed() if schedule is not None else ()
            generation = schedule.generation if schedule is not None else 0
            written = self.tracks.written
            # Every file written is a configured check's, or one a reload dropped (written
            # before it): the list changes with the configuration only.
            return self.renderer.render(
                state=state, pid=os.getpid(), started=self.started, written=time.time(),
                config=self.cfg.path, track_dir=self.cfg.track_dir, checks=checks,
                changed=changed, files=(generation, lambda: written | {
                    check.spec.file for check in checks}))

    def _write_status(self, state="running"):
        self.status_dirty = False
        try:
            self.status_writer(self.cfg.status_file, self.document(state))
        except OSError as exc:
            error = f"cannot write {self.cfg.status_file}: {exc.strerror or exc}"
            if error != self.status_error:  # once, not every second
                self.log(error, syslogger.LOG_ERR)
            self.status_error = error
        else:
            self.status_error = None

    # ------------------------------------------------------------------ metrics

    def _metric_source(self):
        """For the endpoint's collector, which holds stats.LOCK while it reads."""
        if self.schedule is None:
            return (), stats.Histogram(stats.LATENESS_BUCKETS)
        return self.schedule.checks, self.schedule.lateness

    def _start_metrics(self):
        if self.cfg.metrics is not None:
            self.endpoint = self.serve_metrics(self.cfg.metrics, self._metric_source, self.log)

    def _stop_metrics(self, wait=True):
        if self.endpoint is not None:
            self.endpoint.close(wait)
            self.endpoint = None
