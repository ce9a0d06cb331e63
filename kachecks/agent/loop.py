"""The agent's event loop: one epoll for the probes' sockets, the wake-up pipe and the
agent's own descriptors; calls handed in by other threads.

The main thread sleeps in ``poll(timeout)`` until a descriptor is ready or the
caller's next deadline (the schedule's next run, the status document's…): an
idle agent makes no system call but that one wait. Signals arrive through the
wake-up pipe (``signal.set_wakeup_fd(loop.wake_fd)``), and so do calls another
thread hands in (``call_soon_threadsafe``: a name resolved in a helper thread).

A probe's socket is watched edge-triggered (``watch``) for what the probe waits
for: one epoll_ctl per run (a second only if it waits the other way round: a TLS
handshake), none at the end (closing the socket takes it out of the epoll). Its
handler is called on an event; the probe retries its operation and waits again
if it still cannot go on, so a spurious event costs one retry, never a lost
wake-up (whatever becomes ready after the socket was added is reported).
"""

import collections
import os
import select

_READER = select.EPOLLIN


class Loop:
    def __init__(self):
        self._epoll = select.epoll()
        self._handlers = {}  # fd -> (callback, argument): called as callback(argument)
        self._calls = collections.deque()  # (callback, args) from other threads
        self._wake_r, self.wake_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._epoll.register(self._wake_r, _READER)

    def watch(self, sock, events, callback, argument):
        """Call ``callback(argument)`` when ``sock`` becomes ready for ``events`` (READ,
        WRITE: kachecks.net.steps) or fails, until it is closed or watched anew; returns
        its descriptor. Edge-triggered: whatever became ready since the last call is
        reported once."""
        fd = sock.fileno()
        try:
            self._epoll.register(fd, events | select.EPOLLET)
        except FileExistsError:  # the same descriptor, wrapped anew (TLS over TCP)
            self._epoll.modify(fd, events | select.EPOLLET)
        self._handlers[fd] = (callback, argument)
        return fd

    def rewatch(self, fd, events):
        """Wait for other ``events`` on a descriptor ``watch`` was given."""
        self._epoll.modify(fd, events | select.EPOLLET)

    def forget(self, fd, argument):
        """Stop calling back for ``fd`` if its handler still has ``argument`` (the socket is
        closed already, or about to be: the epoll forgets it by itself)."""
        handler = self._handlers.get(fd)
        if handler is not None and handler[1] is argument:
            del self._handlers[fd]

    def add_reader(self, fd, callback):
        """Call ``callback(fd)`` while ``fd`` is readable (level-triggered): the agent's own
        descriptors (the pair watch's sockets)."""
        try:
            self._epoll.register(fd, _READER)
        except FileExistsError:  # a probe's socket of that number, closed and forgotten late
            self._epoll.modify(fd, _READER)
        self._handlers[fd] = (callback, fd)

    def remove_reader(self, fd, callback):
        """Stop calling ``callback`` for ``fd``: only if ``add_reader`` gave it that callback
        (its socket may be closed already, and the number a probe's now)."""
        handler = self._handlers.get(fd)
        if handler is None or handler[0] != callback:
            return
        del self._handlers[fd]
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            pass  # closed already: the epoll forgot it

    def call_soon_threadsafe(self, callback, *args):
        """From any thread: ``callback(*args)`` in the loop's thread, at its next turn."""
        self._calls.append((callback, args))
        self.wake()

    def wake(self):
        """From any thread (or a signal handler): end the current or next ``poll`` now."""
        try:
            os.write(self.wake_fd, b"\0")
        except OSError:
            pass  # full: a wake-up is pending anyway

    def poll(self, timeout):
        """Wait up to ``timeout`` seconds (None: no limit; 0: do not wait) and run the
        callbacks of whatever is ready. Returns the number of events."""
        try:
            events = self._epoll.poll(-1 if timeout is None else max(timeout, 0.0))
        except InterruptedError:
            return 0
        handlers = self._handlers
        for fd, _events in events:
            if fd == self._wake_r:
                self._drain()
                continue
            handler = handlers.get(fd)
            if handler is not None:
                handler[0](handler[1])
        calls = self._calls
        while calls:
            callback, args = calls.popleft()
            callback(*args)
        return len(events)

    def _drain(self):
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self):
        """Stop polling. The wake-up pipe stays open: a thread still running must never
        write into a descriptor number reused for something else."""
        self._handlers.clear()
        self._epoll.close()
