"""The resident agent: a Schedule (kachecks.agent.schedule) driven by signals, threads and files.

The schedule decides; this module does the I/O it is handed: the main thread
sleeps in ``select()`` on a wake-up pipe until the schedule's next wake-up
(signals arrive through the same pipe, ``signal.set_wakeup_fd``) and ticks it,
which hands each due run to the executor (``Probes``: a thread per run in
flight, kachecks.agent.pool). The probe thread then answers the schedule itself
— judge, rise/fall, track file (``TrackFiles``, the publisher), counters —
under one lock (``stats.LOCK``), which the main thread also takes to tick and,
at most once a second, to copy a snapshot (kachecks.agent.snapshot) that the
status document and the endpoint render from without it. A result costs no
second hand-over and no wake-up of the main thread (each one is a few syscalls:
on a busy director that was a third of the agent's CPU); only a change of state
wakes it, to refresh the status document and systemd's STATUS at once. A run
that hangs only ever holds its own thread; one that cannot get a thread fails.

Fail-closed: SIGTERM/SIGINT write 0 to every track file before exiting 0; an
agent that cannot publish at all for a few seconds does the same and exits 1;
SIGHUP reloads (a broken file is logged and the running set kept; a check whose
name and file stay keeps its state, see ``schedule.diff``).

With a ``[vrrp]`` table the same loop also waits on the pair watch's sockets
(kachecks.agent.pair): it reads them when they are readable and ticks the
watch when it is due; a SIGHUP reads keepalived.conf again.
"""

import errno
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
from kachecks.agent import snapshot as snapshots
from kachecks.agent import stats, status, trackfile
from kachecks.agent.pool import Pool
from kachecks.checks import contract
from kachecks.checks.result import Result
from kachecks.status import ExitCode

STATUS_PERIOD = 1.0  # seconds between status-document rewrites while results come in
ALIVE_PERIOD = 5.0  # seconds between rewrites of the "agent running" file (config.ALIVE_FILE)
GIVE_UP = 3  # track-file writes failing in a row, over several files, for GIVE_UP_AFTER
GIVE_UP_AFTER = 2.0  # seconds: then the agent stops (ExecStopPost zeroes the files)
# The longest a thread busy in Python (a render of /metrics, a TLS handshake) keeps the
# main loop waiting for the interpreter when a run is due: 5 ms by default, half the
# 10 ms the schedule aims for.
SWITCH_INTERVAL = 0.001
DESCRIPTORS_PER_CHECK = 4  # its run's socket and drain file, twice for a reload's old run
DESCRIPTORS_OWN = 64  # the endpoint's (16 connections), the track directory's, syslog's
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
    (``zero`` covers them even after a reload dropped their check), and whether the
    agent can still publish at all (``blind``).

    Every file is written by name relative to its directory, opened once
    (kachecks.agent.trackfile.Directories: ``open(cfg)`` at start and on each reload),
    so a write needs one descriptor, the temporary file's: one is kept in reserve and
    given up for a write that found none free (EMFILE/ENFILE), then taken back.
    """

    def __init__(self, directories=None, clock=time.monotonic):
        self.directories = directories or trackfile.Directories()
        self.clock = clock
        self.written = set()
        self.streak = 0  # writes that failed in a row, whichever the file
        self.streak_files = set()
        self.streak_since = None  # when the first of them failed
        self.last_error = None  # (path, why) of the last failed write
        self._spare = _spare_descriptor()

    def __call__(self, path, value):
        """Write ``value`` to ``path``: None, or why it could not."""
        try:
            self._write(path, value)
        except OSError as exc:
            error = exc.strerror or str(exc)
            if not self.streak:
                self.streak_since = self.clock()
            self.streak += 1
            self.streak_files.add(path)
            self.last_error = (path, error)
            return error
        self.streak = 0
        self.streak_files.clear()
        self.written.add(path)
        return None

    def open(self, cfg):
        """Judge and open the directories and files of ``cfg``; trackfile.Unusable (or
        OSError) if the agent must not write one of them."""
        self.directories.open(cfg.track_dir, cfg.files)

    def write_status(self, path, document):
        """The status document, by name in its (opened) directory."""
        directory, name = os.path.split(path)
        status.write(name, document, dir_fd=self.directories.fd(directory))

    def _write(self, path, value):
        try:
            self.directories.write(path, value)
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE) or self._spare is None:
                raise
            os.close(self._spare)  # the reserve, for this write
            self._spare = None
            try:
                self.directories.write(path, value)
            finally:
                self._spare = _spare_descriptor()

    def blind(self):
        """Why no result can be published, or None: ``GIVE_UP`` writes in a row failed over
        ``GIVE_UP_AFTER`` seconds, of two files or more (one file's own trouble is that
        check's, not the agent's) or of the only file there is. A blip is no reason to
        take every real server out; a director that cannot publish for seconds is
        running blind."""
        files = self.streak_files
        if (self.streak < GIVE_UP or len(files) < min(2, len(self.written | files))
                or self.clock() - self.streak_since < GIVE_UP_AFTER):
            return None
        path, error = self.last_error
        return (f"{self.streak} track-file writes in a row failed over"
                f" {self.clock() - self.streak_since:.1f} s, of {len(files)} files"
                f" (last: {path}: {error})")

    def zero(self, paths):
        return trackfile.zero(self.directories, paths)


def _spare_descriptor():
    try:
        return os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None  # none free now: taken again after the next write


def fit_descriptors(checks, log):
    """Raise RLIMIT_NOFILE's soft limit to what ``checks`` need (up to the hard limit); say
    so if even that is short. Each check has at most one run in flight, holding a
    socket and for a moment a file (--drain-file); a reload may leave the old runs of
    changed commands in flight next to the new ones: ``DESCRIPTORS_PER_CHECK``. The
    endpoint, the track directory, syslog and the reserve need ``DESCRIPTORS_OWN``."""
    import resource

    need = checks * DESCRIPTORS_PER_CHECK + DESCRIPTORS_OWN
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        soft = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        except (OSError, ValueError):
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft < need:
            log(f"{checks} checks may need {need} descriptors, the limit is {soft}: runs may"
                " fail with 'Too many open files' (raise LimitNOFILE)", syslogger.LOG_WARNING)


def serve_metrics(address, source, log, document=None, spool=lambda: None):
    """The endpoint on ``address``: ``/metrics`` from ``source()`` (the agent's last
    snapshot) and the notify spool at ``spool()``, with python3-prometheus-client
    (without it, ``/metrics`` says why); the status page ``/`` and ``/status.json`` of
    ``document(snapshot)``; or None (said why)."""
    from kachecks.agent import endpoint, metrics, page

    routes = page.routes(source, document) if document is not None else {}
    if metrics.available():
        routes["/metrics"] = metrics.Page(source, spool=spool)
    else:
        routes["/metrics"] = metrics.unavailable
        log(f"no /metrics: {metrics.MISSING}; the status page is served (set [agent]"
            " metrics = \"\" for no endpoint at all)", syslogger.LOG_WARNING)
    try:
        return endpoint.Endpoint(address, routes, log)
    except OSError as exc:
        host, port = address
        log(f"no metrics endpoint: cannot listen on {host}:{port}: {exc.strerror or exc}",
            syslogger.LOG_ERR)
        return None


class Agent:
    """The daemon: ``run()`` until SIGTERM/SIGINT. Every piece of I/O is handed in or made
    here: ``log`` (syslog), ``notifier`` (systemd), ``rng`` and ``clock`` (the schedule's),
    ``executor`` (made from ``answer`` when None), ``tracks`` (the publisher),
    ``status_writer(path, document)`` (None: the publisher's ``write_status``),
    ``serve_metrics(address, source, log, document, spool)``, ``post(event)`` (the [vrrp]
    watch's notifications: pair.Poster, the notify spool)."""

    def __init__(self, cfg, log=None, notifier=None, rng=None, clock=time.monotonic,
                 executor=None, tracks=None, status_writer=None,
                 serve_metrics=serve_metrics, post=None):
        self.cfg = cfg
        self.log = log or Log()
        self.notifier = notifier
        self.rng = rng or random.Random()
        self.clock = clock
        self.executor = executor or Probes(clock, self.answer)
        self.tracks = tracks or TrackFiles()
        self.status_writer = status_writer or self.tracks.write_status
        self.serve_metrics = serve_metrics
        self.schedule = None  # made when run() starts, after the track directory is checked
        self.pair = pairs.PairWatch(cfg.vrrp, self.log, post or pairs.Poster(cfg.path), clock)
        self.snapshot = snapshots.EMPTY  # the last one taken: what the status and metrics show
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
        """Run until SIGTERM/SIGINT (ExitCode.OK) or until no result can be published any
        more (ExitCode.FAILURE, said why); the files are zeroed either way. Raises on a bug."""
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        old_wakeup = signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        try:
            self.tracks.open(self.cfg)
            fit_descriptors(len(self.cfg.checks), self.log)
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
            code = self._loop()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._shutdown()
        return code

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
                    return ExitCode.OK
            now = self.clock()
            with stats.LOCK:
                outcome = schedule.tick(now)
                self.status_dirty |= outcome.counted
                blind = self.tracks.blind()
            self._say(outcome.lines)
            if blind:
                self.log(f"cannot publish results: {blind}; stopping rather than run blind"
                         " (the track files are set to 0 as it stops)", syslogger.LOG_ERR)
                return ExitCode.FAILURE
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
            if cfg.track_dir != self.cfg.track_dir:
                raise configuration.ConfigError(
                    f"{cfg.path}: [agent] track_dir: {cfg.track_dir} is not {self.cfg.track_dir}"
                    " (the directory the agent holds): restart the agent to move it")
            self.tracks.open(cfg)
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
            failed = self.tracks.zero([spec.file for spec in (*change.removed, *change.added)])
        for path, error in failed:
            self.log(f"could not set {path} to 0: {error}", syslogger.LOG_ERR)
        fit_descriptors(len(cfg.checks), self.log)
        metrics_moved = cfg.metrics != self.cfg.metrics
        self.cfg = cfg
        self.pair.reload(cfg.vrrp)  # keepalived.conf read again, whatever changed
        self.pair.refresh()
        self._write_status()  # the new set of checks, shown at once (a new snapshot)
        self.status_due = self.clock() + STATUS_PERIOD
        self._hold_alive(self.clock())
        if metrics_moved:
            self._stop_metrics()
            self._start_metrics()
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
            blind = self.tracks.blind()
        self._say(outcome.lines)
        if outcome.changed or blind:
            self._wake()  # status document and systemd's STATUS now, not at the next run

    def _say(self, lines):
        for message, priority in lines:
            self.log(message, priority)

    # ------------------------------------------------------------------ status, systemd

    def summary(self):
        """systemd's STATUS line, from the last snapshot (and the pair's problems)."""
        views = self.snapshot.checks
        pair = self.snapshot.vrrp
        problems = [f"{instance.name} {problem.code}" for instance in
                    (pair.instances if pair is not None else ()) for problem in instance.problems]
        vrrp = f"; VRRP {', '.join(problems)}" if problems else ""
        return f"{len(views)} checks, {sum(1 for view in views if view.up)} up{vrrp}"

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

    def take_snapshot(self):
        """A new snapshot (kachecks.agent.snapshot) of the schedule, published to every reader
        (status document, endpoint) by one assignment; the lock is held for the copy only."""
        with stats.LOCK:
            checks = self.schedule.checks if self.schedule is not None else ()
            lateness = self.schedule.lateness if self.schedule is not None else \
                snapshots.EMPTY.lateness
            self.snapshot = snapshots.take(
                checks, lateness, self.tracks.written | {check.spec.file for check in checks},
                time.time(), self.pair.view)
        return self.snapshot

    def document(self, state="running"):
        """The status document (schema: kachecks.agent.status) of a new snapshot."""
        return self._document_of(self.take_snapshot(), state)

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

    def _spool_dir(self):
        """The notify spool this configuration uses (its counters are exported), or None."""
        from kachecks.notify import config as notify_config

        try:
            return notify_config.spool_dir(self.cfg.path)
        except notify_config.ConfigError:
            return None

    def _document_of(self, snapshot, state="running"):
        """The status document (schema: kachecks.agent.status) of ``snapshot``."""
        return status.document(state=state, pid=os.getpid(), started=self.started,
                               written=snapshot.taken, config=self.cfg.path,
                               track_dir=self.cfg.track_dir, snapshot=snapshot)

    def _start_metrics(self):
        if self.cfg.metrics is not None:
            self.endpoint = self.serve_metrics(self.cfg.metrics, lambda: self.snapshot, self.log,
                                               self._document_of, self._spool_dir)

    def _stop_metrics(self, wait=True):
        if self.endpoint is not None:
            self.endpoint.close(wait)
            self.endpoint = None
