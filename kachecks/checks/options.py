"""Options every check shares, declared once for all three, and their Target fields."""

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

# Options that only steer one command-line run; not fields of a Target.
RUN_ONLY = ("help", "version")


def common(ns):
    """The Target fields of the common options (kachecks.checks.target.Target)."""
    if ns.dynamic and ns.nagios:
        raise UsageError("--dynamic and --nagios exclude each other")
    return {opt.dest: getattr(ns, opt.dest) for opt in COMMON_OPTS if opt.dest not in RUN_ONLY}


__all__ = ["COMMON_OPTS", "common", "TLS_OPTS", "FLAG", "MULTI", "Opt", "seconds", "integer",
           "port_number"]
