"""The resident agent: every check on its schedule, in-process, into its track file.

The main thread keeps the schedule. It sleeps in ``select()`` on a wake-up
pipe until the next run is due (signals arrive through the same pipe,
``signal.set_wakeup_fd``) and hands each due run to a probe thread
(kachecks.agent.pool). The probe thread then finishes the run itself: judge,
rise/fall, track file, counters — under one lock (``stats.LOCK``), which the
main thread, the status file and the metrics endpoint also take. A result
costs no second hand-over and no wake-up of the main thread (each one is a
few syscalls: on a busy director that was a third of the agent's CPU); only
a change of state wakes it, to refresh the status file and systemd's STATUS
at once. A run that hangs only ever holds its own thread.

Scheduling follows HAProxy and Envoy: first runs spread evenly over the
interval, each next run ``interval`` ±5 % after the previous one was due (no
slow drift, no lock-step with other periodic work), never two runs of one check
at once. A run that has not returned ``GRACE`` seconds after its deadline is
counted as a failure at once, and the check stays down while that probe is
stuck; its late result is thrown away.

Runs due within ``SLACK`` of each other are handed out on one wake-up
(timer slack, as the kernel coalesces timers): at most 10 ms early, well
inside the jitter, and one wake-up instead of several on a busy agent.

Fail-closed: SIGTERM/SIGINT write 0 to every track file before exiting 0;
SIGHUP reloads (a broken file is logged and the running set kept; checks whose
name, command and file are unchanged keep their state).
"""

import heapq
import os
import random
import select
import signal
import sys
import time

from kachecks import syslogger
from kachecks.agent import config as configuration
from kachecks.agent import health as healths
from kachecks.agent import stats, status, trackfile
from kachecks.agent.pool import Pool
from kachecks.checks import contract, verdict
from kachecks.checks.result import Result

JITTER = 0.05  # +-5 % of the interval on each run
SLACK = 0.01  # seconds: runs due this close together start on one wake-up
GRACE = 0.5  # seconds past a run's timeout before the agent stops waiting for it
STATUS_PERIOD = 1.0  # seconds between status-file rewrites while results come in
IDENT = "kachecks-agent"
PROCESS_NAME = b"kachecks-agent"  # what keepalived's vrrp_track_process looks for


def set_process_name(name=PROCESS_NAME):
    """prctl(PR_SET_NAME): /proc/PID/comm becomes ``name`` (keepalived sees the change)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(15, name, 0, 0, 0) != 0:  # 15 = PR_SET_NAME
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NAME) failed")


class Runner:
    """One configured check's schedule, published state and last result."""

    __slots__ = ("spec", "health", "stats", "slot", "due", "run", "inflight", "stuck", "result",
                 "latency", "lateness", "error", "removed")

    def __init__(self, spec):
        self.spec = spec
        self.health = healths.Health()
        self.stats = stats.CheckStats()
        self.slot = 0  # bumps on each (re)schedule: older heap entries are void
        self.due = None
        self.run = 0  # bumps on each dispatch: names the run a result belongs to
        self.inflight = None  # monotonic start of the run in flight, None when idle
        self.stuck = False  # that run outlived its deadline and was already counted
        self.result = None
        self.latency = None
        self.lateness = None
        self.error = None  # why the track file could not be written, or None
        self.removed = False


class Log:
    """Syslog (ident kachecks-agent), and stderr too when it is a terminal."""

    def __init__(self, echo=None):
        self.echo = sys.stderr.isatty() if echo is None else echo

    def __call__(self, message, priority=syslogger.LOG_INFO):
        syslogger.send(IDENT, message, priority)
        if self.echo:
            sys.stderr.write(f"kachecks agent: {message}\n")
            sys.stderr.flush()


class Agent:
    def __init__(self, cfg, log=None, notifier=None, rng=None, clock=time.monotonic):
        self.cfg = cfg
        self.log = log or Log()
        self.notifier = notifier
        self.rng = rng or random.Random()
        self.clock = clock
        self.runners = {}
        self.pool = Pool()
        self.stopping = False  # set under stats.LOCK: no track file is written after it
        self.lateness = stats.Histogram(stats.LATENESS_BUCKETS)
        self.heap = []  # (due, sequence, runner, runner.slot when scheduled)
        self.deadlines = []  # (monotonic deadline, sequence, runner, run number)
        self.sequence = 0
        self.signals = []
        self.wake_r = self.wake_w = None
        self.endpoint = None
        self.started = time.time()
        self.status_due = 0.0
        self.status_dirty = True
        self.status_error = None
        self.watchdog_due = 0.0
        self.written = set()  # every track file this agent has written (for zero)

    # ------------------------------------------------------------------ lifecycle

    def run(self):
        """Run until SIGTERM/SIGINT; return 0 (files zeroed) or raise on a bug."""
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        old_wakeup = signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        try:
            trackfile.prepare(self.cfg.track_dir, self.cfg.files)
            self._start_metrics()
            self._install(self.cfg.checks)
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
        return 0

    def _on_signal(self, signum, frame):
        self.signals.append(signum)

    def _loop(self):
        deadlines = self.deadlines
        while True:
            while deadlines and (deadlines[0][2].inflight is None
                                 or deadlines[0][3] != deadlines[0][2].run):
                heapq.heappop(deadlines)  # that run ended: no need to wake for it
            now = self.clock()
            wake = min(self.heap[0][0] - SLACK if self.heap else now + 60,
                       self.deadlines[0][0] if self.deadlines else now + 60,
                       self.status_due if self.status_dirty else now + 60,
                       self.watchdog_due if self._watchdog() else now + 60)
            if wake > now:
                try:
                    select.select([self.wake_r], [], [], wake - now)
                except InterruptedError:
                    pass
                self._drain_pipe()
            while self.signals:
                signum = self.signals.pop(0)
                if signum == signal.SIGHUP:
                    self.reload()
                else:
                    name = "SIGTERM" if signum == signal.SIGTERM else "SIGINT"
                    self.log(f"{name}: stopping; every track file set to 0", syslogger.LOG_NOTICE)
                    return
            now = self.clock()
            self.tick(now)
            self._housekeeping(now)

    def _shutdown(self):
        """Fail closed: 0 in every file this agent wrote or manages, final status."""
        self._notify("STOPPING=1")
        with stats.LOCK:  # a probe finishing now waits, then writes nothing
            self.stopping = True
            paths = self.written | {r.spec.file for r in self.runners.values()}
            failed = trackfile.zero(sorted(paths))
            for runner in self.runners.values():
                runner.health.up, runner.health.value = False, 0
        for path, error in failed:
            self.log(f"could not set {path} to 0: {error}", syslogger.LOG_ERR)
        self._write_status(state="stopped")
        self._stop_metrics(wait=False)
        self.pool.close()
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
            return  # not running (driven step by step)
        try:
            os.write(self.wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # full: the main thread is already due to wake; closed: stopping

    # ------------------------------------------------------------------ configuration

    def _install(self, specs):
        """Start runners for ``specs`` not running yet; first runs spread over the interval."""
        fresh = [s for s in specs if s.identity not in self.runners]
        now = self.clock()
        for index, spec in enumerate(fresh):
            runner = Runner(spec)
            self.runners[spec.identity] = runner
            self._schedule(runner, now + spec.interval * index / max(1, len(fresh)))
        return fresh

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
        wanted = {spec.identity: spec for spec in cfg.checks}
        with stats.LOCK:
            removed = [r for key, r in self.runners.items() if key not in wanted]
            for runner in removed:
                runner.removed = True  # its probe in flight, if any, writes nothing
                del self.runners[runner.spec.identity]
            kept = 0
            for key, runner in self.runners.items():
                spec = wanted[key]
                if spec.interval != runner.spec.interval:
                    self._schedule(runner, min(runner.due, self.clock() + spec.interval))
                runner.spec = spec  # same name, command and file: rise/fall/interval may change
                kept += 1
            added = self._install(cfg.checks)
            failed = trackfile.zero([r.spec.file for r in removed])
        for path, error in failed:
            self.log(f"could not set {path} to 0: {error}", syslogger.LOG_ERR)
        metrics_moved = cfg.metrics != self.cfg.metrics
        self.cfg = cfg
        if metrics_moved:
            self._stop_metrics()
            self._start_metrics()
        self.status_dirty = True
        self.log(f"reloaded {cfg.path}: {len(added)} added, {len(removed)} removed"
                 f" (track files set to 0), {kept} kept", syslogger.LOG_NOTICE)
        self._notify("READY=1")
        return True

    # ------------------------------------------------------------------ scheduling

    def _schedule(self, runner, due):
        runner.due = due
        runner.slot += 1
        self.sequence += 1
        heapq.heappush(self.heap, (due, self.sequence, runner, runner.slot))

    def _next_due(self, runner, now):
        step = runner.spec.interval * (1 + self.rng.uniform(-JITTER, JITTER))
        due = runner.due + step
        if due <= now:  # far behind (stopped, suspended): re-spread, do not burst
            due = now + step * self.rng.random()
        return due

    def tick(self, now):
        """Start the runs due by ``now``; fail the ones stuck past their deadline."""
        messages = []
        with stats.LOCK:
            self._dispatch_due(now, messages)
            self._expire_stuck(now, messages)
        self._say(messages)

    def _dispatch_due(self, now, messages):
        """Hand out every run due by ``now`` + SLACK (under stats.LOCK)."""
        heap = self.heap
        while heap and heap[0][0] <= now + SLACK:
            due, _, runner, slot = heapq.heappop(heap)
            if runner.removed or slot != runner.slot:
                continue  # rescheduled or removed since
            self._schedule(runner, self._next_due(runner, now))
            if runner.inflight is not None:  # never two runs of one check at once
                if runner.stuck:  # past its deadline: one more failure, the file rewritten
                    self._complete(runner, Result(False, reason=self._stuck_reason(runner, now)),
                                   runner.inflight, now, messages)
                continue  # else slow but within its deadline: its own result will count
            runner.run += 1
            runner.inflight = now
            runner.stuck = False
            self.sequence += 1
            heapq.heappush(self.deadlines, (now + runner.spec.timeout + GRACE, self.sequence,
                                            runner, runner.run))
            self.pool.submit(self._probe, runner, runner.run, runner.spec, due)

    def _probe(self, runner, run, spec, due):
        """In a pool thread: one run, start to finish."""
        started = self.clock()
        try:
            result = contract.evaluate(spec.check, spec.target)
        except BaseException as exc:  # noqa: BLE001 - never leave the run unanswered
            result = Result(False, reason=f"internal error: {type(exc).__name__}: {exc}")
        self.finish(runner, run, result, started, self.clock(), due)

    def finish(self, runner, run, result, started, finished, due):
        """Account for run number ``run``: judge it, publish it, say what changed."""
        messages = []
        with stats.LOCK:
            self.lateness.observe(max(0.0, started - due))
            runner.lateness = started - due
            if run != runner.run:
                return  # cannot happen (one run in flight per check); never trust it
            runner.inflight = None
            if runner.stuck:
                runner.stuck = False
                return  # already counted as a timeout; its late result is void
            if runner.removed or self.stopping:
                return
            changed = self._complete(runner, result, started, finished, messages)
        self._say(messages)
        if changed:
            self._wake()  # status file and systemd's STATUS now, not at the next run

    def _stuck_reason(self, runner, now):
        return (f"timeout after {runner.spec.timeout:g} s: the probe has not returned"
                f" ({now - runner.inflight:.1f} s)")

    def _expire_stuck(self, now, messages):
        deadlines = self.deadlines
        while deadlines and deadlines[0][0] <= now:
            _, _, runner, run = heapq.heappop(deadlines)
            if runner.removed or run != runner.run or runner.inflight is None or runner.stuck:
                continue
            runner.stuck = True
            self._complete(runner, Result(False, reason=self._stuck_reason(runner, now)),
                           runner.inflight, now, messages)

    # ------------------------------------------------------------------ results

    def _complete(self, runner, result, started, finished, messages):
        """Count one result and publish it (under stats.LOCK); True if the state changed.

        What to log goes to ``messages``, said once the lock is released: a slow
        syslog must never hold up another check.
        """
        spec = runner.spec
        judged = verdict.judge(result, spec.target)
        changed, previous = runner.health.observe(judged, spec.dynamic, spec.rise, spec.fall,
                                                  time.time())
        runner.stats.runs += 1
        runner.stats.failures += not result.ok
        runner.stats.duration.observe(finished - started)
        runner.stats.transitions += changed and previous is not None
        runner.result = result
        runner.latency = finished - started
        self._publish(runner, messages)
        if changed:
            self._report(runner, result, judged, previous, messages)
        self.status_dirty = True
        return changed

    def _publish(self, runner, messages):
        path = runner.spec.file
        try:
            trackfile.write(path, runner.health.value)
        except OSError as exc:
            error = exc.strerror or str(exc)
            if runner.error != error:
                messages.append((f"check {runner.spec.name}: cannot write {path}: {error}",
                                 syslogger.LOG_ERR))
            runner.error = error
            return
        self.written.add(path)
        if runner.error is not None:
            messages.append((f"check {runner.spec.name}: {path} written again",
                             syslogger.LOG_NOTICE))
            runner.error = None

    def _report(self, runner, result, judged, previous, messages):
        spec = runner.spec
        if spec.target.quiet or (previous is None and runner.health.display == healths.UP):
            return  # --quiet, or the first result being the expected one: nothing to say
        priority = syslogger.LOG_NOTICE if runner.health.up else syslogger.LOG_WARNING
        message = contract.syslog_message(spec.check, spec.target, result, judged)
        messages.append((f"check {spec.name}: {message}", priority))

    def _say(self, messages):
        for message, priority in messages:
            self.log(message, priority)

    # ------------------------------------------------------------------ status, systemd

    def summary(self):
        with stats.LOCK:
            runners = list(self.runners.values())
            up = sum(1 for r in runners if r.health.up)
        return f"{len(runners)} checks, {up} up"

    def _housekeeping(self, now):
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
        with stats.LOCK:
            return self._document(state)

    def _document(self, state):
        checks = []
        for runner in self.runners.values():
            result, spec = runner.result, runner.spec
            checks.append({
                "name": spec.name, "file": spec.file, "target": spec.target.identity,
                "state": runner.health.display, "up": bool(runner.health.up),
                "value": runner.health.value,
                "since": runner.health.since, "latency": runner.latency,
                "lateness": runner.lateness,
                "reason": (result.summary if result.ok else result.reason) if result else None,
                "runs": runner.stats.runs, "failed_runs": runner.stats.failures,
                "error": runner.error,
            })
        return {"version": status.VERSION, "pid": os.getpid(), "state": state,
                "started": self.started, "written": time.time(), "config": self.cfg.path,
                "track_dir": self.cfg.track_dir, "checks": checks,
                "files": sorted(self.written | {r.spec.file for r in self.runners.values()})}

    def _write_status(self, state="running"):
        self.status_dirty = False
        try:
            status.write(self.cfg.status_file, self.document(state))
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
        return list(self.runners.values()), self.lateness

    def _start_metrics(self):
        if self.cfg.metrics is None:
            return
        from kachecks.agent import metrics

        if not metrics.available():
            self.log(f"no metrics endpoint: {metrics.MISSING} (set [agent] metrics = \"\" to"
                     " silence this)", syslogger.LOG_WARNING)
            return
        try:
            self.endpoint = metrics.Endpoint(self.cfg.metrics, self._metric_source)
        except OSError as exc:
            host, port = self.cfg.metrics
            self.log(f"no metrics endpoint: cannot listen on {host}:{port}:"
                     f" {exc.strerror or exc}", syslogger.LOG_ERR)

    def _stop_metrics(self, wait=True):
        if self.endpoint is not None:
            self.endpoint.close(wait)
            self.endpoint = None
