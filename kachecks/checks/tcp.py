"""``kachecks-tcp``: connect, optionally PROXY header, TLS, send, expect, agent (docs/checks.md).

The probe reads only as much as its tests need: until every pattern has
matched (--expect, --weight-regex) or the agent line is complete, or EOF,
--max-bytes, or the deadline. A plain connect check sends nothing at all.
"""

import sys
import time

from kachecks.argspec import FLAG, Opt
from kachecks.checks.contract import Check, run
from kachecks.checks.options import (SNI_NAME_OPT, TLS, TLS_OPTS, Target, common, compile_option,
                                     integer, port_number, seconds, tls_fields)
from kachecks.checks.result import (DRAIN, L4OK, L4TOUT, L6OK, L6TOUT, L7OK, L7RSP, L7TOUT,
                                    Cause, Result)
from kachecks.errors import ProbeFailure, UsageError

TARGET = "Target and exchange"
WEIGHT = "Dynamic weight (misc_dynamic) and drain"
MAX_BYTES = 1 << 30  # --max-bytes: what the probe may hold in memory

OPTS = [
    Opt("host", "H", "host", metavar="HOST", aliases="I", section=TARGET,
        help="IPv4/IPv6 literal or name to connect to (-H, -I: check_tcp's spellings)"),
    Opt("port", "p", "port", metavar="PORT", convert=port_number, help="TCP port", section=TARGET),
    Opt("send", None, "send", metavar="STRING",
        help="send STRING after connecting; C escapes work: \\r \\n \\t \\0 \\xHH \\NNN \\\\",
        section=TARGET),
    Opt("expect", "e", "expect", metavar="RE",
        help="regular expression the reply must match (read until match, EOF, --max-bytes"
             " or the deadline)", section=TARGET),
    Opt("max_bytes", None, "max-bytes", metavar="N", default=16384, convert=integer(1, MAX_BYTES),
        help="read at most N bytes when looking for --expect/--weight-regex/agent reply",
        section=TARGET),
    Opt("max_latency", None, "max-latency", metavar="SECONDS", convert=seconds,
        help="fail when the whole exchange takes longer", section=TARGET),
    Opt("proxy_v1", None, "proxy-v1", kind=FLAG,
        help="send a PROXY protocol v1 header first (text: PROXY TCP4 …)", section=TARGET),
    Opt("proxy_v2", None, "proxy-v2", kind=FLAG,
        help="send a PROXY protocol v2 header first (binary)", section=TARGET),
    Opt("tls", "S", "tls", kind=FLAG, help="do a TLS handshake (then --send/--expect go over TLS)",
        section=TLS),
    SNI_NAME_OPT,
    *TLS_OPTS,
    Opt("agent", None, "agent", kind=FLAG,
        help="HAProxy agent-check: read one reply line (up, down, drain, maint, NN%);"
             " down/maint fail, drain and 0% give weight 0, NN% is relative to --weight",
        section=WEIGHT),
    Opt("weight_regex", None, "weight-regex", metavar="RE",
        help="weight from the first capture group of RE over the reply (integer or NN%)",
        section=WEIGHT),
]

USAGE = "[OPTIONS] {--host HOST --port PORT | HOST:PORT}"

DESCRIPTION = """\
TCP health check for keepalived's MISC_CHECK and vrrp_script: connect within the
deadline, optionally send a PROXY protocol header, handshake TLS, send a string and
match the reply, or read a HAProxy agent-check reply as a dynamic weight.

Exit codes: 0 healthy; 1 unhealthy, timed out, refused, bad option, internal error
(never 2); with --dynamic 2+weight when healthy (weight 0..253); with --nagios
0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""

EPILOG = r"""Examples (reference deployment):
  kachecks-tcp 192.168.8.101:80
  kachecks-tcp --host 192.168.8.102 --port 80 --send 'HEAD / HTTP/1.0\r\n\r\n' \
      --expect '^HTTP/1\.[01] 200'
  kachecks-tcp --host 192.168.8.101 --port 389 --timeout 2
  kachecks-tcp --host 192.168.8.101 --port 443 --tls --ca-file /etc/ssl/mysite-ca.pem \
      --sni-name www.mysite.mydmn.org --cert-min-days 14
  kachecks-tcp --host 192.168.8.101 --port 9777 --agent --dynamic --weight 10
                                        # agent "up 50%" -> exit 7 (weight 5)
  kachecks-tcp --host 192.168.8.101 --port 80 --proxy-v2

keepalived.conf:
  real_server 192.168.8.101 80 {
      MISC_CHECK {
          misc_path "/usr/bin/kachecks-tcp --host 192.168.8.101 --port 9777 --agent --dynamic --weight 10 --timeout 2"
          misc_timeout 3
          misc_dynamic
      }
  }
"""


class TcpTarget(Target):
    """One TCP exchange: [PROXY header] [TLS] [send] [read until the tests are answered].

    ``proxy``: PROXY protocol version to send first (0: none); ``tls``:
    kachecks.net.tls.TLSOptions or None; ``payload``: bytes to send (escapes
    decoded) or None; ``expect``/``weight_regex``: the option texts, compiled
    in ``expect_pattern``/``weight_pattern``.
    """

    __slots__ = ("proxy", "tls", "cert_min_days", "payload", "expect", "expect_pattern",
                 "weight_regex", "weight_pattern", "agent", "max_bytes", "max_latency")


def build(ns):
    """The TcpTarget for parsed options; UsageError when they do not fit together."""
    base = common(ns)
    host, port = ns.host, ns.port
    if ns.args:
        if host or port:
            raise UsageError("give either HOST:PORT or --host/--port, not both")
        from kachecks.net.connect import split_hostport

        try:
            host, port = split_hostport(ns.args[0])
        except ValueError:
            raise UsageError(f"bad HOST:PORT {ns.args[0]!r}") from None
        if port is None:
            raise UsageError(f"{ns.args[0]!r} has no port: use HOST:PORT")
        if not 1 <= port <= 65535:
            raise UsageError(f"port must be 1-65535, got {port}")
    if not host:
        raise UsageError("no target: give --host HOST --port PORT or HOST:PORT")
    if port is None:
        raise UsageError("--port is required")
    if ns.proxy_v1 and ns.proxy_v2:
        raise UsageError("--proxy-v1 and --proxy-v2 exclude each other")
    tls = tls_fields(ns, ns.tls, "--tls", ns.sni_name)
    payload = None
    if ns.send is not None:
        from kachecks.checks import escapes

        payload = escapes.decode(ns.send)
    return TcpTarget(
        **base, **tls, host=host, port=port, proxy=1 if ns.proxy_v1 else 2 if ns.proxy_v2 else 0,
        payload=payload, expect=ns.expect, expect_pattern=compile_option("--expect", ns.expect),
        weight_regex=ns.weight_regex,
        weight_pattern=compile_option("--weight-regex", ns.weight_regex, needs_group=True),
        agent=ns.agent, max_bytes=ns.max_bytes, max_latency=ns.max_latency)


def probe(target, deadline):
    """Connect and talk to ``target``: a Result, or ProbeFailure naming the failed test."""
    from kachecks.net.steps import run

    return run(steps(target, deadline), deadline)


def steps(target, deadline):
    """``probe`` as steps (kachecks.net.steps): what the agent's event loop runs."""
    from kachecks.net import connect as net

    started = time.monotonic()
    sock, family, sockaddr = yield from net.connect_steps(target.host, target.port, deadline,
                                                          bind=target.bind, fwmark=target.fwmark)
    where = net.format_address(family, sockaddr)
    connected = time.monotonic() - started
    notes = [f"{where} connected in {connected:.3f} s"]
    warning = ""
    patterns = tuple(p for p in (target.expect_pattern, target.weight_pattern) if p is not None)
    try:
        if target.proxy:
            from kachecks.net import proxy

            yield from net.Stream(sock, deadline).send(proxy.header(target.proxy, sock, family),
                                                       "proxy")
        if target.tls is not None:
            from kachecks.checks import tlsopts
            from kachecks.net import tls

            sock = yield from tls.handshake(sock, family, target.tls, deadline)
            notes.append(sock.version() or "TLS")
            warning = tlsopts.expiry_warning(target.cert_min_days, tls.peer_cert_days_left(sock))
        stream = net.Stream(sock, deadline, over_tls=target.tls is not None)
        if target.payload:
            yield from stream.send(target.payload)
        reply = (yield from _read(stream, target, patterns)) if (patterns or target.agent) \
            else b""
    finally:
        sock.close()
    elapsed = time.monotonic() - started
    weight, drain = None, False
    if target.expect_pattern is not None:
        if not target.expect_pattern.search(reply):
            raise ProbeFailure(f"{where}: expect '{target.expect}' not found in {_show(reply)}",
                               "expect", code=L7RSP)
        notes.append(f"expect '{target.expect}' matched")
    if target.agent:
        from kachecks.checks.weight import parse_agent_reply

        line = reply.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        weight, drain = parse_agent_reply(line, target.weight)
        notes.append(f"agent {line!r}")
    if target.weight_pattern is not None:
        weight = _regex_weight(target, reply)
    healthy, too_slow = _codes(target)
    if target.max_latency is not None and elapsed > target.max_latency:
        raise ProbeFailure(f"{where}: latency {elapsed:.3f} s over {target.max_latency:g} s",
                           "latency", "latency", code=too_slow)
    notes[0] = f"{where} answered in {elapsed:.3f} s" if reply else notes[0]
    return Result(True, summary=", ".join(notes), weight=weight, drain=drain, warning=warning,
                  perfdata=(("time", round(elapsed, 6), "s"), ("size", len(reply), "B")),
                  details=(f"received: {_show(reply)}",) if reply else (),
                  cause=Cause(DRAIN, "agent", "drain") if drain else Cause(healthy))


def _codes(target):
    """(healthy, too slow) codes of the deepest layer a run checks: a reply judged (7),
    a TLS handshake (6), a connection (4)."""
    if target.expect_pattern is not None or target.weight_pattern is not None or target.agent:
        return L7OK, L7TOUT
    return (L6OK, L6TOUT) if target.tls is not None else (L4OK, L4TOUT)


def _regex_weight(target, reply):
    from kachecks.checks.weight import parse_weight

    found = target.weight_pattern.search(reply)
    if not found or found.group(1) is None:
        raise ProbeFailure(f"--weight-regex '{target.weight_regex}' found no weight", "weight",
                           code=L7RSP)
    return parse_weight(found.group(1).decode("utf-8", "replace"), target.weight, "--weight-regex")


def _read(stream, target, patterns):
    """Steps: bytes until every pattern matched / the agent line ended, EOF, --max-bytes."""
    buf = bytearray()
    while len(buf) < target.max_bytes and not _satisfied(target, patterns, buf):
        chunk = yield from stream.recv(min(4096, target.max_bytes - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def _satisfied(target, patterns, buf):
    if target.agent and b"\n" not in buf:
        return False
    return all(pattern.search(buf) for pattern in patterns)


def _show(data, limit=60):
    if not data:
        return "nothing"
    text = repr(bytes(data[:limit]))[2:-1]
    return f"'{text}{'…' if len(data) > limit else ''}'"


CHECK = Check(name="TCP", prog="kachecks-tcp", opts=OPTS, usage=USAGE, description=DESCRIPTION,
              epilog=EPILOG, build=build, probe=probe, steps=steps, positionals=1,
              delegate=lambda argv: "--tls" in argv)  # ssl costs more than the check


def main(argv=None, prog=None):
    return run(CHECK, argv, prog)


if __name__ == "__main__":
    sys.exit(main())
