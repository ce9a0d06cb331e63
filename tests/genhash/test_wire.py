"""Unit tests of the wire pieces: request bytes, response rules, hex dump."""

import hashlib

import pytest

from kachecks.genhash.hexdump import hexdump
from kachecks.http.request import build_request, host_header
from kachecks.http.response import ResponseReader, content_length, status_code


def test_request_template_http_1_0():
    assert build_request("/service.txt", "192.168.8.101:80") == (
        b"GET /service.txt HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\n"
        b"Host: 192.168.8.101:80\r\n\r\n")


def test_request_1_1_sends_connection_close_before_host():
    assert build_request("/p", "h", "1.1") == (
        b"GET /p HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: h\r\n\r\n")


def test_request_extra_headers_go_after_host_before_final_crlf():
    request = build_request("/p", "h", "1.0", ["Authorization: Basic dTpw", "X-A: 1"])
    assert request.endswith(b"Host: h\r\nAuthorization: Basic dTpw\r\nX-A: 1\r\n\r\n")


def test_request_is_cut_at_2047_bytes_like_keepalived_snprintf():
    request = build_request("/" + "a" * 3000, "h")
    assert len(request) == 2047
    assert request.startswith(b"GET /aaaa")


@pytest.mark.parametrize("args, expected", [
    (("192.168.8.101", 80), "192.168.8.101:80"),
    (("::1", 8080, True), "[::1]:8080"),
    (("::1", 8080, True, "www.mysite.mydmn.org"), "www.mysite.mydmn.org"),
    (("10.0.0.1", 443, False, ""), ""),
])
def test_host_header_rules(args, expected):
    assert host_header(*args) == expected


@pytest.mark.parametrize("first_buffer, expected", [
    (b"HTTP/1.0 200 OK\r\nContent-Length: 12\r\n\r\n", 12),
    (b"HTTP/1.0 200 OK\r\nContent-Length:12\n\r\n", 12),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 12 \r\n\r\n", None),
    (b"HTTP/1.0 200 OK\r\ncontent-length: 12\r\n\r\n", None),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 12", 12),
    (b"HTTP/1.0 200 OK\r\nX: \0\r\nContent-Length: 12\r\n\r\n", None),
    (b"HTTP/1.0 200 OK\r\n\r\nbody Content-Length: 3\r\n", 3),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", None),
])
def test_content_length_search_follows_keepalived(first_buffer, expected):
    assert content_length(first_buffer) == expected


@pytest.mark.parametrize("first_buffer, expected", [
    (b"HTTP/1.1 200 OK\r\n", 200),
    (b"HTTP/1.1 404 Not Found\r\n", 404),
    (b"HTTP/1.1 200\r\n\r\n", 0),
    (b"HTTP/1.1 20 OK\r\n", 0),
    (b"HTTP/1.1 2000 OK\r\n", 0),
    (b"garbage\r\n\r\n", 0),
])
def test_status_code_needs_three_digits_and_a_space(first_buffer, expected):
    assert status_code(first_buffer) == expected


class Recorder:
    def __init__(self):
        self.events = []

    def header_pending(self):
        self.events.append("pending")

    def header(self, raw):
        self.events.append(("header", raw))

    def body(self, data, first):
        self.events.append(("body", bytes(data), first))


def test_reader_hashes_only_body_up_to_content_length_across_reads():
    recorder = Recorder()
    seen = []
    reader = ResponseReader(("md5", "sha256"), observer=recorder, on_body=lambda d: seen.append(bytes(d)),
                            body_prefix=4)
    for chunk in (b"HTTP/1.0 200 OK\r\nContent-", b"Length: 7\r\nX-W: 5\r\n\r\nhel", b"lo w", b"orld"):
        reader.feed(chunk)
    assert reader.status == 200 and reader.reason == "OK"
    assert reader.header("x-w") == "5"
    assert reader.digests() == {"md5": hashlib.md5(b"hello w").hexdigest(),
                                "sha256": hashlib.sha256(b"hello w").hexdigest()}
    assert (reader.body_bytes, reader.hashed_bytes, reader.body_prefix) == (11, 7, b"hell")
    assert seen == [b"hel", b"lo w", b"orld"]
    assert recorder.events == [
        "pending", "pending",
        ("header", b"HTTP/1.0 200 OK\r\nContent-Length: 7\r\nX-W: 5\r\n\r\n"),
        ("body", b"hel", True), ("body", b"lo w", False)]


def test_reader_stops_asking_once_4095_header_bytes_hold_no_end():
    reader = ResponseReader()
    reader.feed(b"HTTP/1.0 200 OK\r\n" + b"X" * 4000)
    assert reader.room() == 4095 - 4017
    reader.feed(b"Y" * reader.room())
    assert reader.room() == 0 and not reader.header_complete


def test_fast_start_hashers_give_the_same_digests():
    fast = ResponseReader(("md5", "sha1", "sha256"), fast_start=True)
    slow = ResponseReader(("md5", "sha1", "sha256"))
    for reader in (fast, slow):
        reader.feed(b"HTTP/1.0 200 OK\r\n\r\nHello from Server2\n")
    assert fast.digests() == slow.digests()
    assert fast.digests()["md5"] == "fe020663a9ac3e61b71f6921d423251d"


def test_hexdump_full_and_short_lines():
    data = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"
    assert hexdump(data).decode().splitlines() == [
        "0000  48 54 54 50 2f 31 2e 30 - 20 32 30 30 20 4f 4b 0d   HTTP/1.0 200 OK.",
        "0016  0a 43 6f 6e 74 65 6e 74 - 2d 54 79 70 65 3a 20 74   .Content-Type: t",
        "0032  65 78 74 2f 70 6c 61 69 - 6e 0d 0a 0d 0a            ext/plain....   ",
    ]


def test_hexdump_shorter_than_eight_bytes_keeps_the_dash_and_padding():
    assert hexdump(b"\0\xffA") == b"0000  00 ff 41" + b"   " * 5 + b" -" + b"   " * 8 + b"   " + b"..A" + b" " * 13 + b"\n"


def test_hexdump_of_nothing_is_nothing():
    assert hexdump(b"") == b""
