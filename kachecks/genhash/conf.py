"""``genhash --format conf``: keepalived.conf snippets ready to paste.

For each server: an HTTP_GET (or SSL_GET) block with the url, digest and
the options given to genhash, then the MISC_CHECK running kachecks-http
with the same request, so either checker can be chosen. The MISC_CHECK's
``--timeout`` is genhash's ``-t`` and its ``misc_timeout`` one second more:
keepalived kills a check at misc_timeout, and a check that times out first
says why (docs/reference.md, "MISC_CHECK").
"""

KACHECKS_HTTP = "/usr/bin/kachecks-http"


def _checker_block(server, digest, opts):
    kind = "SSL_GET" if opts.ssl else "HTTP_GET"
    lines = [f"{kind} {{", "    url {", f"        path {opts.url}", f"        digest {digest}"]
    if opts.vhost is not None:
        lines.append(f"        virtualhost {opts.vhost}")
    lines.append("    }")
    if opts.protocol != "1.0":
        lines.append(f"    http_protocol {opts.protocol}")
    if opts.ssl and opts.sni:
        lines.append("    enable_sni")
    if opts.fwmark is not None:
        lines.append(f"    fwmark {opts.fwmark}")
    lines.append("}")
    return lines


def _misc_check(server, digest, opts):
    args = [KACHECKS_HTTP, "-s", server, "-p", str(opts.port), "-u", opts.url]
    if opts.ssl:
        args.append("-S")
    if opts.vhost is not None:
        args += ["--virtualhost", opts.vhost]
        if opts.sni:
            args.append("--sni")
    if opts.protocol != "1.0":
        args += ["--http-protocol", opts.protocol.lower()]
    if opts.fwmark is not None:
        args += ["--fwmark", str(opts.fwmark)]
    args += ["--digest", digest, "--timeout", str(opts.timeout)]
    return ["MISC_CHECK {", f'    misc_path "{" ".join(args)}"',
            f"    misc_timeout {opts.timeout + 1}", "}"]


def render(results, opts):
    """The text for [(server, hex digest or None)]."""
    lines = []
    for server, digest in results:
        if not digest:
            lines.append(f"# {server} port {opts.port}: failed, no digest")
            continue
        lines.append(f"# real_server {server} {opts.port}: {opts.hash} of {opts.url}")
        if opts.hash == "md5":
            lines += _checker_block(server, digest, opts)
            lines.append("# or, the same check with kachecks-http:")
        else:
            lines.append(f"# keepalived's digest keyword takes md5 only; {opts.hash} needs kachecks-http:")
        lines += _misc_check(server, digest, opts)
    return "\n".join(lines) + "\n"
