"""What the doctor reports: one finding per problem, compiler style.

``FILE:LINE: severity: code: message``, one a line, or the same fields as
JSON objects. The codes are a stable interface (scripts grep them); the
messages are for people.
"""

from kachecks.keepalivedconf import ERROR, WARNING  # one spelling: the reader's Notes use it

CODES = (
    "syntax",
    "limit",
    "digest-mismatch",
    "unreachable",
    "check-failed",
    "bad-option",
    "misc-timeout",
    "dynamic-mismatch",
    "misplaced-check",
    "not-executable",
    "script-security",
    "secret-on-argv",
    "agent-polarity",
    "agent-orphan",
    "agent-shared-fault",
    "agent-config",
    "pair-instance",
    "pair-advert",
    "pair-addresses",
    "pair-unicast",
    "pair-priority",
    "pair-services",
    "failover",
)


class Finding:
    """One problem at one place; ``line`` is None when no line applies."""

    __slots__ = ("file", "line", "severity", "code", "message")
    file: str
    line: int | None
    severity: str
    code: str
    message: str

    def __init__(self, file, line, severity, code, message):
        if code not in CODES:
            raise ValueError(f"unknown finding code {code!r}")
        if severity not in (ERROR, WARNING):
            raise ValueError(f"unknown severity {severity!r}")
        for name, value in zip(self.__slots__, (file, line, severity, code, message)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError("Finding is immutable")

    def __repr__(self):
        return f"Finding({self.text()!r})"

    def __eq__(self, other):
        return isinstance(other, Finding) and self.key() == other.key()

    def __hash__(self):
        return hash(self.key())

    def key(self):
        return (self.file, self.line, self.severity, self.code, self.message)

    def text(self):
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.severity}: {self.code}: {self.message}"

    def as_dict(self):
        return {"file": self.file, "line": self.line, "severity": self.severity,
                "code": self.code, "message": self.message}


def at(node, severity, code, message):
    """A finding at a configuration node (anything with ``file`` and ``line``)."""
    return Finding(node.file, node.line, severity, code, message)


def noted(config):
    """What the reader noted reading ``config`` (kachecks.keepalivedconf Notes: syntax,
    limit), as findings."""
    return [Finding(*note) for note in config.findings]
