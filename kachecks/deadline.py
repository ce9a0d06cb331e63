"""One total deadline for a whole run: resolve, connect, TLS, send, read.

Each blocking step asks ``remaining(phase)`` for its socket timeout, so the
sum of all steps can never exceed the budget, whatever the peer does
(black hole, one byte a second, accept-and-hang).
"""

import time

from kachecks.errors import DeadlineExceeded


class Deadline:
    __slots__ = ("timeout", "started", "expires")

    def __init__(self, timeout):
        self.timeout = float(timeout)
        self.started = time.monotonic()
        self.expires = self.started + self.timeout

    def remaining(self, phase):
        """Seconds left, or raise DeadlineExceeded naming ``phase``."""
        left = self.expires - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(phase, self.timeout)
        return left

    def elapsed(self):
        return time.monotonic() - self.started

    def expired_in(self, phase):
        """The DeadlineExceeded for ``phase`` (for socket.timeout handlers)."""
        return DeadlineExceeded(phase, self.timeout)
