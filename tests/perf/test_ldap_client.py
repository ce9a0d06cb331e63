"""kachecks.ldap: the ldap3-free LDAP client a fast kachecks-ldap needs (issue 8).

Filters are checked byte for byte against ldap3's compiler; the operations
against a real slapd holding the reference tree.
"""

import socket
import ssl

import pytest

from kachecks.deadline import Deadline
from kachecks.errors import DeadlineExceeded
from kachecks.ldap import ber
from kachecks.ldap.client import Client, ConnectionClosed
from kachecks.ldap.filter import FilterError, encode
from tests.support import slapd as ref

FILTERS = [
    "(objectClass=*)", "(dc=mysite)", "(&(objectClass=device)(cn=ldap*))",
    "(|(cn=a)(!(cn=b)))", "(cn=*a*b*)", "(cn=a*)", "(cn=*z)", "(cn>=5)", "(cn<=5)",
    "(cn~=x)", r"(cn=\2a\28\29)", "(cn:caseExactMatch:=Foo)", "(description=replica 1)",
    "(cn=\u00e9t\u00e9)", "(cn=a>=b)",
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pyasn1 inside ldap3
@pytest.mark.parametrize("text", FILTERS)
def test_filter_bytes_equal_ldap3s(text):
    from ldap3.operation.search import compile_filter, parse_filter
    from pyasn1.codec.ber import encoder

    parsed = parse_filter(text, None, auto_escape=False, auto_encode=False, validator=None,
                          check_names=False)
    assert encode(text) == encoder.encode(compile_filter(parsed.elements[0]))


def test_extensible_dn_flag_is_true_as_rfc_4511_encodes_it():
    # [9]{ type [2] "cn", matchValue [3] "x", dnAttributes [4] 0xFF }
    assert encode("(cn:dn:=x)") == bytes.fromhex("a90a8202636e8301788401ff")


def test_absolute_true_filter_of_rfc_4526():
    assert encode("(&)") == b"\xa0\x00"


@pytest.mark.parametrize("text", [
    "cn=x", "(cn=x", "(cn=x))", "(cn)", "(=x)", "(c n=x)", r"(cn=\2)", r"(cn=\zz)",
    "(cn=a(b)", "(cn=a**b)", "(:=x)", "(cn:a:b:=x)",
])
def test_malformed_filters_are_refused_with_a_message(text):
    with pytest.raises(FilterError) as caught:
        encode(text)
    assert str(caught.value)


def test_ber_round_trip_of_long_lengths():
    content = b"x" * 70000
    tag, value, end = ber.read(ber.octets(content) + b"tail")
    assert (tag, value, end) == (ber.OCTET_STRING, content, 1 + 4 + 70000)  # 0x83 + 3 bytes
    assert ber.header(ber.octets(content)[:100]) is None  # incomplete: wait for more
    assert [ber.to_int(ber.read(ber.integer(n))[1]) for n in (0, 127, 128, -1, 2**40)] == \
        [0, 127, 128, -1, 2**40]


@pytest.fixture(scope="module")
def server():
    with ref.Slapd() as running:
        yield running


def connect(server, deadline=None):
    sock = socket.create_connection((server.host, server.port), timeout=5)
    return sock, Client(sock, deadline)


def test_reference_search_finds_the_organization(server):
    sock, client = connect(server)
    with sock:
        assert client.bind()["result"] == 0
        outcome, response = client.search(ref.BASE, "sub", "(dc=mysite)", ["o"])
        client.unbind()
    assert outcome["result"] == 0 and outcome["description"] == "success"
    entries = [r for r in response if r["type"] == "searchResEntry"]
    assert entries == [{"type": "searchResEntry", "dn": ref.BASE,
                        "raw_attributes": {"o": [ref.ORGANIZATION.encode()]}}]


def test_no_attributes_requested_returns_entries_only(server):
    sock, client = connect(server)
    with sock:
        outcome, response = client.search(ref.SERVERS_BASE, "one", "(objectClass=device)")
    assert outcome["result"] == 0
    assert sorted(e["dn"] for e in response) == \
        [f"cn=ldap{i},{ref.SERVERS_BASE}" for i in range(1, ref.SERVER_COUNT + 1)]
    assert all(e["raw_attributes"] == {} for e in response)


def test_bind_results_distinguish_good_and_bad_passwords(server):
    sock, client = connect(server)
    with sock:
        assert client.bind(ref.BIND_DN, ref.BIND_PASSWORD)["result"] == 0
        outcome, response = client.search(ref.PRIVATE_BASE, "sub", "(cn=secret)")
        assert outcome["result"] == 0 and len(response) == 1
        bad = client.bind(ref.BIND_DN, "wrong")
    assert (bad["result"], bad["description"]) == (49, "invalidCredentials")


def test_missing_base_reports_the_nearest_existing_dn(server):
    sock, client = connect(server)
    with sock:
        outcome, _ = client.search(f"ou=nowhere,{ref.BASE}", "base")
    assert (outcome["result"], outcome["dn"]) == (32, ref.BASE)


def test_size_limit_and_referrals_come_back_as_results(server):
    sock, client = connect(server)
    with sock:
        limited, entries = client.search(ref.BULK_BASE, "sub", "(objectClass=device)")
        referred, _ = client.search(ref.REFERRAL_DN, "base")
        _, listing = client.search(ref.BASE, "one", "(objectClass=*)")
    assert limited["result"] == 4 and len(entries) == ref.SIZE_LIMIT
    assert referred["result"] == 10
    assert referred["referrals"] == [f"{ref.REFERRAL_URL}??base"]
    references = [r["uri"] for r in listing if r["type"] == "searchResRef"]
    assert references == [[f"{ref.REFERRAL_URL}??base"]]


def test_starttls_upgrades_the_same_connection(server):
    sock, client = connect(server)
    with sock:
        assert client.start_tls()["result"] == 0
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(server.ca_file)
        tls = context.wrap_socket(sock, server_hostname=server.host)
        client.use(tls)
        outcome, response = client.search(ref.BASE, "base", "(objectClass=*)", ["o"])
        assert outcome["result"] == 0 and response[0]["raw_attributes"]["o"]
        tls.close()


def test_a_mute_server_ends_at_the_deadline(server):
    server.pause()
    try:
        sock, client = connect(server, Deadline(0.3))
        with sock, pytest.raises(DeadlineExceeded) as caught:
            client.bind()
    finally:
        server.resume()
    assert caught.value.phase == "bind"


def test_a_closed_connection_is_reported(server):
    listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        sock = socket.create_connection(listener.getsockname(), timeout=5)
        peer, _ = listener.accept()
        peer.close()
        with sock, pytest.raises(ConnectionClosed):
            Client(sock).bind()


def test_requests_are_not_held_back_by_nagle(server):
    # After a TLS handshake, Nagle would hold the first request for the server's
    # delayed ACK (40 ms against slapd); StartTLS swaps the socket, so check both.
    sock, client = connect(server)
    with sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        other = socket.create_connection((server.host, server.port), timeout=5)
        with other:
            client.use(other)
            assert other.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
