"""The resident agent: a Schedule (kachecks.agent.schedule) driven by one event loop.

The schedule decides; this module does the I/O it is handed. The main thread
sleeps in the event loop (kachecks.agent.loop: one epoll) until a probe's socket
is ready or the schedule's next wake-up is due (signals arrive through the
loop's wake-up pipe, ``signal.set_wakeup_fd``), then ticks the schedule, which
hands each due run to the executor (kachecks.agent.runner). HTTP and TCP probes
(TLS over either) run as steps on that same loop: the result is judged, counted
(rise/fall, counters) and written to its track file (``TrackFiles``, the
publisher) in the loop's thread, no hand-over and no wake-up of anything. A probe
that blocks in a library (LDAP) runs in a pool thread (kachecks.agent.pool) and answers the
schedule from there, under the one lock (``stats.LOCK``) the main thread also
takes to tick and to copy a snapshot (kachecks.agent.snapshot) that the status
document and the endpoint render from without it; only a change of state wakes
the main thread, to refresh the status document and systemd's STATUS. A run that
hangs only ever holds its own socket or thread, up to its deadline; one that
cannot start fails.

The snapshot and the status document are incremental: only the checks that
changed since the last one are copied and rendered again, ``STATUS_SLICE`` of them
per turn of the loop (the runs due start in between), and the document is
rewritten only when something in it changed, at most once a second (once every
ten seconds with 10,000 checks: ``STATUS_CHECKS_PER_SECOND``): at once after that
when a check's published state changed (``Schedule.take_news``: down, back up,
drained; or a problem or holder of the pair, or a reload); when only routine results
came in (counters, latencies, a first result UP: the expected one; the pair's
packet counters), once a tenth of the checks have new ones or
``STATUS_ROUTINE_MAX`` after the last rewrite. So an agent with
many checks and few runs (at rest) does not rewrite megabytes for a handful of
counters, and one with none due rewrites nothing: the document's ``written`` is
when it last changed, not a heartbeat (liveness is the track directory's lock).

Fail-closed: SIGTERM/SIGINT write 0 to every track file before exiting 0; an
agent that cannot publish at all for a few seconds does the same and exits 1;
SIGHUP reloads (a broken file is logged and the running set kept; a check whose
name and file stay keeps its state, see ``schedule.diff``).

With a ``[vrrp]`` table the same loop also waits on the pair watch's sockets
(kachecks.agent.pair): it reads them when they are readable and ticks the
watch when it is due; a SIGHUP reads keepalived.conf again.
"""

import errno
import gc
import os
import random
import signal
import sys
import threading
import time

from kachecks import syslogger
from kachecks.agent import config as configuration
from kachecks.agent import pair as pairs
from kachecks.agent import schedule as schedules
from kachecks.agent import snapshot as snapshots
from kachecks.agent import stats, status, trackfile
from kachecks.agent.loop import Loop
from kachecks.agent.runner import Runner
from kachecks.status import ExitCode

STATUS_PERIOD = 1.0  # seconds at least between status-document rewrites
# ... and at least a second per this many checks: a rewrite costs what its size does
# (10,000 checks: 3 MB, 3 ms), and an agent whose checks are quiet must stay cheap.
STATUS_CHECKS_PER_SECOND = 1000
# Routine results only (no news of a state): a rewrite once this share of the checks
# have new ones, or this long after the last one, whichever comes first.
STATUS_ROUTINE_SHARE = 0.1
STATUS_ROUTINE_MAX = 60.0  # seconds
# Checks copied and rendered into the status document per turn of the loop (a few
# milliseconds' work) while a rewrite is under way: between two slices the loop starts
# the runs due.
STATUS_SLICE = 250
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


class TrackFiles:
    """The publisher: a check's value into its track file; remembers every file written
    (``zero`` covers them even after a reload dropped their check), and whether the
    agent can still publish at all (``blind``).

    Every file is written by name relative to its directory, opened once
    (kachecks.agent.trackfile.Directories: ``open(cfg)`` at start and on each reload),
    so a write needs one descriptor, the temporary file's: one is kept in reserve and
    given up for a write that found none free (EMFILE/ENFILE), then taken back.

    A result whose value its file holds already (``Directories.holds``: looked at, not
    assumed) is not written again: one lstat while the file is the one read holding it
    (a read when it is not), instead of a temporary file and a rename, the file the same.
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
        """Make ``path`` hold ``value``: None, or why it could not."""
        if path in self.written and self.directories.holds(path, value):
            self.streak = 0
            return None
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
        """The status document (bytes, or pieces of it), by name in its (opened) directory."""
        directory, name = os.path.split(path)
        status.write_bytes(name, document, dir_fd=self.directories.fd(directory))

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


def settle_memory():
    """Everything loaded and configured so far lives as long as the configuration: move it
    out of the garbage collector's sight (gc.freeze), so that its collections, paid for
    by every run's short-lived objects, never walk thousands of checks' state again."""
    gc.collect()
    gc.freeze()


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
    ``loop`` (kachecks.agent.loop), ``runner`` (the executor, on that loop, answering
    ``answer``), ``tracks`` (the publisher), ``status_writer(path, document)`` (the
    document's bytes or pieces; None: the publisher's ``write_status``),
    ``serve_metrics(address, source, log, document, spool)``, ``post(event)`` (the [vrrp]
    watch's notifications: pair.Poster, the notify spool)."""

    def __init__(self, cfg, log=None, notifier=None, rng=None, clock=time.monotonic,
                 loop=None, runner=None, tracks=None, status_writer=None,
                 serve_metrics=serve_metrics, post=None):
        self.cfg = cfg
        self.log = log or Log()
        self.notifier = notifier
        self.rng = rng or random.Random()
        self.clock = clock
        self.loop = loop or Loop()
        self.runner = runner or Runner(self.loop, clock, self.answer)
        self.tracks = tracks or TrackFiles()
        self.status_writer = status_writer or self.tracks.write_status
        self.serve_metrics = serve_metrics
        self.schedule = None  # made when run() starts, after the track directory is checked
        self.pair = pairs.PairWatch(cfg.vrrp, self.log, post or pairs.Poster(cfg.path), clock)
        self.pair_watcher = None  # the pair's watcher whose sockets the loop reads
        self.pair_fds = ()
        self.snapshot = snapshots.EMPTY  # the last one taken: what the status and metrics show
        self.listed = None  # (schedule generation, files written, their set) the snapshot's
        # files are of
        self.signals = []
        self.renderer = status.Renderer()
        self.taking = None  # a status rewrite under way (snapshots.Taking): a slice a turn
        self.endpoint = None
        self.started = time.time()
        self.loop_thread = threading.get_ident()  # the thread that runs the loop (run())
        self.status_due = 0.0  # the next rewrite, not before
        self.status_dirty = True  # something in the document changed
        self.status_urgent = True  # ... news (Schedule.take_news), the pair, the checks
        self.status_fresh = 0  # checks with a new result since the last snapshot (the loop's
        # last count: a probe thread's result is counted at the loop's next tick)
        self.status_written = 0.0  # when the document was last rewritten (the clock's)
        self.status_error = None
        self.watchdog_due = 0.0
        self.alive_due = 0.0
        self.alive_error = None

    # ------------------------------------------------------------------ lifecycle

    def run(self):
        """Run until SIGTERM/SIGINT (ExitCode.OK) or until no result can be published any
        more (ExitCode.FAILURE, said why); the files are zeroed either way. Raises on a bug."""
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.loop_thread = threading.get_ident()
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        old_wakeup = signal.set_wakeup_fd(self.loop.wake_fd, warn_on_full_buffer=False)
        try:
            self.tracks.open(self.cfg)
            fit_descriptors(len(self.cfg.checks), self.log)
            self._start_metrics()
            with stats.LOCK:
                self.schedule = schedules.Schedule(
                    self.cfg.checks, self.clock(), rng=self.rng, executor=self.runner,
                    publisher=self.tracks, wallclock=time.time)
            settle_memory()
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
        schedule, runner = self.schedule, self.runner
        while True:
            now = self.clock()
            with stats.LOCK:
                wake = schedule.next_wake()
            probes = runner.next_wake()
            pair_wake = self.pair.next_wake()
            wake = min(now + 60 if wake is None else wake, self.alive_due,
                       now + 60 if probes is None else probes,
                       self._status_wake(now),
                       self.watchdog_due if self._watchdog() else now + 60,
                       now + 60 if pair_wake is None else pair_wake)
            self._watch_pair()
            self.loop.poll(wake - now if wake > now else 0)  # probes and the pair go on in here
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
                self.status_urgent |= schedule.take_news()
                self.status_fresh = len(schedule.changed)
                blind = self.tracks.blind()
            self._say(outcome.lines)
            if blind:
                self.log(f"cannot publish results: {blind}; stopping rather than run blind"
                         " (the track files are set to 0 as it stops)", syslogger.LOG_ERR)
                return ExitCode.FAILURE
            runner.step(now)
            self.pair.tick(now)
            news = self.pair.dirty  # a problem, a holder: else only its counters moved
            if self.pair.refresh(now):
                self.status_dirty = True
                self.status_urgent |= news
            self._housekeeping(now)

    def _watch_pair(self):
        """The pair watch's sockets among the loop's readers (level-triggered, read as the
        select() loop read them), registered again whenever its watcher changed: started,
        reopened (a reload, a retry) or closed."""
        watcher = self.pair.watcher
        if watcher is self.pair_watcher:
            return
        for fd in self.pair_fds:
            self.loop.remove_reader(fd, self._read_pair)
        self.pair_watcher = watcher
        self.pair_fds = tuple(self.pair.fds())
        for fd in self.pair_fds:
            self.loop.add_reader(fd, self._read_pair)

    def _read_pair(self, fd):
        if self.pair.watcher is self.pair_watcher:  # not one closed since the loop's poll
            self.pair.read(fd)

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
        self.runner.close()
        self.loop.close()

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
        settle_memory()
        self.pair.reload(cfg.vrrp)  # keepalived.conf read again, whatever changed
        self.pair.refresh()
        self._watch_pair()
        self._write_status()  # the new set of checks, shown at once (a new snapshot)
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
            self.status_urgent |= self.schedule.take_news()
            blind = self.tracks.blind()
        self._say(outcome.lines)
        if blind or outcome.changed and threading.get_ident() != self.loop_thread:
            # status document and systemd's STATUS now, not at the next run; in the loop's
            # own thread (a probe on the loop) it goes on to them without being woken
            self.loop.wake()

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
        if self.taking is None and now >= self._status_wake(now):
            self._begin_status()
        if self.taking is not None and self._rewrite_status():
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

    def _begin_status(self):
        """Start a rewrite of the status document: the checks changed since the last one
        are copied and rendered a slice at a time (``_rewrite_status``)."""
        self.status_dirty = self.status_urgent = False
        self.status_fresh = 0
        self.status_written = self.clock()
        self.status_due = self.status_written + max(
            STATUS_PERIOD, len(self.snapshot.checks) / STATUS_CHECKS_PER_SECOND)
        with stats.LOCK:
            schedule = self.schedule
            if schedule is None:
                self.taking = snapshots.Taking(())
            else:
                self.taking = snapshots.Taking(schedule.checks, self.snapshot,
                                               schedule.take_changed())

    def _rewrite_status(self, state="running", limit=STATUS_SLICE):
        """The next ``limit`` checks of the rewrite under way (every one left: None),
        copied under the lock and rendered outside it; the last slice finishes the
        snapshot, publishes it to every reader (the endpoint: one assignment) and writes
        the document. So the loop goes back to the runs due after each slice, however
        many checks changed: a rewrite of 10,000 holds it a few milliseconds at a time,
        not for the hundreds it takes in all. True once written (or failed to)."""
        taking = self.taking
        with stats.LOCK:
            indexes = taking.step(limit)
        self.renderer.ahead(taking, indexes)
        if not taking.done:
            return False
        self.taking = None
        with stats.LOCK:
            schedule = self.schedule
            checks = taking.checks
            written = self.tracks.written
            # The list of files changes with the configuration, or when a file outside it
            # is written for the first time (the "agent running" file, a dropped check's):
            # else the last one is the list, and its sorted tuple and JSON are kept.
            files = self.snapshot.files
            listed = self.listed
            generation = schedule.generation if schedule is not None else None
            if listed is None or listed[0] != generation or (
                    listed[1] != len(written) and not written <= listed[2]):
                files = written | {check.spec.file for check in checks}
                listed = (generation, len(written), frozenset(files))
            self.listed = (listed[0], len(written), listed[2])
            lateness = schedule.lateness if schedule is not None else \
                snapshots.EMPTY.lateness
            self.snapshot = snapshot = taking.finish(lateness, files, time.time(),
                                                     self.pair.view)
        document = self.renderer.render(state=state, pid=os.getpid(), started=self.started,
                                        written=snapshot.taken, config=self.cfg.path,
                                        track_dir=self.cfg.track_dir, snapshot=snapshot)
        try:
            self.status_writer(self.cfg.status_file, document)
        except OSError as exc:
            error = f"cannot write {self.cfg.status_file}: {exc.strerror or exc}"
            if error != self.status_error:  # once, not every second
                self.log(error, syslogger.LOG_ERR)
            self.status_error = error
        else:
            self.status_error = None
        return True

    def _status_wake(self, now):
        """When the status document is to be rewritten next (the clock's): a rewrite under
        way goes on at once; nothing changed, not in the next minute; news of a state (or
        the first document) at ``status_due``; routine results only, once a share of the
        checks have new ones (else ``STATUS_ROUTINE_MAX`` after the last rewrite), not
        before ``status_due``."""
        if self.taking is not None:
            return now
        if not self.status_dirty:
            return now + 60
        if self.status_urgent or self.status_fresh >= STATUS_ROUTINE_SHARE * len(
                self.snapshot.checks):
            return self.status_due
        return max(self.status_due, self.status_written + STATUS_ROUTINE_MAX)

    def _write_status(self, state="running"):
        """The status document now, whole (a reload's new set of checks, the stop): a
        rewrite under way is dropped, its checks copied again in this one."""
        taking = self.taking
        if taking is not None and taking.changed is not None and self.schedule is not None:
            with stats.LOCK:
                self.schedule.changed |= taking.changed
        self.taking = None
        self._begin_status()
        self._rewrite_status(state, limit=None)

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
