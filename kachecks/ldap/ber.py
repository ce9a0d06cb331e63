"""The BER subset LDAPv3 uses (RFC 4511 §5.1): definite lengths, one-byte tags.

Encoding is ``tlv(tag, content)`` over bytes; decoding walks a buffer with
``read(data, pos) -> (tag, value, next_pos)``. Enough for bind, search,
StartTLS and their responses, and nothing that imports anything.
"""

SEQUENCE, SET = 0x30, 0x31
BOOLEAN, INTEGER, OCTET_STRING, ENUMERATED = 0x01, 0x02, 0x04, 0x0A


class BERError(ValueError):
    """Malformed or truncated BER."""


def length(n):
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag, content=b""):
    return bytes((tag,)) + length(len(content)) + content


def integer(value, tag=INTEGER):
    size = max(1, (value.bit_length() + 8) // 8)  # room for the sign bit
    return tlv(tag, value.to_bytes(size, "big", signed=True))


def octets(value, tag=OCTET_STRING):
    return tlv(tag, value.encode("utf-8") if isinstance(value, str) else bytes(value))


def boolean(value, tag=BOOLEAN):
    return tlv(tag, b"\xff" if value else b"\x00")


def header(data, pos=0):
    """(tag, content start, content end) of the TLV at ``pos``, or None if incomplete."""
    if len(data) < pos + 2:
        return None
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first & 0x80:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise BERError(f"unsupported BER length form (0x{first:02x})")
        if len(data) < pos + count:
            return None
        size = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    else:
        size = first
    if len(data) < pos + size:
        return None
    return tag, pos, pos + size


def read(data, pos=0):
    """(tag, value bytes, next position); BERError if it does not fit in ``data``."""
    found = header(data, pos)
    if found is None:
        raise BERError("truncated BER element")
    tag, start, end = found
    return tag, data[start:end], end


def children(data):
    """Every (tag, value) inside a constructed value."""
    out = []
    pos = 0
    while pos < len(data):
        tag, value, pos = read(data, pos)
        out.append((tag, value))
    return out


def to_int(value):
    return int.from_bytes(value, "big", signed=True) if value else 0
