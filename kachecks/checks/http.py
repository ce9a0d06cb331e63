"""``kachecks-http``: keepalived's HTTP_GET/SSL_GET as a MISC_CHECK (docs/checks.md).

The exchange is kachecks.http.fetch, the same engine as ``kachecks
genhash``, so a digest genhash prints is a digest this check accepts.
Every test runs on the stream (digest, regex window, body size), so memory
stays flat whatever the body size.
"""

import sys

from kachecks.argspec import FLAG, MULTI, Opt
from kachecks.checks.contract import Check, run
from kachecks.checks.options import (SNI_NAME_OPT, TLS, TLS_OPTS, Target, common, compile_option,
                                     integer, port_number, seconds, tls_fields)
from kachecks.checks.result import L7OK, L7RSP, L7STS, L7TOUT, Cause, Result
from kachecks.errors import ProbeFailure, UsageError
from kachecks.http.request import protocol_mode, request_text

TARGET = "Target and request"
TESTS = "Tests (all must pass)"
WEIGHT = "Dynamic weight (misc_dynamic) and drain"
PASSWORD_ENV = "KACHECKS_HTTP_PASSWORD"
MAX_BODY = 1 << 40  # --max-body: bytes
HEALTHY = Cause(L7OK)


def status_list(text):
    """``200-299,301`` -> ((200, 299), (301, 301))."""
    ranges = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            first, last = int(low, 10), int(high if dash else low, 10)
        except ValueError:
            raise ValueError(f"bad status list {text!r} (example: 200-299,301)") from None
        if not 100 <= first <= last <= 999:
            raise ValueError(f"bad status range {part.strip()!r} in {text!r}")
        ranges.append((first, last))
    return tuple(ranges)


def hex_digest(text):
    from kachecks.http.digests import algorithm_for_hex

    value = text.strip().lower()
    if algorithm_for_hex(value) is None or value.strip("0123456789abcdef"):
        raise ValueError(f"{text!r} is not an md5, sha1 or sha256 hex digest (32/40/64 hex digits)")
    return value


OPTS = [
    Opt("url", "u", "url", metavar="URL|PATH", convert=request_text,
        help="http[s]://HOST[:PORT]/PATH, or with -s/-p (genhash spelling) just the PATH",
        section=TARGET),
    Opt("server", "s", "server", metavar="HOST", aliases="H", section=TARGET,
        help="server address (genhash -s; -H as check_http spells it, while -I stays"
             " genhash's --sni, not an address)"),
    Opt("port", "p", "port", metavar="PORT", convert=port_number,
        help="server port (genhash -p; default 80, 443 with TLS)", section=TARGET),
    Opt("use_ssl", "S", "use-ssl", kind=FLAG, help="use TLS (genhash -S; implied by https://)",
        section=TARGET),
    Opt("virtualhost", "V", "virtualhost", metavar="NAME", convert=request_text,
        help="Host header value (default: IP:PORT, like keepalived)", section=TARGET),
    Opt("http_protocol", "P", "http-protocol", metavar="VERSION", default="1.0", convert=protocol_mode,
        help="1.0, 1.0c (1.0 + Connection: close) or 1.1, as keepalived's http_protocol",
        section=TARGET),
    Opt("header", None, "header", kind=MULTI, metavar="'NAME: VALUE'",
        help="extra request header (repeatable)", section=TARGET),
    Opt("user", None, "user", metavar="NAME", help="Basic auth user; the password comes from"
        f" --password-file or ${PASSWORD_ENV}", section=TARGET),
    Opt("password_file", None, "password-file", metavar="FILE",
        help="file holding the Basic auth password (mode 0600 or 0640)", section=TARGET),
    Opt("status", None, "status", metavar="LIST", default=((200, 299),), convert=status_list,
        help="accepted status codes and ranges, e.g. 200-299,301 (default 200-299;"
             " redirects are not followed)", section=TESTS),
    Opt("digest", None, "digest", kind=MULTI, metavar="HEX", convert=hex_digest,
        help="expected body digest as genhash prints it; md5/sha1/sha256 by length;"
             " repeatable: any one matching passes", section=TESTS),
    Opt("regex", None, "regex", metavar="RE", help="regular expression the body must match",
        section=TESTS),
    Opt("regex_no_match", None, "regex-no-match", kind=FLAG,
        help="invert --regex: the body must NOT match", section=TESTS),
    Opt("max_latency", None, "max-latency", metavar="SECONDS", convert=seconds,
        help="fail when the whole exchange takes longer", section=TESTS),
    Opt("max_body", None, "max-body", metavar="BYTES", convert=integer(0, MAX_BODY),
        help="fail (and stop reading) when the body is larger", section=TESTS),
    Opt("sni", "I", "sni", kind=FLAG, help="send the virtual host as SNI (genhash -I)",
        section=TLS),
    SNI_NAME_OPT,
    *TLS_OPTS,
    Opt("weight_header", None, "weight-header", metavar="NAME",
        help="weight from response header NAME (integer or NN% of --weight)", section=WEIGHT),
    Opt("weight_regex", None, "weight-regex", metavar="RE",
        help="weight from the first capture group of RE over the body", section=WEIGHT),
]

USAGE = "[OPTIONS] {--url http[s]://HOST[:PORT]/PATH | -s HOST -p PORT -u PATH [-S]}"

DESCRIPTION = """\
HTTP/HTTPS health check for keepalived's MISC_CHECK and vrrp_script. Sends
keepalived's HTTP_GET request byte for byte, reads the response to EOF and checks
status, digest (computed exactly as HTTP_GET and genhash compute it), regex, body
size and latency, all within one --timeout.

Exit codes: 0 healthy; 1 unhealthy, timed out, refused, bad option, unreadable
password file, internal error (never 2); with --dynamic 2+weight when healthy
(weight 0..253); with --nagios 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
TLS certificates are not verified unless --tls-verify or --ca-file (keepalived's
SSL_GET behaviour); --cert-min-days only warns (WARNING under --nagios)."""

EPILOG = """\
Examples (reference deployment):
  kachecks genhash -s 192.168.8.101 -p 80 -u /service.txt   # prints the digest
  kachecks-http --url http://192.168.8.101/service.txt \\
      --digest 5f2b4547f41470dc3e293e7267461575
  kachecks-http -s 192.168.8.102 -p 80 -u /service.txt \\
      --digest fe020663a9ac3e61b71f6921d423251d
  kachecks-http --url http://192.168.8.101/service.txt --regex 'hello from Server 1'
  kachecks-http --url http://192.168.8.101/service.txt \\
      --digest 5f2b4547f41470dc3e293e7267461575 \\
      --digest fe020663a9ac3e61b71f6921d423251d     # rolling deploy: either passes
  kachecks-http --url https://192.168.8.101/service.txt --virtualhost www.mysite.mydmn.org \\
      --sni --ca-file /etc/ssl/mysite-ca.pem --cert-min-days 14
  kachecks-http --url http://192.168.8.101/weight --dynamic --weight 10 \\
      --weight-header X-Weight                      # "X-Weight: 50%" -> exit 7

keepalived.conf:
  real_server 192.168.8.101 80 {
      weight 1
      MISC_CHECK {
          misc_path "/usr/bin/kachecks-http --url http://192.168.8.101/service.txt --digest 5f2b4547f41470dc3e293e7267461575 --timeout 2"
          misc_timeout 3
      }
  }
  vrrp_script chk_web {
      script "/usr/bin/kachecks-http --url http://192.168.8.101/service.txt --digest 5f2b4547f41470dc3e293e7267461575 --timeout 2"
      interval 5
      timeout 3
      weight -20
  }
"""


class HttpTarget(Target):
    """One HTTP(S) exchange and its tests.

    ``tls``: kachecks.net.tls.TLSOptions or None for plain HTTP; ``vhost``:
    the Host header (None: address:port); ``headers``: extra request lines,
    Basic auth included; ``status``: accepted ranges; ``digests``: any one
    may match; ``regex``/``weight_regex``: the option texts, compiled in
    ``regex_pattern``/``weight_pattern``.
    """

    __slots__ = ("path", "tls", "cert_min_days", "protocol", "vhost", "headers", "status",
                 "digests", "regex", "regex_pattern", "regex_no_match", "max_latency",
                 "max_body", "weight_header", "weight_regex", "weight_pattern")


def build(ns):
    """The HttpTarget for parsed options; UsageError when they do not fit together."""
    base = common(ns)
    host, port, path, use_tls = _peer(ns)
    if ns.regex_no_match and ns.regex is None:
        raise UsageError("--regex-no-match needs --regex")
    if ns.sni and ns.sni_name:
        raise UsageError("--sni and --sni-name exclude each other")
    sni = ns.sni_name
    if ns.sni:
        if ns.virtualhost is None:
            raise UsageError("--sni sends the virtual host: give --virtualhost NAME or use --sni-name")
        sni = ns.virtualhost
    tls = tls_fields(ns, use_tls, "an https:// URL or -S", sni)
    headers = []
    for line in ns.header:
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or name != name.strip() or "\r" in line or "\n" in line:
            raise UsageError(f"--header {line!r}: expected 'Name: value' on one line")
        headers.append(line)
    if ns.password_file and not ns.user:
        raise UsageError("--password-file needs --user")
    if ns.user is not None:
        headers.append(_basic_auth(ns.user, ns.password_file))
    return HttpTarget(
        **base, **tls, host=host, port=port, path=path, protocol=ns.http_protocol,
        vhost=ns.virtualhost, headers=tuple(headers), status=ns.status,
        digests=tuple(ns.digest), regex=ns.regex,
        regex_pattern=compile_option("--regex", ns.regex), regex_no_match=ns.regex_no_match,
        max_latency=ns.max_latency, max_body=ns.max_body, weight_header=ns.weight_header,
        weight_regex=ns.weight_regex,
        weight_pattern=compile_option("--weight-regex", ns.weight_regex, needs_group=True))


def _peer(ns):
    """(host, port, path, tls) from --url, or from genhash's -s/-p/-u/-S."""
    url = ns.url
    if url and url.split("://", 1)[0].lower() in ("http", "https") and "://" in url:
        if ns.server:
            raise UsageError("give either --url http[s]://… or -s/-p/-u, not both")
        scheme, rest = url.split("://", 1)
        authority, slash, path = rest.partition("/")
        path = slash + path if slash else "/"
        from kachecks.net.connect import split_hostport

        try:
            host, port = split_hostport(authority)
        except ValueError:
            raise UsageError(f"bad port in URL {url!r}") from None
        use_tls = scheme.lower() == "https" or ns.use_ssl
        if port is None:
            port = ns.port or (443 if use_tls else 80)
        elif ns.port and ns.port != port:
            raise UsageError("the URL and -p name different ports")
    else:
        if not ns.server:
            raise UsageError("no target: give --url http[s]://HOST[:PORT]/PATH or -s HOST -p PORT -u PATH")
        host, path = ns.server, url or "/"
        use_tls = ns.use_ssl
        port = ns.port or (443 if use_tls else 80)
    if not host:
        raise UsageError(f"no host in URL {url!r}")
    if not 1 <= port <= 65535:
        raise UsageError(f"port must be 1-65535, got {port}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host, port, path, use_tls


def _basic_auth(user, password_file):
    from kachecks.secrets import password_from

    password = password_from(password_file, PASSWORD_ENV)
    if password is None:
        raise UsageError(f"--user needs --password-file FILE or ${PASSWORD_ENV}")
    import binascii

    token = binascii.b2a_base64(f"{user}:{password}".encode("utf-8"), newline=False)
    return "Authorization: Basic " + token.decode("ascii")


def probe(target, deadline):
    """One exchange with ``target``: a Result, or ProbeFailure naming the failed test."""
    from kachecks.net.steps import run

    return run(steps(target, deadline), deadline)


def steps(target, deadline):
    """``probe`` as steps (kachecks.net.steps): what the agent's event loop runs."""
    from kachecks.http.fetch import fetch_steps

    watch = None
    if target.regex_pattern or target.weight_pattern or target.max_body is not None:
        from kachecks.checks.bodywatch import BodyWatch

        watch = BodyWatch(target.regex_pattern, target.weight_pattern, target.max_body)
    response = yield from fetch_steps(
        target.host, target.port, target.path, deadline, protocol=target.protocol,
        vhost=target.vhost, tls=target.tls, bind=target.bind, fwmark=target.fwmark,
        algorithms=_algorithms(target), fast_start=True, extra_headers=target.headers,
        on_body=watch.feed if watch else None)
    elapsed = response.timings["total"]
    size = response.body_length
    perfdata = (("time", round(elapsed, 6), "s"), ("size", size, "B"))
    details = _details(response) if target.verbose else ()  # only --verbose prints them
    if not response.header_complete:
        raise ProbeFailure("no HTTP header end (CRLFCRLF) within 4095 bytes", "header",
                           code=L7RSP)
    status = f"{response.status} {response.reason}".strip()
    if not any(low <= response.status <= high for low, high in target.status):
        raise ProbeFailure(f"status {status} not in {_ranges(target.status)}", "status",
                           code=L7STS)
    notes = [status]
    if target.digests:
        notes.append(_judge_digest(target.digests, response.digests))
    if target.regex is not None:
        notes.append(_judge_regex(target, watch))
    if target.max_latency is not None and elapsed > target.max_latency:
        raise ProbeFailure(f"latency {elapsed:.3f} s over {target.max_latency:g} s", "latency",
                           "latency", code=L7TOUT)
    weight = _weight(target, response, watch)
    warning = ""
    if target.tls is not None:
        from kachecks.checks import tlsopts

        warning = tlsopts.expiry_warning(target.cert_min_days, response.cert_days_left)
    notes.append(f"{size} B in {elapsed:.3f} s")
    return Result(True, summary=", ".join(notes), weight=weight, warning=warning,
                  perfdata=perfdata, details=details, cause=HEALTHY)


def _algorithms(target):
    """The digests to compute: those --digest compares; md5 alone for --verbose, which
    prints it; none otherwise (no hash module loaded, no byte hashed)."""
    if not target.digests:
        return ("md5",) if target.verbose else ()
    from kachecks.http.digests import algorithm_for_hex

    return tuple(sorted({algorithm_for_hex(d) for d in target.digests}))


def _ranges(ranges):
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)


def _short(hexdigest):
    return f"{hexdigest[:4]}…{hexdigest[-2:]}"


def _judge_digest(wanted, got):
    from kachecks.http.digests import algorithm_for_hex

    for digest in wanted:
        algorithm = algorithm_for_hex(digest)
        if got[algorithm] == digest:
            return f"{algorithm} {_short(digest)} matches"
    algorithms = sorted({algorithm_for_hex(d) for d in wanted})
    if len(algorithms) == 1:
        algorithm = algorithms[0]
        raise ProbeFailure(f"{algorithm} mismatch (got {got[algorithm]}, want "
                           f"{' or '.join(wanted)})", "digest", code=L7RSP)
    have = ", ".join(f"{a} {got[a]}" for a in algorithms)
    want = " or ".join(f"{algorithm_for_hex(d)} {d}" for d in wanted)
    raise ProbeFailure(f"digest mismatch (got {have}, want {want})", "digest", code=L7RSP)


def _judge_regex(target, watch):
    found = watch.regex_found
    if found and target.regex_no_match:
        raise ProbeFailure(f"body matches '{target.regex}' (--regex-no-match)", "regex",
                           code=L7RSP)
    if not found and not target.regex_no_match:
        raise ProbeFailure(f"body does not match '{target.regex}'", "regex", code=L7RSP)
    return f"regex '{target.regex}' {'absent' if target.regex_no_match else 'matches'}"


def _weight(target, response, watch):
    """The weight the response reports (--weight-header/--weight-regex), or None."""
    if not target.weight_header and target.weight_regex is None:
        return None
    from kachecks.checks.weight import parse_weight

    weight = None
    if target.weight_header:
        value = response.header(target.weight_header)
        if value is None:
            raise ProbeFailure(f"no {target.weight_header} header in the response", "weight",
                               code=L7RSP)
        weight = parse_weight(value, target.weight, f"header {target.weight_header}")
    if target.weight_regex is not None:
        if watch.weight_text is None:
            raise ProbeFailure(f"--weight-regex '{target.weight_regex}' found no weight in the body",
                               "weight", code=L7RSP)
        weight = parse_weight(watch.weight_text, target.weight, "--weight-regex")
    return weight


def _details(response):
    lines = [f"address: {response.address}", f"request: {bytes(response.request)!r}",
             "timings: " + ", ".join(f"{k} {v:.4f} s" for k, v in response.timings.items())]
    lines += [f"header: {name}: {value}" for name, value in response.headers]
    lines += [f"{name}: {value}" for name, value in sorted(response.digests.items())]
    if response.content_length is not None:
        lines.append(f"Content-Length: {response.content_length} (hashed {response.hashed_length} B)")
    if response.cert_days_left is not None:
        lines.append(f"certificate expires in {response.cert_days_left:.1f} days")
    return lines


CHECK = Check(name="HTTP", prog="kachecks-http", opts=OPTS, usage=USAGE, description=DESCRIPTION,
              epilog=EPILOG, build=build, probe=probe, steps=steps,
              # ssl costs more than the check itself: a warm worker saves it
              delegate=lambda argv: "-S" in argv or any("https://" in a for a in argv))


def main(argv=None, prog=None):
    return run(CHECK, argv, prog)


if __name__ == "__main__":
    sys.exit(main())
