"""How a forked command ends when told to: SIGTERM, SIGINT or SIGHUP, at any moment.

keepalived sends SIGTERM at misc_timeout; a terminal sends SIGINT and, when
it closes, SIGHUP. Whenever one lands, a check must exit 1 with one line,
never die by the signal (no status line, no state, no log) and never print a
KeyboardInterrupt traceback. So the entry point calls ``install()`` before
anything else is imported; from then on a signal is only *recorded* (and a
watchdog started) until the command calls ``arm()`` at the point where it
can report; the first signal after that — or one recorded before — raises
``Stop`` there, once. Later signals are recorded only: the watchdog ends a
process that does not finish reporting within ``GRACE`` seconds.

What no Python code can cover: a signal in the first milliseconds after
exec, while the interpreter itself starts, ends the process by the signal
(keepalived counts that as a failure too) — unless whatever starts the
process blocks these signals across the exec (``env --block-signal=HUP,INT,TERM``):
``install()`` unblocks them, and one that came meanwhile is handled then.
"""

import _signal  # not ``signal``: its IntEnum wrappers import enum (~4 ms per forked check)
import faulthandler
import time

SIGNALS = {_signal.SIGTERM: "SIGTERM", _signal.SIGINT: "SIGINT", _signal.SIGHUP: "SIGHUP"}
GRACE = 0.3  # seconds a stopped command has to report before the watchdog ends it
# Seconds a blocking wait of the main thread (accept, recv, a lock) lasts at most before
# it goes round again. Python runs a signal's handler between two bytecodes of the main
# thread: one whose C handler ran just before the wait began, or on another thread,
# would wait for the wait to end (the next client, the child's exit code, the resolver).
# A wait that cannot poll ``wakeup_fd()`` is cut into waits this long instead.
WAKE = 0.5


class Stop(BaseException):
    """A terminating signal arrived. A BaseException, so that a library's
    ``except Exception`` cannot swallow it on its way to the guard."""

    def __init__(self, signum):
        super().__init__(f"terminated by {SIGNALS.get(signum, f'signal {signum}')}")
        self.signum = signum


_received: list[int] = []  # signal numbers, in order
_state = {"armed": False, "raised": False, "expires": None, "sink": None, "wake": None,
          "main": None}


def install():
    """Catch the terminating signals from now on (call before heavy imports)."""
    for signum in SIGNALS:
        _signal.signal(signum, _on_signal)
    if _state["wake"] is None:
        import _thread
        import os  # loaded at start-up already

        read, write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        _signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        _state["wake"], _state["main"] = read, _thread.get_ident()
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, SIGNALS)  # pending ones arrive now


def wakeup_fd():
    """A descriptor that turns readable when a signal arrives (Python's wakeup fd), for a
    wait of the main thread to include; None elsewhere, or before ``install()``.

    Python runs a handler between two bytecodes of the main thread. A signal that lands
    just before the main thread enters poll(2) — or on another thread — has its handler
    wait until poll returns: at the run's timeout. A poll that includes this descriptor
    returns at once instead; ``drain_wakeup()`` before polling again."""
    if _state["wake"] is None:
        return None
    import _thread

    return _state["wake"] if _thread.get_ident() == _state["main"] else None


def drain_wakeup():
    import os

    try:
        while os.read(_state["wake"], 64):
            pass
    except (BlockingIOError, TypeError):
        pass


def slices(end):
    """The timeouts of a wait until ``end`` (time.monotonic) cut into ``WAKE`` slices: one
    per round, each at least a millisecond (a socket's timeout of 0 would not wait); the
    rounds stop once ``end`` has passed."""
    while True:
        yield max(min(end - time.monotonic(), WAKE), 0.001)
        if time.monotonic() >= end:
            return


def _on_signal(signum, frame):
    _received.append(signum)
    stop = _state["armed"] and not _state["raised"]
    if stop:
        _state["raised"] = True  # first: a handler the watchdog's start runs only records
    if len(_received) == 1:
        watchdog(GRACE)
    if stop:
        raise Stop(signum)


def arm():
    """From here the first signal raises Stop; raises it now if one already came."""
    _state["armed"] = True
    if _received and not _state["raised"]:
        _state["raised"] = True
        raise Stop(_received[0])


def disarm():
    """Signals are recorded only again (the command is done reporting)."""
    _state["armed"] = False


def received():
    """The first terminating signal received, or None."""
    return _received[0] if _received else None


def watchdog(seconds):
    """Hard backstop: ``_exit(1)`` from a C thread ``seconds`` from now, unless an
    earlier one is already set. Fires even while the main thread is stuck in C
    (a resolver call, a library ignoring timeouts); its traceback goes to
    /dev/null: the contract promises none on screen."""
    expires = time.monotonic() + seconds
    if _state["expires"] is not None and _state["expires"] <= expires:
        return
    if _state["sink"] is None:
        import os

        _state["sink"] = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    start_deaf(_set_watchdog, seconds, expires)  # each call starts faulthandler's thread


def _set_watchdog(seconds, expires):
    faulthandler.dump_traceback_later(seconds, exit=True, file=_state["sink"])
    _state["expires"] = expires


def start_deaf(start, *args):
    """``start(*args)``, which starts a thread, with the terminating signals blocked: the
    thread is born deaf to them, and stays so unless it unblocks them itself.

    Python runs signal handlers in the main thread only. The kernel may hand a signal
    sent to the process to any thread that does not block it — a thread just started
    does not, until (like faulthandler's) it blocks them itself — and the main thread,
    asleep in poll(2) or on a lock, then sleeps on until the run's timeout: a check told
    to stop mid-probe that did not exit for 20 s. One sent while they are blocked here
    waits, and reaches the main thread as they are unblocked."""
    try:
        previous = _signal.pthread_sigmask(_signal.SIG_BLOCK, SIGNALS)
    except BaseException:  # a handler that ran as they were blocked raised: they flow again
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, SIGNALS)
        raise
    try:
        return start(*args)
    finally:
        _signal.pthread_sigmask(_signal.SIG_SETMASK, previous)
