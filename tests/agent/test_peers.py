"""Every kind of check in one agent, against real servers: HTTP over TLS, LDAP (plain and
ldaps, real slapd), TCP; and peers that accept and never answer, which must cost each
its own check and nothing more — LDAP included, off the main thread, without SIGALRM."""

import signal

import pytest

from harness.checks import MD5_SERVER1, REFERENCE, SERVER1
from harness.peers import slapd as ldap_peer
from harness.peers.certs import pki
from harness.peers.rawhttp import RawHTTPServer, http_response

pytestmark = pytest.mark.slow

INTERVAL = 1.0
TIMEOUT = 0.6


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def slapd(certs):
    with ldap_peer.Slapd(certs=certs) as server:
        yield server


def ldap_check(name, uri, *extra):
    return {"name": name, "command": ["kachecks-ldap", "--uri", uri, *REFERENCE, *extra]}


def test_tls_ldap_and_tcp_checks_run_in_the_agent_next_to_hung_peers(agent_factory, slapd,
                                                                    certs):
    tls = (str(certs["server_cert"]), str(certs["server_key"]))
    with RawHTTPServer(http_response(SERVER1), tls=tls) as https, \
            RawHTTPServer(b"", hang=True) as silent:
        checks = [
            {"name": "web1-tls", "command": f"kachecks-http --url https://{https.address}"
                                            f"/service.txt --digest {MD5_SERVER1}"},
            {"name": "web1-tls-verified", "command": f"kachecks-http --url https://{https.address}"
                                                     f"/service.txt --ca-file {certs['ca']}"},
            ldap_check("ldap1", slapd.url),
            ldap_check("ldaps1", slapd.ldaps_url, "--ca-file", str(certs["ca"])),
            ldap_check("ldap1-starttls", slapd.url, "--starttls", "--ca-file", str(certs["ca"])),
            {"name": "ldap1-port", "command": f"kachecks-tcp {slapd.host}:{slapd.port}"},
        ]
        hung = [ldap_check(f"hung-ldap{i}", f"ldap://{silent.address}") for i in range(10)]
        hung += [{"name": f"hung-tls{i}", "command": f"kachecks-http --url"
                                                     f" https://{silent.address}/"}
                 for i in range(10)]
        agent = agent_factory(checks + hung, interval=INTERVAL, timeout=TIMEOUT)
        with agent:
            for check in checks:
                agent.wait_value(check["name"], "1\n")
            for check in hung:
                agent.wait_value(check["name"], "0\n")
            start = {c["name"]: c["runs"] for c in agent.status()["checks"]}
            document = agent.wait_status(
                lambda d: all(c["runs"] >= start[c["name"]] + 4 for c in d["checks"]),
                timeout=4 * INTERVAL * 1.05 + 3, what="four more rounds of every check")
            slapd.pause()  # slapd stops answering: the LDAP checks go down, nothing else
            agent.wait_value("ldap1", "0\n", timeout=INTERVAL * 1.05 + TIMEOUT + 1)
            agent.wait_value("ldaps1", "0\n", timeout=INTERVAL * 1.05 + TIMEOUT + 1)
            assert agent.value("web1-tls") == "1\n"
            slapd.resume()
            agent.wait_value("ldap1", "1\n", timeout=INTERVAL * 1.05 + TIMEOUT + 1)
            assert agent.stop(signal.SIGTERM) == 0
    by_name = {c["name"]: c for c in document["checks"]}
    for name in ("ldap1", "ldaps1", "ldap1-starttls"):  # the reference search's own words
        assert by_name[name]["reason"].startswith("1 entry, o=mysite.mydmn.org in "), by_name[name]
    for name, entry in by_name.items():
        if name.startswith("hung-ldap"):
            assert entry["reason"].startswith("TCP connection accepted but no LDAP answer within"
                                              f" {TIMEOUT:g} s"), entry
        elif name.startswith("hung-tls"):
            assert entry["reason"].startswith(f"timeout after {TIMEOUT:g} s during "), entry
        else:
            assert entry["state"] == "UP" and entry["lateness"] < 0.25, entry
        assert "the probe has not returned" not in (entry["reason"] or ""), entry
        assert entry["latency"] < TIMEOUT + 0.2, entry  # bounded by the deadline, no signal
