"""The resident agent: a Schedule (kachecks.agent.schedule) driven by signals, threads and files.

The schedule decides; this module does the I/O it is handed: the main thread
sleeps in ``select()`` on a wake-up pipe until the schedule's next wake-up
(signals arrive through the same pipe, ``signal.set_wakeup_fd``) and ticks it,
which hands each due run to the executor (``Probes``: a thread per run in
flight, kachecks.agent.pool). The probe thread then answers the schedule itself
— judge, rise/fall, track file (``TrackFiles``, the publisher), counters —
under one lock (``stats.LOCK``), which the main thread, the status document and
the metrics endpoint also take. A result costs no second hand-over and no
wake-up of the main thread (each one is a few syscalls: on a busy director that
was a third of the agent's CPU); only a change of state wakes it, to refresh the
status document and systemd's STATUS at once. A run that hangs only ever holds
its own thread.

Fail-closed: SIGTERM/SIGINT write 0 to every track file before exiting 0;
SIGHUP reloads (a broken file is logged and the running set kept; a check whose
name and file stay keeps its state, see ``schedule.diff``).

With a ``[vrrp]`` table the same loop also waits on the pair watch's sockets
(kachecks.agent.pair): it reads them when they are readable and ticks the
watch when it is due; a SIGHUP reads keepalived.conf again.
"""

import os
import random
import select
import signal
import sys
import time

from kachecks import syslogger
from kachecks.agent import config as configuration
from kachecks.agent import pair as pairs
from kachecks.agent import schedule as schedules
from kachecks.agent import stats, status, trackfile
from kachecks.agent.pool import Pool
from kachecks.checks import contract
from kachecks.checks.result import Result
from kachecks.status import ExitCode

STATUS_PERIOD = 1.0  # seconds between status-document rewrites while results come in
ALIVE_PERIOD = 5.0  # seconds between rewrites of the "agent running" file (config.ALIVE_FILE)
IDENT = "kachecks-agent"
PROCESS_NAME = b"kachecks-agent"  # what keepalived's vrrp_track_process looks for


def set_process_name(name=PROCESS_NAME):
    """prctl(PR_SET_NAME): /proc/PID/comm becomes ``name`` (keepalived sees the change)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(15, name, 0, 0, 0) != 0:  # 15 = PR_SET_NAME
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NAME) failed")


class Log:
    """Syslog (ident kachecks-agent), and stderr unless stderr is systemd's journal, which
    has the syslog line already (no line twice under the unit). A syslog that cannot be
    reached (no /dev/log in a container) is said once on stderr, and every line goes there
    until it is back: no change of state is ever lost silently."""

    def __init__(self, echo=None, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.echo = not journal(self.stream) if echo is None else echo
        self.syslog_error = None

    def __call__(self, message, priority=syslogger.LOG_INFO):
        error = syslogger.deliver(IDENT, message, priority)
        if error != self.syslog_error:
            if error is not None:
                self._write(f"syslog unreachable ({error}): logging to stderr only")
            else:
                self._write("syslog reachable again")
            self.syslog_error = error
        if self.echo or error is not None:
            self._write(message)

    def _write(self, line):
        try:
            self.stream.write(f"kachecks agent: {line}\n")
            self.stream.flush()
        except (OSError, ValueError, AttributeError):
            pass  # stderr closed: syslog is all there is


def journal(stream):
    """True when ``stream`` is systemd's journal: $JOURNAL_STREAM names its device and inode
    (systemd.exec(5)), so a line on it would be the syslog line twice."""
    expected = os.environ.get("JOURNAL_STREAM")
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return bool(expected) and expected == f"{st.st_dev}:{st.st_ino}"


class Probes:
    """The run executor: each run in a pool thread, start to finish, its result handed to
    ``answer(run, result, started, finished)`` from that thread."""

    def __init__(self, clock, answer):
        self.clock = clock
        self.answer = answer
        self.pool = Pool()

    def submit(self, run):
        self.pool.submit(self._probe, run)

    def _probe(self, run):
        started = self.clock()
        try:
            result = contract.evaluate(run.spec.check, run.spec.target)
        except BaseException as exc:  # noqa: BLE001 - never leave the run unanswered
            result = Result(False, reason=f"internal error: {type(exc).__name__}: {exc}")
        self.answer(run, result, started, self.clock())

    def close(self):
        self.pool.close()


class TrackFiles:
    """The publisher: a check's value into its track file; remembers every file written
    (``zero`` covers them even after a reload dropped their check)."""

    def __init__(self):
        self.written = set()

    def __call__(self, path, value):
        """Write ``value`` to ``path``: None, or why it could not."""
        try:
            trackfile.write(path, value)
        except OSError as exc:
            return exc.strerror or str(exc)
        self.written.add(path)
        return None

    @staticmethod
    def zero(paths):
        return trackfile.zero(paths)


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
    ``executor`` (made from ``answer`` when None), ``tracks`` (the publisher),
    ``status_writer(path, document)``, ``serve_metrics(address, source, log)``,
    ``post(event)`` (the [vrrp] watch's notifications: pair.Poster, the notify spool)."""

    def __init__(self, cfg, log=None, notifier=None, rng=None, clock=time.monotonic,
                 executor=None, tracks=None, status_writer=status.write,
                 serve_metrics=serve_metrics, post=None):
        self.cfg = cfg
        self.log = log or Log()
        self.notifier = notifier
        self.rng = rng or random.Random()
        self.clock = clock
        self.executor = executor or Probes(clock, self.answer)
        self.tracks = tracks or TrackFiles()
        self.status_writer = status_writer
        self.serve_metrics = serve_metrics
        self.schedule = None  # made when run() starts, after the track directory is checked
        self.pair = pairs.PairWatch(cfg.vrrp, self.log, post or pairs.Poster(cfg.path), clock)
        self.signals = []
        self.wake_r = self.wake_w = None
        self.endpoint = None
        self.started = time.time()
        self.status_due = 0.0
        self.status_dirty = True
        self.status_error = None
        self.watchdog_due = 0.0
        self.alive_due = 0.0
        self.alive_error = None

    # ------------------------------------------------------------------ lifecycle

    def run(self):
        """Run until SIGTERM/SIGINT; return ExitCode.OK (files zeroed) or raise on a bug."""
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        old_wakeup = signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        try:
            trackfile.prepare(self.cfg.track_dir, self.cfg.files)
            self._start_metrics()
            with stats.LOCK:
                self.schedule = schedules.Schedule(
                    self.cfg.checks, self.clock(), rng=self.rng, executor=self.executor,
                    publisher=self.tracks, wallclock=time.time)
            count = len(self.cfg.checks)
            self.log(f"started: {count} check{'s' * (count != 1)} from {self.cfg.path},"
                     f" track files in {self.cfg.track_dir}", syslogger.LOG_NOTICE)
            self._hold_alive(self.clock())
            self.pair.start()
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
        schedule = self.schedule
        while True:
            now = self.clock()
            with stats.LOCK:
                wake = schedule.next_wake()
            pair_wake = self.pair.next_wake()
            wake = min(now + 60 if wake is None else wake, self.alive_due,
                       self.status_due if self.status_dirty else now + 60,
                       self.watchdog_due if self._watchdog() else now + 60,
                       now + 60 if pair_wake is None else pair_wake)
            if wake > now:
                try:
                    ready = select.select([self.wake_r, *self.pair.fds()], [], [], wake - now)[0]
                except InterruptedError:
                    ready = ()
                self._drain_pipe()
                for fd in ready:
                    if fd != self.wake_r:
                        self.pair.read(fd)
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
            self.pair.tick(now)
            self.status_dirty |= self.pair.refresh(now)
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
        self.pair.close()
        self._write_status(state="stopped")
        self._stop_metrics(wait=False)
        self.executor.close()
        # The wake-up pipe stays open: a probe still running in a daemon thread must
        # never write its byte into a descriptor number reused for something else.

    def _drain_pipe(self):
        try:
            while os.read(self.wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _wake(self):
        if self.wake_w is None:
            return  # not running
        try:
            os.write(self.wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # full: the main thread is already due to wake; closed: stopping

    # ------------------------------------------------------------------ configuration

    def reload(self):
        """SIGHUP: the new configuration, or the old one kept with one log line."""
        self._notify("RELOADING=1")
        try:
            cfg = configuration.load(self.cfg.path)
            trackfile.prepare(cfg.track_dir, cfg.files)
        except (configuration.ConfigError, OSError) as exc:
            why = exc.lines if isinstance(exc, configuration.ConfigError) else \
                [f"cannot use {cfg.track_dir}: {exc.strerror or exc}"]
            for line in why:  # every mistake of the file, one line each
                self.log(f"reload failed, running configuration kept: {line}", syslogger.LOG_ERR)
            self._notify("READY=1")
            return False
        with stats.LOCK:
            change = self.schedule.reload(cfg.checks, self.clock())
            # removed: nobody writes them any more; added: down until their first result,
            # whatever the file held (a file moved to where another check's was)
            gone = [spec.file for spec in (*change.removed, *change.added)]
            if cfg.alive_file != self.cfg.alive_file:
                gone.append(self.cfg.alive_file)  # the track directory moved
            failed = self.tracks.zero(gone)
        for path, error in failed:
            self.log(f"could not set {path} to 0: {error}", syslogger.LOG_ERR)
        metrics_moved = cfg.metrics != self.cfg.metrics
        self.cfg = cfg
        self._hold_alive(self.clock())
        self.pair.reload(cfg.vrrp)  # keepalived.conf read again, whatever changed
        if metrics_moved:
            self._stop_metrics()
            self._start_metrics()
        self.status_dirty = True
        self.log(f"reloaded {cfg.path}: {len(change.added)} added, {len(change.changed)} changed"
                 f" (run at once, state kept), {len(change.removed)} removed (track files set"
                 f" to 0), {len(change.kept)} kept", syslogger.LOG_NOTICE)
        self._notify("READY=1")
        return True

    # ------------------------------------------------------------------ results

    def answer(self, run, result, started, finished):
        """A run's result, in the thread that ran it: count it, say what changed."""
        with stats.LOCK:
            outcome = self.schedule.complete(run, result, started, finished)
            self.status_dirty |= outcome.counted
        self._say(outcome.lines)
        if outcome.changed:
            self._wake()  # status document and systemd's STATUS now, not at the next run

    def _say(self, lines):
        for message, priority in lines:
            self.log(message, priority)

    # ------------------------------------------------------------------ status, systemd

    def summary(self):
        with stats.LOCK:
            checks = self.schedule.checks if self.schedule is not None else ()
            up = sum(1 for check in checks if check.health.up)
        problems = [f"{instance.name} {problem.code}" for instance in self.pair.view.instances
                    for problem in instance.problems]
        vrrp = f"; VRRP {', '.join(problems)}" if problems else ""
        return f"{len(checks)} checks, {up} up{vrrp}"

    def _hold_alive(self, now):
        """1 in the "agent running" file (config.ALIVE_FILE), again every ALIVE_PERIOD: a file
        keepalived re-initialised or somebody removed is right again within seconds."""
        self.alive_due = now + ALIVE_PERIOD
        error = self.tracks(self.cfg.alive_file, 1)
        if error is not None and error != self.alive_error:
            self.log(f"cannot write {self.cfg.alive_file}: {error}", syslogger.LOG_ERR)
        self.alive_error = error

    def _housekeeping(self, now):
        if now >= self.alive_due:
            self._hold_alive(now)
        if self.status_dirty and now >= self.status_due:
            self._write_status()
            self.status_due = now + STATUS_PERIOD
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
        """The status document (schema: kachecks.agent.status) as of now."""
        with stats.LOCK:
            checks = self.schedule.checks if self.schedule is not None else ()
            return status.document(
                state=state, pid=os.getpid(), started=self.started, written=time.time(),
                config=self.cfg.path, track_dir=self.cfg.track_dir, checks=checks,
                files=self.tracks.written | {check.spec.file for check in checks},
                vrrp=self.pair.view)

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
            return (), stats.Histogram(stats.LATENESS_BUCKETS), self.pair.view
        return self.schedule.checks, self.schedule.lateness, self.pair.view

    def _start_metrics(self):
        if self.cfg.metrics is not None:
            self.endpoint = self.serve_metrics(self.cfg.metrics, self._metric_source, self.log)

    def _stop_metrics(self, wait=True):
        if self.endpoint is not None:
            self.endpoint.close(wait)
            self.endpoint = None
