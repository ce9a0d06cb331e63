"""Waiting for a condition, never for a guessed time: a loaded machine (2 cores, several
test runs at once) takes as long as it takes, and an idle one does not wait for nothing.

    wait_for(lambda: server.requests, 10, what="the check's request")
"""

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
