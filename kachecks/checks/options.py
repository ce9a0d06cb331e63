"""Options every check shares, declared once for all three, and the Target they make.

A check's ``parse(args)`` turns a command line into a Target subclass
(HttpTarget, TcpTarget, LdapTarget) once; its ``probe(target, deadline)``
only reads it. Frozen, so one target can be probed again and again, from
any thread, and what was validated is what runs. No dataclasses: that
import costs milliseconds per forked check.
"""

from kachecks.argspec import FLAG, MAX_FWMARK, MULTI, Opt, decimal, integer, seconds
from kachecks.errors import UsageError

MAX_WEIGHT_BASE = 65535  # keepalived's real_server weight range
MAX_DAYS = 36500


def fwmark_value(text):
    value = decimal(text)
    if value < 0:
        raise ValueError(f"expected a non-negative integer, got {text!r}")
    if value > MAX_FWMARK:
        raise ValueError(f"a firewall mark is 32 bits, got {text!r}")
    return value


def compile_option(option, text, needs_group=False):
    """``text`` (a user's regular expression) as a compiled bytes pattern, None for None.

    Patterns run over raw bytes (bodies, banners); ``re`` is imported only by
    runs that use one; bad syntax is one clear usage error.
    """
    if text is None:
        return None
    import re

    try:
        pattern = re.compile(text.encode("utf-8", "surrogateescape"), re.MULTILINE)
    except re.error as exc:
        raise UsageError(f"{option}: bad regular expression: {exc}") from None
    if needs_group and pattern.groups < 1:
        raise UsageError(f"{option} needs a capture group, e.g. 'weight=(\\d+)'")
    return pattern


def threshold(text):
    """-w/-c RANGE: a kachecks.checks.thresholds.Range (loaded only when given)."""
    from kachecks.checks.thresholds import Range

    return Range(text)


def port_number(text):
    value = decimal(text)
    if not 1 <= value <= 65535:
        raise ValueError(f"port must be 1-65535, got {text!r}")
    return value


COMMON = "Common options"
DYNAMIC = "Dynamic weight (misc_dynamic) and drain"
TLS = "TLS"

COMMON_OPTS = [
    Opt("timeout", "t", "timeout", metavar="SECONDS", default=5.0, convert=seconds,
        help="deadline for the whole run: resolve, connect, TLS, request, read", section=COMMON),
    Opt("bind", None, "bind", metavar="ADDR", help="source address to connect from", section=COMMON),
    Opt("fwmark", None, "fwmark", metavar="N", convert=fwmark_value,
        help="set SO_MARK on the socket (like keepalived's fwmark)", section=COMMON),
    Opt("quiet", "q", "quiet", kind=FLAG, help="do not log state changes to syslog", section=COMMON),
    Opt("verbose", "v", "verbose", kind=FLAG, help="print details after the status line", section=COMMON),
    Opt("nagios", None, "nagios", kind=FLAG,
        help="monitoring-plugin exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN", section=COMMON),
    Opt("warning", "w", "warning", metavar="RANGE", convert=threshold,
        help="with --nagios: WARNING when the main figure is outside RANGE (10, 10:, ~:10,"
             " 10:20; @10:20 for inside): the response time in seconds, or the replication"
             " lag with kachecks-ldap --provider", section=COMMON),
    Opt("critical", "c", "critical", metavar="RANGE", convert=threshold,
        help="with --nagios: CRITICAL when that figure is outside RANGE", section=COMMON),
    Opt("help", "h", "help", kind=FLAG, help="show this help and exit", section=COMMON),
    Opt("version", None, "version", kind=FLAG, help="print the version and exit", section=COMMON),
    Opt("dynamic", None, "dynamic", kind=FLAG,
        help="exit 2+weight when healthy, for MISC_CHECK misc_dynamic (1 still means down)",
        section=DYNAMIC),
    Opt("weight", None, "weight", metavar="N", default=1, convert=integer(0, MAX_WEIGHT_BASE),
        help="weight when healthy, and the base of percentages (default 1)", section=DYNAMIC),
    Opt("drain_file", None, "drain-file", metavar="PATH",
        help="while PATH exists report drain: exit 2 with --dynamic (weight 0), else 1",
        section=DYNAMIC),
]

TLS_OPTS = [
    Opt("tls_verify", None, "tls-verify", kind=FLAG,
        help="verify the server certificate against the system store (default: no verification,"
             " like keepalived's SSL_GET)", section=TLS),
    Opt("ca_file", None, "ca-file", metavar="FILE",
        help="verify the server certificate against this CA (implies --tls-verify)", section=TLS),
    Opt("client_cert", None, "client-cert", metavar="FILE", help="client certificate (PEM)",
        section=TLS),
    Opt("client_key", None, "client-key", metavar="FILE", help="client private key (PEM)",
        section=TLS),
    Opt("cert_min_days", None, "cert-min-days", metavar="N", convert=integer(0, MAX_DAYS),
        help="log a warning when the server certificate expires within N days"
             " (fails only with --nagios, as WARNING)", section=TLS),
]
SNI_NAME_OPT = Opt("sni_name", None, "sni-name", metavar="NAME",
                   help="send NAME as SNI; with verification, the name the certificate must carry",
                   section=TLS)

# Options that only steer one command-line run; not fields of a Target.
RUN_ONLY = ("help", "version")


def common(ns):
    """The Target fields of the common options; a check that does not offer one of them
    (kachecks-vrrp: no --bind) gets its default."""
    fields = {opt.dest: getattr(ns, opt.dest, opt.default) for opt in COMMON_OPTS
              if opt.dest not in RUN_ONLY}
    if fields["dynamic"] and fields["nagios"]:
        raise UsageError("--dynamic and --nagios exclude each other")
    if (fields["warning"] or fields["critical"]) and not fields["nagios"]:
        raise UsageError("-w/-c are Icinga/Nagios thresholds: they need --nagios")
    return fields


def tls_fields(ns, enabled, needs, sni=None, default_sni=None):
    """The ``tls`` and ``cert_min_days`` fields of a target.

    ``enabled``: the target speaks TLS, and kachecks.checks.tlsopts builds a
    kachecks.net.tls.TLSOptions sending ``sni or default_sni`` (loaded only
    then: a plain check is forked without it). Otherwise any TLS option (or
    an SNI name) is a usage error saying it ``needs`` something.
    """
    if enabled:
        from kachecks.checks import tlsopts

        return tlsopts.fields(ns, sni or default_sni)
    if (ns.tls_verify or ns.ca_file or ns.client_cert or ns.client_key
            or ns.cert_min_days is not None or sni):
        raise UsageError(f"TLS options need {needs}")
    return {"tls": None, "cert_min_days": None}


_FIELDS: "dict[type, tuple[str, ...]]" = {}


def fields_of(cls):
    """Every field of a Target class, base fields first."""
    names = _FIELDS.get(cls)
    if names is None:
        names = ()
        for klass in reversed(cls.__mro__):
            names += getattr(klass, "__slots__", ())
        _FIELDS[cls] = names
    return names


class Target:
    """The peer and the common options (COMMON_OPTS) of one check run; frozen.

    Subclasses add their fields as ``__slots__``; every field is given by
    keyword, none is optional, none can change afterwards.
    """

    __slots__ = ("host", "port") + tuple(o.dest for o in COMMON_OPTS if o.dest not in RUN_ONLY)

    def __init__(self, **fields):
        names = fields_of(type(self))
        if fields.keys() != set(names):
            missing = [name for name in names if name not in fields]
            if missing:
                raise TypeError(f"{type(self).__name__} needs {missing[0]}")
            extra = sorted(set(fields) - set(names))
            raise TypeError(f"{type(self).__name__} has no field {', '.join(extra)}")
        for name in names:
            object.__setattr__(self, name, fields[name])

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    __delattr__ = __setattr__  # type: ignore[assignment]

    @property
    def identity(self):
        """``[192.168.8.101]:80``: the peer, as logs and syslog name it."""
        return f"[{self.host or '?'}]:{self.port or '?'}"

    def __repr__(self):  # never the fields: a target may hold a password
        return f"{type(self).__name__}({self.identity})"


__all__ = ["COMMON_OPTS", "TLS_OPTS", "SNI_NAME_OPT", "Target", "common", "tls_fields",
           "compile_option", "FLAG", "MULTI", "Opt", "seconds", "integer", "port_number"]
