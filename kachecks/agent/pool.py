"""Threads for probe runs: one per run in flight, started on demand, reused, retired.

The probes are blocking code (sockets under a deadline, ldap3), so every run
needs a thread while it waits. A fixed-size pool would let a few hung peers
hold every thread and delay healthy checks; here a run never waits for a
thread: an idle one takes it, or a new one starts. The number of threads is
bounded by the agent, which never has more than one run in flight per check.
Idle threads above ``keep`` retire after ``idle_timeout`` seconds, so a burst
of hung peers does not leave hundreds of threads behind.
"""

import queue
import threading


class Pool:
    def __init__(self, keep=4, idle_timeout=30.0, name="kachecks-probe"):
        self.keep = keep
        self.idle_timeout = idle_timeout
        self.name = name
        self._lock = threading.Lock()
        self._idle = []  # LIFO: the most recently used thread is reused first
        self._threads = 0
        self._started = 0
        self._closed = False

    @property
    def size(self):
        """Threads alive (busy + idle)."""
        return self._threads

    @property
    def idle(self):
        """Threads waiting for a run (the next ``submit`` takes one instead of starting one)."""
        return len(self._idle)

    def submit(self, fn, *args):
        """Run ``fn(*args)`` in a thread now; never queues behind another run."""
        with self._lock:
            if self._closed:
                raise RuntimeError("pool closed")
            if self._idle:
                slot = self._idle.pop()
                slot.put((fn, args))
                return
            self._threads += 1
            self._started += 1
            number = self._started
        slot = queue.SimpleQueue()
        slot.put((fn, args))
        thread = threading.Thread(target=self._work, args=(slot,), daemon=True,
                                  name=f"{self.name}-{number}")
        try:
            thread.start()
        except BaseException:
            with self._lock:
                self._threads -= 1
            raise

    def _work(self, slot):
        while True:
            try:
                job = slot.get(timeout=self.idle_timeout)
            except queue.Empty:
                with self._lock:
                    if slot in self._idle and (self._threads > self.keep or self._closed):
                        self._idle.remove(slot)
                        self._threads -= 1
                        return
                continue  # kept, or handed a job in the same instant: look again
            if job is None:
                with self._lock:
                    self._threads -= 1
                return
            fn, args = job
            try:
                fn(*args)
            except BaseException:  # noqa: BLE001 - the caller's fn reports its own errors
                pass
            del job, fn, args
            with self._lock:
                if self._closed:
                    self._threads -= 1
                    return
                self._idle.append(slot)

    def close(self):
        """Idle threads exit now, busy ones when their run ends (daemon threads: never waited for)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for slot in idle:
            slot.put(None)
