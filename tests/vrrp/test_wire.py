"""Decoding VRRP adverts: keepalived's own bytes, v2/v3, IPv4/IPv6, AH, and what is not one."""

import struct

import pytest

from kachecks.vrrp import wire


def keepalived_v2():
    """An advert keepalived 2.2.7 sent (docs/reference.md, "VRRP on the wire"): 192.0.2.1 to
    224.0.0.18, vrid 51, priority 100, one address 192.0.2.100, advert_int 1, no auth, its
    VRRP checksum b865 as captured (the IP header checksum left out: nothing reads it)."""
    header = bytes.fromhex("45c0002800010000ff700000c0000201e0000012")
    return header + bytes.fromhex("21336401" "0001" "b865" "c0000264") + bytes(8)


def test_keepalived_s_v2_advert_decodes_field_by_field():
    advert = wire.decode_ip(keepalived_v2())
    assert (advert.family, advert.src, advert.dst, advert.ttl) == (4, "192.0.2.1", "224.0.0.18", 255)
    assert (advert.version, advert.kind, advert.vrid, advert.priority) == (2, 1, 51, 100)
    assert advert.address_texts() == ["192.0.2.100"]
    assert (advert.interval, advert.auth_name, advert.checksum_ok) == (1.0, "none", True)


def test_a_flipped_bit_fails_the_checksum():
    packet = bytearray(keepalived_v2())
    packet[-9] ^= 0x01  # inside the address
    assert wire.decode_ip(bytes(packet)).checksum_ok is False


@pytest.mark.parametrize("family, source, group, addresses", [
    (4, "192.168.8.100", "224.0.0.18", ["192.168.8.142"]),
    (6, "fe80::1", "ff02::12", ["2001:db8::142", "2001:db8::143"]),
])
def test_v3_round_trips_with_the_pseudo_header_checksum(family, source, group, addresses):
    packet = wire.encode(family, source, group, 50, 100, addresses, version=3, interval=0.5)
    advert = wire.decode_ip(packet)
    assert (advert.version, advert.vrid, advert.priority, advert.interval) == (3, 50, 100, 0.5)
    assert advert.address_texts() == addresses and advert.src == source and advert.dst == group
    assert advert.checksum_ok and not advert.checksum_as_v2 and advert.auth_name is None


def test_v3_over_ipv4_with_a_v2_style_checksum_is_read_and_said_so():
    """keepalived's v3_checksum_as_v2 leaves the pseudo-header out."""
    packet = bytearray(wire.encode(4, "192.168.8.100", "224.0.0.18", 50, 100, ["192.168.8.142"],
                                   version=3))
    body = bytes(packet[20:26]) + b"\0\0" + bytes(packet[28:])
    packet[26:28] = struct.pack("!H", wire.checksum(body))
    advert = wire.decode_ip(bytes(packet))
    assert advert.checksum_ok and advert.checksum_as_v2


def test_the_raw_ipv6_socket_s_payload_decodes_with_ancillary_addresses():
    packet = wire.encode(6, "fe80::1", "ff02::12", 50, 100, ["2001:db8::142"])
    src, dst = packet[8:24], packet[24:40]
    advert = wire.decode_vrrp(packet[40:], 6, src, dst, 255)
    assert advert.checksum_ok and advert.src == "fe80::1" and advert.vrid == 50


def test_a_pass_password_is_kept_as_a_digest_only():
    packet = wire.encode(4, "192.168.8.100", "224.0.0.18", 50, 100, ["192.168.8.142"],
                         auth_type=wire.AUTH_PASS, password=b"toto")
    advert = wire.decode_ip(packet)
    assert advert.auth_name == "pass"
    assert advert.auth_digest == wire.pass_digest(b"toto")
    assert advert.auth_digest != wire.pass_digest(b"totO")
    text = repr(advert) + repr([getattr(advert, name) for name in advert.__slots__])
    assert "toto" not in text and b"toto" not in advert.auth_digest


def test_keepalived_truncates_a_password_to_8_bytes_and_so_does_the_digest():
    assert wire.pass_digest(b"12345678-ignored") == wire.pass_digest(b"12345678")


def test_an_advert_inside_ipsec_ah_is_decoded_and_marked():
    plain = wire.encode(4, "192.168.8.100", "224.0.0.18", 50, 100, ["192.168.8.142"],
                        auth_type=wire.AUTH_AH)
    header, vrrp = plain[:20], plain[20:]
    ah = struct.pack("!BBHII", wire.PROTO_VRRP, 4, 0, 0x1234, 1) + bytes(12)  # 24 bytes: (4+2)*4
    ip = bytearray(header[:2] + struct.pack("!H", 20 + len(ah) + len(vrrp)) + header[4:])
    ip[9] = wire.PROTO_AH
    advert = wire.decode_ip(bytes(ip) + ah + vrrp)
    assert advert.ah and advert.auth_name == "ah" and advert.vrid == 50


@pytest.mark.parametrize("packet, why", [
    (b"\x45" + bytes(10), "shorter than an IP header"),
    (wire.encode(4, "192.168.8.100", "224.0.0.18", 50, 100, ["192.168.8.142"])[:30],
     "truncated IPv4 packet"),
    (bytes.fromhex("450000200001000040110000c0000201c0000202") + bytes(12), "IP protocol 17"),
    (bytes([0x70]) + bytes(40), "IP version 7"),
])
def test_what_is_not_an_advert_is_malformed_with_a_reason(packet, why):
    with pytest.raises(wire.Malformed, match=why):
        wire.decode_ip(packet)


def test_a_count_longer_than_the_packet_is_malformed():
    packet = bytearray(wire.encode(4, "192.168.8.100", "224.0.0.18", 50, 100, ["192.168.8.142"]))
    packet[23] = 9  # nine addresses announced, one carried
    with pytest.raises(wire.Malformed, match="truncated address list"):
        wire.decode_ip(bytes(packet))


def test_keepalived_s_v2_over_ipv6_decodes_without_auth_data():
    """keepalived 2.2.7 runs an IPv6 instance as VRRPv2 when ``version 2`` stands above its
    first address: captured from it (vrid 1, priority 255, 2001:db8::142, advert_int 1), the
    8-byte header and the addresses, no auth data, the kernel's pseudo-header checksum."""
    packet = bytes.fromhex("6c03fa79001870ff" "fe80000000000000dc0dd7fffeb24343"
                           "ff020000000000000000000000000012"
                           "2101ff01" "0001" "bcde" "20010db8000000000000000000000142")
    advert = wire.decode_ip(packet)
    assert (advert.family, advert.version, advert.vrid, advert.priority) == (6, 2, 1, 255)
    assert (advert.interval, advert.auth_name, advert.checksum_ok) == (1.0, "none", True)
    assert advert.address_texts() == ["2001:db8::142"]
    crafted = wire.encode(6, advert.src, advert.dst, 1, 255, ["2001:db8::142"], version=2)
    assert crafted[40:] == packet[40:]
