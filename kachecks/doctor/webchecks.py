"""HTTP_GET / SSL_GET urls fetched now, exactly as keepalived's checker would.

Every ``url`` of every real server is fetched with the engine ``kachecks
genhash`` uses (keepalived's request bytes and digest rules), from the
address keepalived would use: ``connect_ip``/``connect_port`` (default: the
real server's), ``bindto``, ``fwmark``, the Host keepalived would send
(``virtualhost`` of the url, else the checker, the real server, the virtual
server; else ``ip:port``), ``http_protocol``, TLS for SSL_GET with SNI only
under ``enable_sni``. The answer is judged as keepalived judges it: status
in ``status_code`` (default 200-299), then the md5 against ``digest``.
"""

from concurrent.futures import ThreadPoolExecutor

from kachecks.checks.result import L7RSP, L7STS
from kachecks.doctor.findings import ERROR, WARNING, at
from kachecks.doctor.scripts import seconds

DEFAULT_CONNECT_TIMEOUT = 5.0
WORKERS = 16


class Url:
    """One url of one HTTP_GET/SSL_GET of one real server, and how keepalived fetches it."""

    __slots__ = ("kind", "vs", "checker", "node", "path", "digest", "digest_node", "statuses",
                 "host", "port", "vhost", "sni", "protocol", "bind", "fwmark", "timeout")
    kind: str
    host: str
    port: int
    path: str
    vhost: str | None

    def __init__(self, **fields):
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    @property
    def shown(self):
        scheme = "https" if self.kind == "SSL_GET" else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"{scheme}://{host}:{self.port}{self.path}"
        return f"{text} (Host: {self.vhost})" if self.vhost is not None else text


def status_ranges(args):
    """keepalived's status_code list (``200 204-206``) as ranges; default 200-299."""
    ranges = []
    for word in args:
        low, dash, high = word.partition("-")
        try:
            ranges.append((int(low), int(high if dash else low)))
        except ValueError:
            continue
    return ranges or [(200, 299)]


def collect(config):
    """Every Url the configuration's HTTP_GET/SSL_GET checkers fetch, in file order."""
    urls = []
    for vs in config.blocks("virtual_server"):
        vs_vhost = vs.value("virtualhost")
        vs_timeout = vs.value("connect_timeout")
        for rs in vs.children("real_server"):
            if len(rs.args) < 1:
                continue
            rs_port = rs.args[1] if len(rs.args) > 1 else (vs.args[1] if len(vs.args) > 1 else None)
            rs_vhost = rs.value("virtualhost")
            rs_timeout = rs.value("connect_timeout")
            for checker in rs.block or ():
                if checker.keyword not in ("HTTP_GET", "SSL_GET"):
                    continue
                port = checker.value("connect_port", rs_port)
                try:
                    port = int(port)
                except (TypeError, ValueError):
                    continue
                timeout = seconds(checker.value("connect_timeout", rs_timeout or vs_timeout))
                checker_vhost = checker.value("virtualhost")
                for url in checker.children("url"):
                    path = url.value("path")
                    if path is None:
                        continue
                    url_vhost = url.value("virtualhost")
                    vhost = next((v for v in (url_vhost, checker_vhost, rs_vhost, vs_vhost)
                                  if v is not None), None)
                    sni = None
                    if checker.keyword == "SSL_GET" and checker.has("enable_sni"):
                        # keepalived 2.2.7: the real server's virtualhost is not used for SNI
                        sni = next((v for v in (url_vhost, checker_vhost, vs_vhost) if v), None)
                    digest_node = url.child("digest")
                    urls.append(Url(
                        kind=checker.keyword, vs=vs, checker=checker, node=url, path=path,
                        digest=digest_node.args[0].lower() if digest_node and digest_node.args else None,
                        digest_node=digest_node,
                        statuses=status_ranges(url.child("status_code").args) if url.has("status_code")
                        else [(200, 299)],
                        host=checker.value("connect_ip", rs.args[0]), port=port, vhost=vhost, sni=sni,
                        protocol=checker.value("http_protocol", "1.0"), bind=checker.value("bindto"),
                        fwmark=checker.value("fwmark"), timeout=timeout or DEFAULT_CONNECT_TIMEOUT))
    return urls


class Fetched:
    """What one fetch gave: the Response, or the failure, its cause code (L4CON…) and
    keepalived's words for it."""

    __slots__ = ("response", "error", "code", "keepalived")

    def __init__(self, response=None, error=None, code=None, keepalived=None):
        self.response = response
        self.error = error
        self.code = code
        self.keepalived = keepalived


def fetch(url, timeout=None):
    """Fetch ``url`` once, as keepalived's checker does; a Fetched."""
    from kachecks.checks.result import cause_of
    from kachecks.deadline import Deadline
    from kachecks.errors import ProbeFailure
    from kachecks.http.fetch import fetch as http_fetch
    from kachecks.http.fetch import keepalived_message
    from kachecks.http.request import PROTOCOLS

    tls = None
    if url.kind == "SSL_GET":
        from kachecks.net.tls import TLSOptions

        tls = TLSOptions(sni=url.sni)
    protocol = url.protocol if url.protocol in PROTOCOLS else "1.0"
    try:
        fwmark = int(url.fwmark) if url.fwmark is not None else None
        response = http_fetch(url.host, url.port, url.path, Deadline(timeout or url.timeout),
                              protocol=protocol, vhost=url.vhost, tls=tls, bind=url.bind,
                              fwmark=fwmark, body_read_size=65536)
    except ProbeFailure as exc:
        return Fetched(error=str(exc), code=cause_of(exc).code, keepalived=keepalived_message(exc))
    except ValueError as exc:
        return Fetched(error=str(exc))
    return Fetched(response=response)


def fetch_all(urls, timeout=None):
    """[Fetched] for ``urls``, fetched in parallel."""
    if not urls:
        return []
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(urls))) as pool:
        return list(pool.map(lambda url: fetch(url, timeout), urls))


def judge(urls, results):
    """Findings for each url's answer, and for real servers that disagree."""
    findings = []
    live = {}
    for url, got in zip(urls, results):
        if got.response is not None and got.response.header_complete:
            live[id(url)] = got.response.digests["md5"]
    groups: dict[tuple, list[Url]] = {}
    for url in urls:
        groups.setdefault((id(url.vs), url.path, url.vhost), []).append(url)
    for url, got in zip(urls, results):
        findings += _judge_one(url, got, live, groups[(id(url.vs), url.path, url.vhost)])
    return findings


def _judge_one(url, got, live, group):
    where = f"{url.kind} {url.shown}"
    if got.response is None:
        said = f" (keepalived: \"{got.keepalived}\")" if got.keepalived else ""
        code = f"{got.code}: " if got.code else ""
        return [at(url.checker, WARNING, "unreachable", f"{where}: {code}{got.error}{said}")]
    response = got.response
    if not response.header_complete:
        return [at(url.node, ERROR, "check-failed",
                   f"{where}: {L7RSP}: no complete HTTP header in the first 4095 bytes: keepalived"
                   " reads \"no data received\" and marks the real server down")]
    findings = []
    if not any(low <= (response.status or 0) <= high for low, high in url.statuses):
        wanted = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in url.statuses)
        findings.append(at(url.node, ERROR, "check-failed",
                           f"{where}: {L7STS}: status {response.status} is not in {wanted}:"
                           " keepalived marks the real server down"))
    digest = live[id(url)]
    if url.digest is not None and digest != url.digest:
        text = (f"{where} serves md5 {digest} now ({response.hashed_length} B, status"
                f" {response.status}), not the configured {url.digest}")
        findings.append(at(url.digest_node, ERROR, "digest-mismatch",
                           text + _disagreement(url, digest, live, group)))
    return findings


def _disagreement(url, digest, live, group):
    """The end of a digest-mismatch message: the line to paste, and who disagrees."""
    paste = f"digest {digest}"
    served = [(u, live[id(u)]) for u in group if id(u) in live]
    if len({d for _, d in served}) < 2:
        return f"; the line to paste: {paste}"
    who = ", ".join(f"{u.host} serves {d}" for u, d in served)
    configured = {u.digest for u in group}
    keeping = [u for u, d in served if d == u.digest]
    if len(configured) == 1 and keeping:
        return (f"; the real servers disagree on {url.path} ({who}): this one is out of step with"
                f" the configured digest; only if its content is the right one: {paste}")
    return f"; the real servers disagree on {url.path} ({who}); the line to paste here: {paste}"
