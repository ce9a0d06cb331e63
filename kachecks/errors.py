"""The few exception types that cross module boundaries, with their fields declared.

Every failure a check can meet is one of these, so the verdict and the
guard (kachecks.runtime) map it to an exit code without guessing, and
genhash maps a ProbeFailure's ``phase``/``reason``/``over_tls`` to
keepalived's own words without reading attributes nobody declared.
"""


class KachecksError(Exception):
    """Base: a failure with a message meant for a person, one line."""

    @property
    def lines(self):
        """What the guard prints, one line each (a configuration's every mistake)."""
        return (str(self),)


class UsageError(KachecksError):
    """Bad command line or unusable configuration (a check exits 1)."""


class CommandFailed(KachecksError):
    """What a command (agent, doctor, notify, spool…) could not do, said in one line:
    the guard adds the program's name and returns ExitCode.FAILURE."""


class Unavailable(KachecksError):
    """What a command needs from this machine is missing (a privilege, an
    interface): it cannot look, which says nothing about what it would have
    seen (a check exits 1; UNKNOWN under --nagios)."""


class WorkerError(KachecksError):
    """``kachecks worker`` took a check's run and then broke the protocol (no exit
    code, or one the check cannot return): the outcome is unknown, an error."""


class OutputLost(KachecksError):
    """Standard output cannot take what a command exists to print (closed,
    full disk, broken pipe). Only such commands raise it (genhash prints a
    digest); a check's status line is best effort: its exit code is its
    output."""


class ProbeFailure(KachecksError):
    """The peer was reached (or not) and is unhealthy.

    ``phase``: where it happened (resolve, connect, tls, send, wait, read,
    status, digest...), so the message can say it.
    ``reason``: a stable keyword for the cause where callers branch on it
    (net.connect: refused, unreachable, resolve, bind, fwmark, error;
    net.tls: handshake, verify, config; timeout for DeadlineExceeded).
    ``over_tls``: the exchange was inside TLS (keepalived words some TLS
    failures differently).
    ``code``: the cause code (kachecks.checks.result: L7STS, L7RSP…) where the
    raiser knows better than its phase says; None: implied by phase and reason
    (``result.cause_of``).
    """

    def __init__(self, message, phase=None, reason=None, over_tls=False, code=None):
        super().__init__(message)
        self.phase = phase
        self.reason = reason
        self.over_tls = over_tls
        self.code = code


class DeadlineExceeded(ProbeFailure):
    """The total --timeout ran out during ``phase``."""

    def __init__(self, phase, timeout, over_tls=False):
        super().__init__(f"timeout after {timeout:g} s during {phase}", phase, "timeout", over_tls)
        self.timeout = timeout


def os_error_text(exc):
    """The short cause of an OSError/SSLError: OpenSSL's reason, else strerror."""
    return getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
