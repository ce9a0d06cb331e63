"""The few exception types that cross module boundaries.

Every failure a check can meet is one of these, so the guarded entry point
(kachecks.checks.contract) can map it to an exit code without guessing.
"""


class KachecksError(Exception):
    """Base: a failure with a message meant for a person, one line."""


class UsageError(KachecksError):
    """Bad command line or unusable configuration (a check exits 1)."""


class ProbeFailure(KachecksError):
    """The peer was reached (or not) and is unhealthy.

    ``phase`` names where it happened (resolve, connect, tls, send, read,
    status, digest...), so the message can say it.
    """

    def __init__(self, message, phase=None):
        super().__init__(message)
        self.phase = phase


class DeadlineExceeded(ProbeFailure):
    """The total --timeout ran out during ``phase``."""

    def __init__(self, phase, timeout):
        super().__init__(f"timeout after {timeout:g} s during {phase}", phase)
        self.timeout = timeout
