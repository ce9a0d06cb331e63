"""Waiting for a condition, never for a guessed time: a loaded machine (2 cores, several
test runs at once) takes as long as it takes, and an idle one does not wait for nothing.

    wait_for(lambda: server.requests, 10, what="the check's request")
"""

import os
import time


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    """Poll ``predicate`` until truthy; return its value or raise TimeoutError."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= end:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def blocked(pid):
    """True while process ``pid`` (its main thread) is blocked in the kernel: state S or D
    in /proc/PID/stat, waiting for a peer, a lock or a timer; False while it runs or once
    it is gone. After "it connected", "it is blocked" means "it waits for the answer"."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rpartition(b")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state in (b"S", b"D")


def holds_open(pid, path):
    """True once process ``pid`` has file ``path`` open (it reached the lock it waits
    at, say); False while it has not, or once it is gone."""
    wanted = os.path.realpath(path)
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == wanted:
                return True
        except FileNotFoundError:
            continue  # closed meanwhile
    return False
