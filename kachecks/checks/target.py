"""What one check run is about, validated and frozen.

A check's ``parse(args)`` turns a command line into a Target subclass
(HttpTarget, TcpTarget, LdapTarget) once; its ``probe(target, deadline)``
only reads it. Frozen, so one target can be probed again and again, from
any thread, and what was validated is what runs. No dataclasses: that
import costs milliseconds per forked check.
"""

_FIELDS = {}


def fields_of(cls):
    """Every field of a Target class, base fields first."""
    names = _FIELDS.get(cls)
    if names is None:
        names = tuple(name for klass in reversed(cls.__mro__)
                      for name in getattr(klass, "__slots__", ()))
        _FIELDS[cls] = names
    return names


class Target:
    """The options every check shares (see kachecks.checks.options) and its peer.

    Subclasses add their fields as ``__slots__``; every field is given by
    keyword, none is optional, none can change afterwards.
    """

    __slots__ = ("host", "port", "timeout", "bind", "fwmark", "quiet", "verbose", "nagios",
                 "dynamic", "weight", "drain_file")

    def __init__(self, **fields):
        for name in fields_of(type(self)):
            try:
                object.__setattr__(self, name, fields.pop(name))
            except KeyError:
                raise TypeError(f"{type(self).__name__} needs {name}") from None
        if fields:
            raise TypeError(f"{type(self).__name__} has no field {', '.join(sorted(fields))}")

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    __delattr__ = __setattr__

    @property
    def identity(self):
        """``[192.168.8.101]:80``: the peer, as logs and syslog name it."""
        return f"[{self.host or '?'}]:{self.port or '?'}"

    def __repr__(self):  # never the fields: a target may hold a password
        return f"{type(self).__name__}({self.identity})"
