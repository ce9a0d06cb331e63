"""``kachecks genhash``: keepalived's genhash, byte-compatible, minus its bugs.

Same options, request bytes, digest and output as keepalived 2.2.7's
genhash (see docs/genhash.md); the deviations are listed in --help.
"""

import os
import sys
import time

from kachecks import argspec
from kachecks.argspec import FLAG, MAX_FWMARK, MAX_SECONDS, MULTI, Opt
from kachecks.errors import ProbeFailure, UsageError
from kachecks.http.request import protocol_mode, request_text
from kachecks.status import ExitCode

DEFAULT_TIMEOUT = 5
_C_SPACE = " \t\n\v\f\r"


def _port(text):
    """keepalived: strtol(optarg, &end, 10), nothing after the digits, 1..65535."""
    body = text.lstrip(_C_SPACE)
    digits = body[1:] if body[:1] in "+-" else body
    if not (digits.isascii() and digits.isdigit()) or not 0 < int(body) <= 65535:
        raise UsageError(f"invalid port number '{text}'")
    return int(body)


def _unsigned(what, low, high, unit=""):
    """keepalived's -t/-m rule (blanks, then decimal digits only, no sign), within
    ``low``..``high``: keepalived wraps what does not fit; we refuse it."""

    def convert(text):
        body = text.lstrip(" \t")
        if not (body.isascii() and body.isdigit()):
            raise UsageError(f"invalid {what} '{text}'")
        if not low <= int(body) <= high:
            raise UsageError(f"invalid {what} '{text}' ({low} to {high}{unit})")
        return int(body)

    return convert


def _protocol(text):
    try:
        return protocol_mode(text)
    except ValueError:
        raise UsageError(f"invalid HTTP protocol version '{text}'") from None


def _hash(text):
    if text not in ("md5", "sha1", "sha256"):
        raise UsageError(f"invalid hash algorithm '{text}' (md5, sha1 or sha256)")
    return text


def _format(text):
    if text not in ("plain", "conf"):
        raise UsageError(f"invalid format '{text}' (plain or conf)")
    return text


OPTIONS = [
    Opt("servers", "s", "server", MULTI, "ADDRESS", convert=str,
        help="Server to fetch from: IPv4/IPv6 literal or host name; repeat for several."),
    Opt("port", "p", "port", metavar="PORT", convert=_port, help="TCP port (1-65535)."),
    Opt("url", "u", "url", metavar="PATH", convert=request_text,
        help="Request target, sent verbatim (the last -u wins)."),
    Opt("ssl", "S", "use-ssl", FLAG, help="Use TLS (no certificate verification, like SSL_GET)."),
    Opt("sni", "I", "use-sni", FLAG, help="Send SNI in the TLS handshake, with the -V name."),
    Opt("vhost", "V", "use-virtualhost", metavar="NAME", convert=request_text,
        help="Host header value (default: address:port)."),
    Opt("protocol", "P", "protocol", metavar="VERSION", default="1.0", convert=_protocol,
        help="HTTP mode: 1.0, 1.0c (1.0 with Connection: close) or 1.1 (default 1.0)."),
    Opt("timeout", "t", "timeout", metavar="SECONDS", default=DEFAULT_TIMEOUT,
        convert=_unsigned("timeout", 0, MAX_SECONDS, " seconds"),
        help="Total time for the whole fetch, whole seconds (default 5)."),
    Opt("fwmark", "m", "fwmark", metavar="MARK", convert=_unsigned("fwmark", 0, MAX_FWMARK),
        help="Set SO_MARK on the socket (needs CAP_NET_ADMIN)."),
    Opt("verbose", "v", "verbose", FLAG,
        help="Dump headers, body and digest like keepalived's genhash -v."),
    Opt("help", "h", "help", FLAG, help="Show this help and exit."),
    Opt("version", None, "version", FLAG, help="Print the version and exit."),
    Opt("hash", "H", "hash", metavar="ALGO", default="md5", convert=_hash,
        section="Additions", help="md5 (default), sha1 or sha256."),
    Opt("format", None, "format", metavar="FORMAT", default="plain", convert=_format,
        section="Additions",
        help="plain (default) or conf: print an HTTP_GET url block and a kachecks-http MISC_CHECK."),
]

DESCRIPTION = """\
Fetch PATH from each server the way keepalived's HTTP_GET/SSL_GET does and
print the digest of the response body, for the `digest` keyword of a url {}
block. Output, request bytes and digest are those of keepalived's genhash
(2.2.x): 32 lowercase hex digits and a newline."""

EPILOG = """\
Examples (the reference deployment: two Apache real servers):
  kachecks genhash -s 192.168.8.101 -p 80 -u /service.txt
      5f2b4547f41470dc3e293e7267461575
  kachecks genhash -s 192.168.8.101 -s 192.168.8.102 -p 80 -u /service.txt
      one digest per server, then whether they agree
  kachecks genhash -s 192.168.8.101 -p 80 -u /service.txt --format conf
      a ready HTTP_GET url block and the matching kachecks-http MISC_CHECK
  kachecks genhash -S -I -V www.mysite.mydmn.org -s 192.168.8.101 -p 443 -u /service.txt
  kachecks genhash -v -s 192.168.8.102 -p 80 -u /service.txt -P 1.1

Differences from keepalived's genhash (each one on purpose):
  - A network or protocol failure (refused, timeout, no header end...)
    exits 1 and prints the message on stderr, starting with keepalived's
    own words ("Connection failed", "Timeout HTTP read"...); keepalived
    prints it on stdout and exits 0 (upstream issue #766).
  - -t is a total deadline for the whole fetch, 5 s by default;
    keepalived applies -t to each step and defaults to about 71 minutes.
  - -s also accepts host names and [v6] literals; the Host header then
    carries the address actually connected to, as HTTP_GET would send it.
  - -h/--help prints this help on stdout and exits 0 (keepalived: usage
    on stderr, exit 1). A usage error prints one line on stderr, exit 1.
  - -t above 86400, -m beyond 32 bits, and a control character in -u or -V
    are usage errors (keepalived wraps the numbers and sends the bytes).
  - A digest that cannot be printed (stdout closed, disk full) exits 1.
  - Additions: -H/--hash, --format conf, several -s in one call, --version.

Exit status: 0 digest(s) printed (several servers: even if they differ);
1 usage error or any server failed."""


def main(argv=None, prog=None):
    """Entry point; returns the exit code, never raises."""
    from kachecks.runtime import guarded

    prog = prog or "kachecks genhash"
    argv = sys.argv[1:] if argv is None else list(argv)
    return guarded(_main, argv, prog, prog=prog, bare_usage=True, stoppable=True)


def _error(line, out):
    out.flush()  # what was printed so far comes first
    sys.stderr.write(line.rstrip("\n") + "\n")
    sys.stderr.flush()


def _main(argv, prog):
    from kachecks.runtime import StrictOutput

    opts = argspec.parse(OPTIONS, argv)
    out = StrictOutput()  # the digest is the product: failing to print it is the failure
    if opts.help:
        out.write(argspec.render_help(f"{prog} -s ADDRESS -p PORT -u PATH [OPTIONS]",
                                      DESCRIPTION, OPTIONS, EPILOG).encode())
        out.flush()
        return ExitCode.OK
    if opts.version:
        from kachecks import __version__

        out.write(f"{prog} {__version__}\n".encode())
        return ExitCode.OK
    for dest, flag in (("servers", "-s ADDRESS"), ("port", "-p PORT"), ("url", "-u PATH")):
        if not opts.__dict__[dest]:
            raise UsageError(f"missing {flag} (see {prog} --help)")
    results = []
    for server in opts.servers:
        results.append((server, _one(server, opts, out)))
    if opts.format == "conf":
        from kachecks.genhash.conf import render

        out.write(os.fsencode(render(results, opts)))
    if len(results) > 1:
        verdict = _agreement(results)
        out.write((f"# {verdict}" if opts.format == "conf" else verdict).encode())
    out.flush()
    return ExitCode.OK if all(digest for _server, digest in results) else ExitCode.FAILURE


def _one(server, opts, out):
    """Fetch from one server; print like genhash. Returns the hex digest or None."""
    from kachecks.deadline import Deadline
    from kachecks.http.fetch import fetch, keepalived_message
    from kachecks.genhash.verbose import VerboseDump, response_time_line

    dump = VerboseDump(out) if opts.verbose else None
    tls = None
    if opts.ssl:
        from kachecks.net.tls import TLSOptions

        tls = TLSOptions(sni=opts.vhost if opts.sni else None)
    started = time.monotonic()
    url = os.fsencode(opts.url)
    try:
        response = fetch(server, opts.port, opts.url, Deadline(opts.timeout),
                         protocol=opts.protocol, vhost=opts.vhost, tls=tls,
                         fwmark=opts.fwmark, algorithms=(opts.hash,), observer=dump,
                         body_read_size=4095 if dump else 65536)
    except ProbeFailure as exc:
        text = keepalived_message(exc)
        detail = f"{_label(server, opts)}: {exc}"
        _error(f"{text} ({detail})" if text else detail, out)
        if dump:
            out.write(response_time_line(url, _usecs(started)))
        return None
    if dump and (response.clean_eof or tls is None):
        dump.digest(response.raw_digests[opts.hash])
    digest = response.digests[opts.hash]
    if not response.header_complete:
        _error(f"no data received from remote webserver ({_label(server, opts)}: "
               "no end of HTTP header within 4095 bytes)", out)
        digest = None
    elif opts.format != "conf":
        suffix = f"  {server}" if len(opts.servers) > 1 else ""
        out.write(os.fsencode(f"{digest}{suffix}\n"))
    if dump:
        out.write(response_time_line(url, _usecs(started)))
    return digest


def _label(server, opts):
    return f"[{server}]:{opts.port}" if ":" in server and not server.startswith("[") else f"{server}:{opts.port}"


def _usecs(started):
    return int((time.monotonic() - started) * 1e6)


def _agreement(results):
    digests = {digest for _server, digest in results if digest}
    failed = sum(1 for _server, digest in results if not digest)
    if failed:
        return f"{failed} of {len(results)} servers failed; no verdict\n"
    if len(digests) == 1:
        return f"all {len(results)} servers agree\n"
    return f"servers disagree: {len(digests)} different digests\n"
