"""kachecks genhash's additions and help: -H, --format conf, several -s, --help."""

import hashlib
import re

import pytest

from harness.peers.genhash import run_ours, without_usecs
from harness.peers.rawhttp import RawHTTPServer, http_response

SERVER1 = b"hello from Server 1\n"
SERVER2 = b"Hello from Server2\n"
MD5_1 = "5f2b4547f41470dc3e293e7267461575"
MD5_2 = "fe020663a9ac3e61b71f6921d423251d"


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha256"])
def test_hash_option_prints_that_digest(algorithm):
    with RawHTTPServer(http_response(SERVER1)) as server:
        result = run_ours("-H", algorithm, "-s", "127.0.0.1", "-p", server.port, "-u", "/service.txt")
    assert result.returncode == 0
    assert result.stdout.decode() == hashlib.new(algorithm, SERVER1).hexdigest() + "\n"


def test_fwmark_gives_the_same_digest_as_keepalived(keepalived_genhash):
    with RawHTTPServer(http_response(SERVER1)) as server:
        args = ["-m", "5", "-s", "127.0.0.1", "-p", server.port, "-u", "/service.txt"]
        ours, theirs = run_ours(*args), keepalived_genhash(*args)
    assert ours.returncode == 0 and ours.stdout == theirs.stdout == f"{MD5_1}\n".encode()


def test_several_servers_one_failing_exits_1():
    with RawHTTPServer(http_response(SERVER1)) as srv:  # listens on 127.0.0.1 only
        result = run_ours("-s", "127.0.0.1", "-s", "::1", "-p", srv.port, "-u", "/service.txt")
    assert result.returncode == 1
    assert result.stdout.decode().splitlines() == [f"{MD5_1}  127.0.0.1", "1 of 2 servers failed; no verdict"]
    assert result.stderr.decode() == f"Connection failed ([::1]:{srv.port}: connection refused)\n"


def test_several_servers_verdicts():
    with RawHTTPServer(http_response(SERVER1)) as srv:
        same = run_ours("-s", "127.0.0.1", "-s", "localhost", "-p", srv.port, "-u", "/service.txt")
    assert same.returncode == 0
    assert same.stdout.decode() == f"{MD5_1}  127.0.0.1\n{MD5_1}  localhost\nall 2 servers agree\n"
    replies = iter([http_response(SERVER1), http_response(SERVER2)])
    with RawHTTPServer(lambda _request: [next(replies)]) as srv:
        differ = run_ours("-s", "127.0.0.1", "-s", "127.0.0.1", "-p", srv.port, "-u", "/service.txt")
    assert differ.returncode == 0
    assert differ.stdout.decode().splitlines() == [
        f"{MD5_1}  127.0.0.1", f"{MD5_2}  127.0.0.1", "servers disagree: 2 different digests"]


def test_verbose_with_several_servers_prints_each_dump(keepalived_genhash):
    with RawHTTPServer(http_response(SERVER1)) as srv:
        args = ["-v", "-s", "127.0.0.1", "-p", srv.port, "-u", "/service.txt"]
        single = keepalived_genhash(*args).stdout
        double = run_ours("-s", "127.0.0.1", *args).stdout
    first = without_usecs(single).replace(f"{MD5_1}\n".encode(), f"{MD5_1}  127.0.0.1\n".encode())
    assert without_usecs(double) == first * 2 + b"all 2 servers agree\n"


def test_format_conf_prints_http_get_block_and_misc_check():
    with RawHTTPServer(http_response(SERVER1)) as srv:
        result = run_ours("--format", "conf", "-s", "127.0.0.1", "-p", srv.port, "-u", "/service.txt",
                          "-V", "www.mysite.mydmn.org", "-P", "1.1")
    assert result.returncode == 0
    text = result.stdout.decode()
    assert (f"HTTP_GET {{\n    url {{\n        path /service.txt\n        digest {MD5_1}\n"
            f"        virtualhost www.mysite.mydmn.org\n    }}\n    http_protocol 1.1\n}}\n") in text
    assert (f'MISC_CHECK {{\n    misc_path "/usr/bin/kachecks-http -s 127.0.0.1 -p {srv.port} '
            f'-u /service.txt --virtualhost www.mysite.mydmn.org --http-protocol 1.1 '
            f'--digest {MD5_1} --timeout 5"\n    misc_timeout 6\n}}\n') in text


def test_format_conf_keeps_the_check_timeout_below_misc_timeout():
    with RawHTTPServer(http_response(SERVER1)) as srv:
        result = run_ours("--format", "conf", "-t", "2", "-s", "127.0.0.1", "-p", srv.port,
                          "-u", "/service.txt")
    assert result.returncode == 0
    text = result.stdout.decode()
    timeout = re.search(r'misc_path "[^"]* --timeout (\d+)"\n    misc_timeout (\d+)\n', text)
    assert timeout.groups() == ("2", "3"), text


def test_format_conf_with_tls_and_sha256_uses_only_kachecks_http(tls_cert):
    with RawHTTPServer(http_response(SERVER2), tls=tls_cert) as srv:
        result = run_ours("--format", "conf", "-H", "sha256", "-S", "-s", "127.0.0.1",
                          "-p", srv.port, "-u", "/service.txt")
    text = result.stdout.decode()
    assert "HTTP_GET" not in text and "SSL_GET" not in text
    assert "md5 only" in text
    assert f"-u /service.txt -S --digest {hashlib.sha256(SERVER2).hexdigest()} --timeout 5\"" in text


def test_help_is_complete_with_examples_and_deviations():
    result = run_ours("--help")
    assert result.returncode == 0 and result.stderr == b""
    text = result.stdout.decode()
    for spelling in ("-s, --server", "-p, --port", "-u, --url", "-S, --use-ssl", "-I, --use-sni",
                     "-V, --use-virtualhost", "-P, --protocol", "-t, --timeout", "-m, --fwmark",
                     "-v, --verbose", "-h, --help", "-H, --hash", "--format"):
        assert spelling in text
    assert "192.168.8.101" in text and "192.168.8.102" in text and "/service.txt" in text
    deviations = text.split("Differences from keepalived's genhash")[1]
    for topic in ("exits 1", "stderr", "5 s", "host names", "Additions"):
        assert topic in deviations
