"""Probes as step machines: written once, driven blocking (a forked run) or by an event loop.

A probe's network code is a generator over non-blocking sockets. Where a call
would block it yields what it waits for, and is resumed when that is ready:

- ``(sock, READ)`` / ``(sock, WRITE)``: the socket's readiness (``wait``);
- ``PAUSE`` (None): nothing, but let others run first (a long body read without
  ever waiting must not hold an event loop);
- an ``Offload``: a call that blocks in a library (getaddrinfo), to run in a thread;
  the generator is resumed with its return value, or its exception thrown in.

Running out of time is thrown in at the yield as TimeoutError; the code that
yielded turns it into the DeadlineExceeded of its phase (``wait`` does), exactly
what a blocking socket call under the same deadline would have raised.

Two drivers, one probe:

- ``run(steps, deadline)`` here: the calling thread waits (poll(2), the deadline's
  remaining time); what kachecks-http, kachecks-tcp, genhash and the doctor use;
- the agent's event loop (kachecks.agent.runner): one thread, thousands of probes.

Cheap to import: built-in modules only (a forked check loads it on every run).
"""

import time

READ = 1  # POLLIN == EPOLLIN
WRITE = 4  # POLLOUT == EPOLLOUT
PAUSE = None
CHUNK = 1 << 18  # bytes a stream reads without waiting before it yields PAUSE


class Offload:
    """``call(*args)`` in another thread; the steps resume with its result."""

    __slots__ = ("call", "args")

    def __init__(self, call, *args):
        self.call = call
        self.args = args

    def block(self, deadline):
        """Run it in a helper thread within ``deadline``: (value, exception); a call still
        running when the deadline ends gives TimeoutError (the thread is left to finish)."""
        import _thread

        box = []
        done = _thread.allocate_lock()
        done.acquire()

        def call():
            try:
                box.append((self.call(*self.args), None))
            except Exception as exc:  # handed to the steps
                box.append((None, exc))
            finally:
                done.release()

        from kachecks import interrupt  # loaded by the entry point already

        interrupt.start_deaf(_thread.start_new_thread, call, ())
        # in interrupt.WAKE slices: a signal's pending handler runs between two of them
        for timeout in interrupt.slices(deadline.expires):
            if done.acquire(timeout=timeout):
                return box[0]
        return None, TimeoutError()


def wait(sock, events, expired):
    """Steps that wait until ``sock`` is ready for ``events``; ``expired()`` makes the
    exception to raise when the deadline ends first."""
    try:
        yield (sock, events)
    except TimeoutError:
        raise expired() from None


def run(steps, deadline):
    """Drive ``steps`` to their end in this thread; their return value.

    Waits with poll(2) on what they wait for, until ``deadline`` (a
    kachecks.deadline.Deadline) ends: then TimeoutError is thrown in.
    """
    value = error = None
    try:
        while True:
            try:
                wanted = steps.send(value) if error is None else steps.throw(error)
            except StopIteration as done:
                return done.value
            value = error = None
            if wanted is PAUSE:
                continue
            if type(wanted) is tuple:
                if not _ready(wanted, deadline):
                    error = TimeoutError()
                continue
            value, error = wanted.block(deadline)
    finally:
        steps.close()


def _ready(wanted, deadline):
    """Block until the socket is ready (True) or the deadline ends (False)."""
    import select  # built in: no file to load

    from kachecks import interrupt  # loaded by the entry point already

    sock, events = wanted
    poller = select.poll()
    poller.register(sock, events)
    wake = interrupt.wakeup_fd()  # a signal's handler runs now, not at the timeout
    if wake is not None:
        poller.register(wake, select.POLLIN)
    while True:
        left = deadline.expires - time.monotonic()
        if left <= 0:
            return False
        # rounded up: poll(2) counts milliseconds, and waking a hair early would only
        # cost one more round
        ready = poller.poll(left * 1000 + 1)
        if any(fd != wake for fd, _ in ready):
            return True
        if ready:  # a signal only: its handler ran (Stop raised) or just recorded it
            interrupt.drain_wakeup()
