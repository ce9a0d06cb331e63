"""Threads for probe runs: a few warm ones taking runs in turn, more when one hangs.

The probes are blocking code (sockets under a deadline, ldap3), so every run
needs a thread while it waits. Runs come in batches (the schedule hands out
every run due within its slack at once), and one thread per run of a batch
would set them all on the interpreter lock at the same time: every socket call
of every run (an LDAP run makes about fifteen) hands the lock to another
thread and back, some thirty context switches per run, which cost as much CPU
as the probe itself. So runs wait in a queue, and the thread that finishes one
takes the next at once: a batch runs back to back on one warm thread.

A fixed-size pool would let a few hung peers hold every thread and delay
healthy checks; here no run waits for a thread past its start-by time: its due
time (the schedule hands runs out up to its slack early), or ``grace`` after it
was queued if that is later. While runs are queued, one idle thread stands by
and takes the oldest run itself at that time, the threads ahead of it being
busy (maybe with a peer that never answers); a new thread starts when none is
idle. So a hung peer never makes a run late, or ``grace`` late when the run was
due already. Idle threads
above ``keep`` retire after ``idle_timeout`` seconds, so a burst of hung peers
does not leave hundreds of threads behind.
"""

import collections
import threading
import time

GRACE = 0.010  # seconds a run due already may wait for a busy thread before one more takes it


class Pool:
    def __init__(self, keep=4, idle_timeout=30.0, name="kachecks-probe", grace=GRACE,
                 clock=time.monotonic):
        self.keep = keep
        self.idle_timeout = idle_timeout
        self.name = name
        self.grace = grace
        self.clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._jobs: collections.deque = collections.deque()  # (start by, fn, args), oldest first
        self._threads = 0
        self._idle = 0  # threads waiting for a run
        self._standby = 0  # of them, those timing the oldest queued run's grace
        self._busy = 0
        self._started = 0
        self._closed = False

    @property
    def size(self):
        """Threads alive (busy + idle)."""
        return self._threads

    @property
    def idle(self):
        """Threads waiting for a run."""
        return self._idle

    @property
    def queued(self):
        """Runs waiting for a thread (each until its start-by time at most)."""
        return len(self._jobs)

    def submit(self, fn, *args, due=None):
        """Run ``fn(*args)`` in a thread: at once when none is busy, else after the runs
        queued before it, but by ``due`` (``clock`` time) or ``grace`` from now, whichever
        is later, whatever the busy threads do."""
        with self._lock:
            if self._closed:
                raise RuntimeError("pool closed")
            jobs = self._jobs
            start_by = self.clock() + self.grace
            job = (start_by if due is None or due < start_by else due, fn, args)
            jobs.append(job)
            if len(jobs) > 1:
                return  # a thread times the older runs already, and this one after them
            start = self._watch()
        if start:
            try:
                self._start()
            except BaseException:
                with self._lock:
                    for i, queued in enumerate(self._jobs):
                        if queued is job:  # not taken meanwhile: the caller fails it
                            del self._jobs[i]
                            raise

    def _watch(self):
        """With the lock held and a run queued: make sure a thread takes it in time.
        True: no thread is idle, start one (after releasing the lock)."""
        if self._standby:
            return False  # it wakes by the oldest run's start-by time and looks again
        if self._idle:
            self._wake.notify()
            return False
        self._threads += 1
        return True

    def _start(self):
        self._started += 1
        thread = threading.Thread(target=self._work, daemon=True,
                                  name=f"{self.name}-{self._started}")
        try:
            thread.start()
        except BaseException:
            with self._lock:
                self._threads -= 1
            raise

    def _work(self):
        finished = False
        while True:
            start = False
            with self._lock:
                if finished:
                    self._busy -= 1
                job = self._take(finished)
                if job is None:
                    self._threads -= 1
                    return
                self._busy += 1
                if self._jobs:
                    start = self._watch()
            if start:
                try:
                    self._start()
                except RuntimeError:  # no thread to be had (a task limit): the queued runs
                    pass  # go to the next thread that is free (submit's caller hears of it)
            _, fn, args = job
            try:
                fn(*args)
            except BaseException:  # noqa: BLE001 - the caller's fn reports its own errors
                pass
            del job, fn, args
            finished = True

    def _take(self, finished):
        """With the lock held: the next run for this thread, or None when it retires.
        A thread that has just finished a run takes the next at once (runs back to back);
        an idle one, when no thread is busy or the oldest run's start-by time has come."""
        jobs = self._jobs
        while True:
            if jobs:
                now = self.clock()
                due = jobs[0][0]
                if finished or not self._busy or due <= now:
                    return jobs.popleft()
                self._idle += 1
                self._standby += 1
                self._wake.wait(due - now)
                self._standby -= 1
                self._idle -= 1
                continue
            if self._closed:
                return None
            self._idle += 1
            woken = self._wake.wait(self.idle_timeout)
            self._idle -= 1
            if not woken and not jobs and (self._threads > self.keep or self._closed):
                return None
            finished = False

    def close(self):
        """Idle threads exit now, busy ones once the queue is empty (daemon threads: never
        waited for)."""
        with self._lock:
            self._closed = True
            self._wake.notify_all()
