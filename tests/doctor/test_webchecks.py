"""HTTP_GET / SSL_GET urls fetched now as keepalived fetches them; /usr/bin/genhash is the oracle.

Real loopback servers whose pages change between runs. Every digest the
doctor prints is the one keepalived's genhash prints for the same request,
and the request itself is byte for byte genhash's (the servers record both).
"""

import json
import os
import re
import socket
import subprocess
import threading

import pytest

from harness.checks import MD5_SERVER1, MD5_SERVER2, SERVER1, SERVER2, VHOST
from harness.peers import certs, cli
from harness.peers.genhash import KEEPALIVED_GENHASH, run_keepalived
from harness.peers.netns import create_namespace
from harness.peers.rawhttp import DroppingListener, RawHTTPServer, http_response

pytestmark = pytest.mark.skipif(not os.path.exists(KEEPALIVED_GENHASH), reason="no /usr/bin/genhash")
SERVES = re.compile(r"serves md5 ([0-9a-f]{32}) now")
PASTE = re.compile(r"digest ([0-9a-f]{32})$")
HOST = re.compile(rb"\r\nHost: ([^\r]*)\r\n")


class Site:
    """A loopback web server whose page can change between runs, answering per Host."""

    def __init__(self, body, host="127.0.0.1", tls=None, by_host=None):
        self.body = body
        self.by_host = dict(by_host or {})
        self.server = RawHTTPServer(self.respond, host=host, tls=tls)

    def respond(self, request):
        host = HOST.search(request)
        yield http_response(self.by_host.get(host.group(1).decode() if host else None, self.body))

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.server.stop()

    @property
    def host(self):
        return self.server.host

    @property
    def port(self):
        return self.server.port


def genhash(site, path="/service.txt", *options):
    """keepalived's own digest of the page, as an administrator would paste it."""
    done = run_keepalived("-s", site.host, "-p", site.port, "-u", path, "-t", "5", *options)
    assert done.returncode == 0, done
    return done.stdout.decode().strip()


def director(real_servers, vs_extra=""):
    """A director's keepalived.conf: one virtual server, the given real server blocks."""
    return ("global_defs {\n    router_id lvs1\n}\n"
            "virtual_server 192.168.8.142 80 {\n    delay_loop 4\n    lb_algo wlc\n    lb_kind DR\n"
            f"    protocol TCP\n{vs_extra}{''.join(real_servers)}}}\n")


def real_server(site, digest, checker="HTTP_GET", extra="", url_extra="", path="/service.txt"):
    return (f"    real_server {site.host} {site.port} {{\n        weight 1\n        {checker} {{\n"
            f"            url {{\n                path {path}\n                digest {digest}\n"
            f"{url_extra}            }}\n            connect_timeout 2\n{extra}        }}\n    }}\n")


def mismatches(run):
    return [f for f in run.findings if f["code"] == "digest-mismatch"]


def test_the_reference_pages_match_their_digests_and_the_run_is_clean(doctor, write):
    with Site(SERVER1) as web1, Site(SERVER2, host="127.0.0.2") as web2:
        assert (genhash(web1), genhash(web2)) == (MD5_SERVER1, MD5_SERVER2)
        conf = write("keepalived.conf", director([real_server(web1, MD5_SERVER1),
                                                  real_server(web2, MD5_SERVER2)]))
        run = doctor("-f", conf)
        assert (run.code, run.findings) == (0, []), run
        assert len(web1.server.requests) == len(web2.server.requests) == 2  # genhash's, ours


def test_a_changed_page_gives_the_live_digest_and_the_line_that_fixes_it(doctor, write):
    with Site(SERVER1) as web1, Site(SERVER2, host="127.0.0.2") as web2:
        conf = write("keepalived.conf", director([real_server(web1, MD5_SERVER1),
                                                  real_server(web2, MD5_SERVER2)]))
        web1.body = b"hello from Server 1, deployed again\n"
        run = doctor("-f", conf)
        [finding] = run.findings
        assert (finding["line"], finding["severity"], finding["code"], run.code) == (
            14, "error", "digest-mismatch", 1)
        live = genhash(web1)
        assert SERVES.search(finding["message"])[1] == PASTE.search(finding["message"])[1] == live
        assert f"not the configured {MD5_SERVER1}" in finding["message"]
        # the administrator pastes the line; the next run is clean
        lines = conf.read_text().splitlines()
        lines[finding["line"] - 1] = f"                digest {live}"
        conf.write_text("\n".join(lines) + "\n")
        assert doctor("-f", conf).findings == []


def test_real_servers_sharing_a_url_that_disagree_are_said_to_disagree(doctor, write):
    page = b"the same page on every real server\n"
    sites = [Site(page, host=f"127.0.0.{i}") for i in (1, 2, 3)]
    for site in sites:
        site.__enter__()
    try:
        digest = genhash(sites[0])
        conf = write("keepalived.conf", director([real_server(s, digest) for s in sites]))
        assert doctor("-f", conf).findings == []
        sites[1].body = b"a half-finished deploy\n"
        run = doctor("-f", conf)
        [finding] = mismatches(run)
        assert finding["line"] == 24  # the second real server's digest line
        stale = genhash(sites[1])
        assert "the real servers disagree on /service.txt" in finding["message"]
        assert f"127.0.0.1 serves {digest}, 127.0.0.2 serves {stale}, 127.0.0.3 serves {digest}" \
            in finding["message"]
        assert "out of step" in finding["message"]
        assert PASTE.search(finding["message"])[1] == stale
    finally:
        for site in sites:
            site.__exit__()


def test_connect_ip_and_connect_port_are_where_the_page_is_fetched_from(doctor, write):
    with Site(SERVER1) as web1:
        rs = real_server(web1, MD5_SERVER1,
                         extra=f"            connect_ip {web1.host}\n            connect_port {web1.port}\n")
        conf = write("keepalived.conf", director([rs.replace(f"{web1.host} {web1.port}", "192.0.2.10 80")]))
        run = doctor("-f", conf)
        genhash(web1)
        assert (run.code, run.findings) == (0, []), run
        ours, theirs = web1.server.requests
        assert ours == theirs == (f"GET /service.txt HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\n"
                                  f"Host: {web1.host}:{web1.port}\r\n\r\n").encode()


@pytest.mark.parametrize("where", ["url", "checker", "real_server", "virtual_server"])
def test_the_virtualhost_keepalived_would_send_is_sent(doctor, write, where):
    """keepalived's Host precedence: url, checker, real server, virtual server."""
    with Site(b"default site\n", by_host={VHOST: SERVER1}) as web1:
        line = f"virtualhost {VHOST}\n"
        rs = real_server(web1, MD5_SERVER1, url_extra="                " + line if where == "url" else "",
                         extra="            " + line if where == "checker" else "")
        if where == "real_server":
            rs = rs.replace("        weight 1\n", "        weight 1\n        " + line)
        conf = write("keepalived.conf", director([rs], "    " + line if where == "virtual_server" else ""))
        run = doctor("-f", conf)
        assert (run.code, run.findings) == (0, []), run
        assert genhash(web1, "/service.txt", "-V", VHOST) == MD5_SERVER1
        ours, theirs = web1.server.requests
        assert ours == theirs and f"\r\nHost: {VHOST}\r\n".encode() in ours


def test_http_protocol_1_1_is_keepalived_s_request(doctor, write):
    with Site(SERVER1) as web1:
        conf = write("keepalived.conf", director([real_server(
            web1, MD5_SERVER1, extra="            http_protocol 1.1\n")]))
        assert doctor("-f", conf).findings == []
        genhash(web1, "/service.txt", "-P", "1.1")
        ours, theirs = web1.server.requests
        assert ours == theirs and ours.startswith(b"GET /service.txt HTTP/1.1\r\n")
        assert b"\r\nConnection: close\r\n" in ours


@pytest.mark.parametrize("sni", [True, False])
def test_ssl_get_speaks_tls_and_sends_sni_only_with_enable_sni(doctor, write, tmp_path, sni):
    pem = certs.self_signed(tmp_path / "pki", VHOST, alt_names=("127.0.0.1",))
    with Site(b"no vhost\n", tls=pem, by_host={VHOST: SERVER2}) as web:
        extra = f"            virtualhost {VHOST}\n" + ("            enable_sni\n" if sni else "")
        conf = write("keepalived.conf", director([real_server(web, MD5_SERVER1, "SSL_GET", extra)]))
        run = doctor("-f", conf)
        [finding] = run.findings
        oracle = genhash(web, "/service.txt", "-S", "-V", VHOST, *(["-I"] if sni else []))
        assert oracle == MD5_SERVER2
        assert "SSL_GET https://127.0.0.1:" in finding["message"]
        assert PASTE.search(finding["message"])[1] == oracle
        assert web.server.sni == ([VHOST, VHOST] if sni else [None, None])


def test_bindto_is_the_source_address(doctor, write):
    peers = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve():
        conn, peer = listener.accept()
        peers.append(peer[0])
        conn.recv(4096)
        conn.sendall(http_response(SERVER1))
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        conf = write("keepalived.conf", director([
            f"    real_server 127.0.0.1 {port} {{\n        HTTP_GET {{\n            url {{\n"
            f"                path /service.txt\n                digest {MD5_SERVER1}\n            }}\n"
            "            bindto 127.0.0.9\n        }\n    }\n"]))
        run = doctor("-f", conf)
        thread.join(10)
    finally:
        listener.close()
    assert (run.code, run.findings, peers) == (0, [], ["127.0.0.9"]), run


@pytest.mark.netns
def test_fwmark_reaches_the_socket(doctor, write):
    """In a namespace where fwmark 7 is prohibited, a checker with fwmark 7 cannot connect."""
    ns = create_namespace(f"kcdoc-fw-{os.getpid()}")
    try:
        ns.ip("rule", "add", "pref", "10", "fwmark", "7", "prohibit")
        ns.ip("rule", "del", "pref", "0")
        ns.ip("rule", "add", "pref", "100", "lookup", "local")
        conf = write("keepalived.conf", director([
            "    real_server 127.0.0.1 9 {\n        HTTP_GET {\n            url {\n"
            f"                path /service.txt\n                digest {MD5_SERVER1}\n            }}\n"
            f"            fwmark {mark}\n        }}\n    }}\n" for mark in (7, 8)]))
        done = ns.run([*cli.command("kachecks"), "doctor", "-f", conf, "--json", "--no-keepalived"],
                      env=dict(os.environ))
    finally:
        subprocess.run(["ip", "netns", "del", ns.name], check=False)
    marked, other = json.loads(done.stdout)
    assert (marked["code"], other["code"]) == ("unreachable", "unreachable")
    assert "Permission denied" in marked["message"]  # the prohibit rule matched the mark
    assert 'keepalived: "Connection failed"' in other["message"]  # routed: nobody listens on 9


def test_a_status_outside_status_code_fails_the_check(doctor, write):
    server = RawHTTPServer(http_response(b"gone\n", status=b"404 Not Found"))
    with server:
        class Where:
            host, port = server.host, server.port

        rs = real_server(Where, "0" * 32)
        conf = write("keepalived.conf", director([rs, rs.replace("                digest 0000",
                                                            "                status_code 404\n"
                                                            "                digest 0000")]))
        run = doctor("-f", conf)
    assert [(f["line"], f["code"]) for f in run.findings] == [
        (12, "check-failed"), (14, "digest-mismatch"), (25, "digest-mismatch")]
    assert "status 404 is not in 200-299" in run.findings[0]["message"]


def test_content_length_cuts_the_digest_as_keepalived_cuts_it(doctor, write):
    body = b"hello from Server 1\nand then some trailing bytes\n"
    server = RawHTTPServer(b"HTTP/1.0 200 OK\r\nContent-Length: 20\r\n\r\n" + body)
    with server:
        class Where:
            host, port = server.host, server.port

        conf = write("keepalived.conf", director([real_server(Where, "0" * 32)]))
        run = doctor("-f", conf)
        oracle = genhash(Where)
    assert oracle == MD5_SERVER1
    assert PASTE.search(run.findings[0]["message"])[1] == oracle


@pytest.mark.slow
def test_a_real_server_that_does_not_answer_is_unreachable_a_warning(doctor, write, unused_port):
    with DroppingListener() as hole:
        class Closed:
            host, port = "127.0.0.1", unused_port

        class Hole:
            host, port = hole.host, hole.port

        conf = write("keepalived.conf", director([real_server(Closed, MD5_SERVER1),
                                                  real_server(Hole, MD5_SERVER1)]))
        run = doctor("-f", conf, "--timeout", "1")
    assert run.code == 0, run
    refused, hung = run.findings
    assert (refused["line"], refused["severity"], refused["code"]) == (11, "warning", "unreachable")
    assert 'keepalived: "Connection failed"' in refused["message"]
    assert hung["line"] == 21 and "timeout after 1 s during connect" in hung["message"]


def test_no_run_touches_no_server(doctor, write):
    with Site(SERVER1) as web1:
        web1.body = b"changed\n"
        conf = write("keepalived.conf", director([real_server(web1, MD5_SERVER1)]))
        run = doctor("--no-run", "-f", conf)
        assert (run.code, run.findings, web1.server.requests) == (0, [], [])
