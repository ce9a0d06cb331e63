"""Hostile or mistaken input: one clear line and exit 1, never 2, never a traceback.

keepalived's misc_dynamic reads exit 2 as "healthy, weight 0", so no input
may produce it by accident; numbers are range-checked where they are
parsed; a request stays the request keepalived would send; a peer's
garbage is the peer's failure (CRITICAL under --nagios), not ours.
"""

import base64
import glob
import os
import socket
from pathlib import Path

import pytest

from harness.peers.hostile import FakeLDAP
from harness.peers.rawhttp import RawHTTPServer
from harness.redteam import Finished, assert_clean, single_line, spawn
from harness.wait import wait_for

# -- kachecks check <name> -----------------------------------------------------------


@pytest.mark.parametrize("args", [("check", "htp", "--url", "http://192.168.8.101/"),
                                  ("check", "HTTP", "--url", "http://192.168.8.101/"),
                                  ("check",)],
                         ids=["typo", "case", "no name"])
def test_kachecks_check_with_an_unknown_check_is_a_usage_error_exit_1(args):
    finished = spawn("kachecks", *args)
    assert finished.returncode == 1, finished
    assert_clean(finished)
    line = single_line(finished.stderr)
    assert "http" in line and "tcp" in line and "ldap" in line, line  # names the choices
    if len(args) > 1:
        assert args[1] in line


def test_kachecks_check_help_still_lists_the_checks():
    finished = spawn("kachecks", "check", "--help")
    assert finished.returncode == 0, finished
    for name in ("http", "tcp", "ldap"):
        assert name in finished.stdout


# -- CR/LF and other control characters in what goes on the wire --------------------

INJECTED = "x\r\nX-Injected: yes"


@pytest.mark.parametrize("command", [
    ("kachecks-http", "--url", "http://127.0.0.1:{port}/a" + INJECTED),
    ("kachecks-http", "--url", "http://127.0.0.1:{port}/", "--virtualhost", INJECTED),
    ("kachecks-http", "--url", "http://127.0.0.1:{port}/", "-V", "www\nX-Injected: yes"),
    ("kachecks-http", "-s", "127.0.0.1", "-p", "{port}", "-u", "/a" + INJECTED),
    ("kachecks-http", "--url", "http://127.0.0.1:{port}/a\x1b[2Jb"),
    ("kachecks", "genhash", "-s", "127.0.0.1", "-p", "{port}", "-u", "/a" + INJECTED),
    ("kachecks", "genhash", "-s", "127.0.0.1", "-p", "{port}", "-u", "/", "-V", INJECTED),
], ids=["url path", "virtualhost", "virtualhost LF", "-u path", "other controls",
        "genhash -u", "genhash -V"])
def test_control_characters_in_the_request_are_refused_before_connecting(listener, command):
    finished = spawn(*[word.format(port=listener.port) for word in command])
    assert finished.returncode == 1, finished
    assert_clean(finished)
    assert single_line(finished.stderr), finished
    assert listener.connections() == 0


# -- numbers -------------------------------------------------------------------------


URL = ("--url", "http://127.0.0.1:{port}/")
HTTPS = ("--url", "https://127.0.0.1:{port}/")
BY_SERVER = ("-s", "127.0.0.1", "-u", "/")


def _numbers(option, values, target=URL):
    return [(target + (option, value), option) for value in values]


HTTP_NUMBERS = [
    *_numbers("--timeout", ["1e10", "1e300", "nan", "inf", "-1", "0", "86401", "1e-9"]),
    *_numbers("--max-latency", ["1e10", "nan", "0"]),
    *_numbers("--weight", ["99999999999999999999", "-1", "65536"]),
    *_numbers("--max-body", ["-5", "99999999999999999999999999"]),
    *_numbers("--fwmark", ["4294967296"]),
    *_numbers("--cert-min-days", ["99999999999999999999", "-1"], target=HTTPS),
    *_numbers("--port", ["0", "65536"], target=BY_SERVER),
]


@pytest.mark.parametrize("args, option", HTTP_NUMBERS, ids=[" ".join(a[-2:]) for a, _ in HTTP_NUMBERS])
@pytest.mark.parametrize("nagios", [False, True], ids=["plain", "nagios"])
def test_out_of_range_numbers_are_usage_errors_naming_the_option(listener, args, option, nagios):
    args = [word.format(port=listener.port) for word in args]
    finished = spawn("kachecks-http", *args, *(("--nagios",) if nagios else ()))
    assert finished.returncode == (3 if nagios else 1), finished
    assert_clean(finished)
    assert "internal error" not in finished.output, finished
    line = single_line(finished.stdout if nagios else finished.stderr)
    assert option in line, line
    assert listener.connections() == 0


@pytest.mark.parametrize("option, value", [("--max-bytes", "0"), ("--max-bytes", "-1"),
                                           ("--max-bytes", "99999999999999999999"),
                                           ("--timeout", "1e10")])
def test_tcp_numbers_are_range_checked(listener, option, value):
    finished = spawn("kachecks-tcp", f"127.0.0.1:{listener.port}", "--expect", "x", option, value)
    assert finished.returncode == 1, finished
    assert "internal error" not in finished.output and option in finished.stderr, finished


@pytest.mark.parametrize("option, value", [("--min-entries", "99999999999999999999"),
                                           ("--timeout", "inf")])
def test_ldap_numbers_are_range_checked(listener, option, value):
    finished = spawn("kachecks-ldap", "--uri", f"ldap://127.0.0.1:{listener.port}", option, value)
    assert finished.returncode == 1, finished
    assert "internal error" not in finished.output and option in finished.stderr, finished


@pytest.mark.parametrize("option, value, words", [
    ("-t", "99999999999999999999", "invalid timeout"), ("-t", "86401", "invalid timeout"),
    ("-m", "4294967296", "invalid fwmark"),
    ("-m", "99999999999999999999", "invalid fwmark"),
])
def test_genhash_numbers_are_range_checked_in_keepalived_words(listener, option, value, words):
    finished = spawn("kachecks", "genhash", "-s", "127.0.0.1", "-p", listener.port, "-u", "/",
                     option, value)
    assert finished.returncode == 1, finished
    assert single_line(finished.stderr).startswith(f"{words} '{value}'"), finished
    assert listener.connections() == 0


# -- a malformed LDAP reply is the server's failure -----------------------------------

def _tlv(tag, body):
    if len(body) < 128:
        return bytes([tag, len(body)]) + body
    size = len(body).to_bytes(4, "big")
    return bytes([tag, 0x84]) + size + body


def _message(message_id, op):
    return _tlv(0x30, _tlv(0x02, bytes([message_id])) + op)


def _done(code_bytes, tag=0x65):
    return _tlv(tag, _tlv(0x0A, code_bytes) + _tlv(0x04, b"") + _tlv(0x04, b""))


MALFORMED = {
    "unknown operation": lambda mid: _message(mid, _tlv(0x7E, b"")),
    "empty search done": lambda mid: _message(mid, _tlv(0x65, b"")),
    "negative result code": lambda mid: _message(mid, _done(b"\xc8")),
    "unknown result code": lambda mid: _message(mid, _done(b"\x03\xe7")),
    "entry without attributes": lambda mid: (_message(mid, _tlv(0x64, _tlv(0x04, b"dc=x")))
                                             + _message(mid, _done(b"\x00"))),
    "garbage controls": lambda mid: _tlv(0x30, _tlv(0x02, bytes([mid])) + _done(b"\x00")
                                         + _tlv(0xA0, _tlv(0x02, b"\x01"))),
}


@pytest.mark.parametrize("reply", list(MALFORMED))
@pytest.mark.parametrize("nagios", [False, True], ids=["plain", "nagios"])
def test_a_malformed_ldap_reply_is_a_probe_failure(reply, nagios):
    with FakeLDAP(MALFORMED[reply]) as server:
        finished = spawn("kachecks-ldap", "--uri", f"ldap://127.0.0.1:{server.port}",
                         "--base", "dc=mysite,dc=mydmn,dc=org", "--timeout", "3",
                         *(("--nagios",) if nagios else ()))
    assert finished.returncode == (2 if nagios else 1), finished
    assert_clean(finished)
    assert "internal error" not in finished.output, finished
    line = single_line(finished.stdout)
    assert line.startswith("LDAP CRITICAL: " if nagios else "LDAP FAIL - "), line
    assert "malformed" in line, line


# -- a peer's text is one printable line ----------------------------------------------

# What a broken or hostile server may put in the text a check repeats: a bare LF or CR
# (the header still ends at the first CRLFCRLF), a terminal escape, a C1 line break
# (latin-1 0x85), each trying to forge a second status line.
FORGERIES = {"LF": b"\n", "CR": b"\r", "escape": b"\x1b[2J", "NEL": b"\x85"}


def _escaped_one_line(finished, forgery):
    line = single_line(finished.stdout)
    assert line.isprintable(), line
    assert repr(forgery.decode("latin-1"))[1:-1] in line, line  # escaped as repr() escapes it
    return line


@pytest.mark.parametrize("forgery", list(FORGERIES))
@pytest.mark.parametrize("nagios", [False, True], ids=["plain", "nagios"])
def test_control_characters_in_an_http_reason_phrase_are_escaped(syslog_socket, forgery, nagios):
    reason = b"Service Unavailable" + FORGERIES[forgery] + b"HTTP OK - 200 OK"
    with RawHTTPServer(b"HTTP/1.0 503 " + reason + b"\r\nContent-Length: 0\r\n\r\n") as srv:
        finished = spawn("kachecks-http", "--url", f"http://{srv.address}/", "--verbose",
                         *(("--nagios",) if nagios else ()))
    assert finished.returncode == (2 if nagios else 1), finished
    assert_clean(finished)
    status = finished.stdout.splitlines()[0]
    assert status.startswith("HTTP CRITICAL: " if nagios else "HTTP FAIL - "), finished
    _escaped_one_line(Finished(0, status + "\n", "", 0), FORGERIES[forgery])
    assert all(line.isprintable() for line in finished.stdout.splitlines()), finished.stdout
    logged = syslog_socket()
    assert len(logged) == 1 and logged[0].isprintable(), logged


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_control_characters_in_an_ldap_diagnostic_message_are_escaped(forgery):
    message = b"disk full" + FORGERIES[forgery] + b"LDAP OK - 1 entry"
    done = _tlv(0x65, _tlv(0x0A, b"\x50") + _tlv(0x04, b"") + _tlv(0x04, message))
    with FakeLDAP(lambda mid: _message(mid, done)) as server:
        finished = spawn("kachecks-ldap", "--uri", f"ldap://127.0.0.1:{server.port}",
                         "--base", "dc=mysite,dc=mydmn,dc=org", "--timeout", "3")
    assert finished.returncode == 1, finished
    assert_clean(finished)
    line = single_line(finished.stdout)
    assert line.startswith("LDAP FAIL - search under dc=mysite,dc=mydmn,dc=org failed"), line
    assert line.isprintable() and "disk full" in line, line


def test_a_pipe_in_the_peers_text_does_not_forge_nagios_perfdata():
    reason = b"Service Unavailable | time=0.000001s;;;0; size=1B"
    with RawHTTPServer(b"HTTP/1.0 503 " + reason + b"\r\nContent-Length: 0\r\n\r\n") as srv:
        finished = spawn("kachecks-http", "--url", f"http://{srv.address}/", "--nagios")
    assert finished.returncode == 2, finished
    text, bar, perfdata = single_line(finished.stdout).partition("|")
    assert "Service Unavailable" in text and "time=0.000001s" in text, text  # said, not parsed
    assert bar and "|" not in perfdata and perfdata.strip().startswith("time="), finished.stdout
    assert "time=0.000001s" not in perfdata, perfdata


# -- password files --------------------------------------------------------------------

@pytest.mark.parametrize("content, password", [
    (b"s3cret", "s3cret"),  # ldapsearch -y style: no newline at all
    (b"s3cret\n", "s3cret"),  # an editor's file
    (b"s3cret\r\n", "s3cret"),  # written on Windows
    (b"\ns3cret\n", "s3cret"),  # a stray blank line first
    (b"\n \t\n\r\ns3cret\nsecond line ignored\n", "s3cret"),
    (b" pass phrase with spaces \n", " pass phrase with spaces "),  # spaces are the password's
    ("pässwörd\n".encode(), "pässwörd"),
], ids=["no newline", "newline", "crlf", "blank first", "blanks first", "spaces", "utf-8"])
def test_the_password_is_the_first_non_blank_line(tmp_path, web, content, password):
    path = tmp_path / "pw"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    finished = spawn("kachecks-http", "--url", f"http://{web.address}/", "--user", "monitor",
                     "--password-file", path)
    assert finished.returncode == 0, finished
    token = base64.b64encode(f"monitor:{password}".encode()).decode()
    assert f"Authorization: Basic {token}\r\n".encode() in web.requests[0], web.requests


@pytest.mark.parametrize("content, words", [
    (b"", "empty"), (b"\n", "empty"), (b"\n \n\t\r\n", "empty"),
    (b"caf\xe9\n", "UTF-8"),
], ids=["empty", "newline only", "blank lines", "latin-1"])
def test_an_unusable_password_file_is_refused_with_the_reason(tmp_path, listener, content, words):
    path = tmp_path / "pw"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    finished = spawn("kachecks-ldap", "--uri", f"ldap://127.0.0.1:{listener.port}",
                     "--bind-dn", "cn=monitor,dc=mysite,dc=mydmn,dc=org", "--password-file", path)
    assert finished.returncode == 1, finished
    assert words in single_line(finished.stderr), finished
    assert listener.connections() == 0


def test_a_closed_fake_ldap_server_answers_nobody_afterwards():
    """The peer, not the check: a listener closed while its thread waited in accept() kept
    listening and answered a later test's client given the same port (a webhook POST that
    got LDAP bytes back)."""
    server = FakeLDAP(lambda mid: _message(mid, _done(b"\x00")))
    wait_for(lambda: "inet_csk_accept" in _wchans(), 5, what="the server's thread in accept()")
    server.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def _wchans():
    """Where each of this process' threads sleeps in the kernel."""
    return [Path(p).read_text() for p in glob.glob("/proc/self/task/*/wchan")]
