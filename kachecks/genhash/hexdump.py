"""keepalived's ``dump_buffer`` layout (lib/utils.c), used by ``genhash -v``.

Byte-exact on purpose: administrators diff our verbose output against
keepalived's, so offsets are decimal ``%04d``, bytes ``" %02x"``, a ``" -"``
after the eighth byte, three spaces, then a 16-column ASCII gutter.
"""

_PRINTABLE = bytes(b if 0x20 <= b <= 0x7E else 0x2E for b in range(256))


def hexdump(data):
    """Return the dump of ``data`` as bytes (empty input gives b"")."""
    out = []
    for start in range(0, len(data), 16):
        row = bytes(data[start:start + 16])
        cells = [b" %02x" % b for b in row]
        cells += [b"   "] * (16 - len(row))
        cells.insert(8, b" -")
        ascii_col = row.translate(_PRINTABLE).ljust(16)
        out.append(b"%04d " % start + b"".join(cells) + b"   " + ascii_col + b"\n")
    return b"".join(out)
