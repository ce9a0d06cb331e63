"""The installed executables against real local servers, on Debian's Python libraries."""

import socket
import subprocess

import pytest

from harness.peers.cli import run
from harness.peers.rawhttp import RawHTTPServer, http_response

SERVER1_MD5 = "5f2b4547f41470dc3e293e7267461575"
SERVER2_MD5 = "fe020663a9ac3e61b71f6921d423251d"


@pytest.fixture
def web():
    """The reference real server 1: /service.txt over HTTP/1.0, closed after the reply."""
    with RawHTTPServer(http_response(b"hello from Server 1\n")) as server:
        yield server.port


@pytest.fixture
def listening_port():
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock.getsockname()[1]


def test_genhash_matches_keepalived_genhash(installed, web):
    ours = run("kachecks", "genhash", "-s", "127.0.0.1", "-p", web, "-u", "/service.txt")
    theirs = subprocess.run(["/usr/bin/genhash", "-s", "127.0.0.1", "-p", str(web),
                             "-u", "/service.txt"], capture_output=True, text=True, timeout=30)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout == f"{SERVER1_MD5}\n"


def test_http_check_passes_on_the_right_digest_and_fails_on_another(installed, web):
    url = f"http://127.0.0.1:{web}/service.txt"
    assert run("kachecks-http", "--url", url, "--digest", SERVER1_MD5, "--quiet").returncode == 0
    wrong = run("kachecks-http", "--url", url, "--digest", SERVER2_MD5, "--quiet")
    assert wrong.returncode == 1
    assert "Traceback" not in wrong.stderr


def test_kachecks_check_http_is_the_same_check(installed, web):
    url = f"http://127.0.0.1:{web}/service.txt"
    assert run("kachecks", "check", "http", "--url", url, "--digest", SERVER1_MD5,
               "--quiet").returncode == 0


def test_tcp_check_passes_on_a_listener_and_fails_on_a_closed_port(installed, listening_port,
                                                                   unused_port):
    assert run("kachecks-tcp", "--host", "127.0.0.1", "--port", listening_port,
               "--quiet").returncode == 0
    closed = run("kachecks-tcp", "--host", "127.0.0.1", "--port", unused_port, "--quiet")
    assert closed.returncode == 1
    assert "Traceback" not in closed.stderr


def test_bad_command_line_exits_1_with_one_line(installed):
    for name in ("kachecks-http", "kachecks-tcp", "kachecks-ldap"):
        done = run(name, "--no-such-option")
        assert done.returncode == 1, name
        assert "Traceback" not in done.stderr, name


def test_vrrp_check_listens_on_lo_and_judges_a_configuration_that_cannot_watch(installed,
                                                                               tmp_path):
    """Root, the loopback interface, a third of a second: it opens its sockets, listens,
    judges; an instance on an interface that does not exist is one line, exit 1."""
    conf = tmp_path / "keepalived.conf"
    conf.write_text("vrrp_instance VI_1 {\n    interface lo\n    virtual_router_id 50\n"
                    "    virtual_ipaddress {\n        192.168.8.142\n    }\n}\n")
    done = run("kachecks-vrrp", "--keepalived-conf", conf, "--listen", "0.3", "--quiet")
    assert done.returncode == 0 and done.stdout.startswith("VRRP OK - VI_1 vrid 50 on lo:"), done
    conf.write_text(conf.read_text().replace("interface lo", "interface kcvr-nope0"))
    done = run("kachecks", "check", "vrrp", "--keepalived-conf", conf, "--quiet")
    assert done.returncode == 1 and "kcvr-nope0: no such interface" in done.stderr, done
