"""C escapes for ``kachecks-tcp --send`` (``\\r\\n``, ``\\x00``, ``\\033``…).

keepalived.conf and shells make raw control bytes awkward to write, and
the protocols a TCP check speaks (SMTP, Redis, memcached) need CRLF and
sometimes NUL; the usual C spellings are what administrators type.
"""

from kachecks.errors import UsageError

_SIMPLE = {"a": 7, "b": 8, "e": 27, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11,
           "\\": 92, "'": 39, '"': 34, "?": 63}
_OCTAL = "01234567"
_HEX = "0123456789abcdefABCDEF"


def decode(text):
    """Bytes for ``text`` with its C escapes applied (UTF-8 for other characters)."""
    out = bytearray()
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        i += 1
        if char != "\\":
            out += char.encode("utf-8", "surrogateescape")
            continue
        if i >= n:
            raise UsageError("--send ends with a lone backslash")
        char = text[i]
        i += 1
        if char in _SIMPLE:
            out.append(_SIMPLE[char])
        elif char == "x":
            j = i
            while j < n and j < i + 2 and text[j] in _HEX:
                j += 1
            if j == i:
                raise UsageError("--send: \\x needs hex digits")
            out.append(int(text[i:j], 16))
            i = j
        elif char in _OCTAL:
            j = i
            while j < n and j < i + 2 and text[j] in _OCTAL:
                j += 1
            value = int(text[i - 1:j], 8)
            if value > 255:
                raise UsageError(f"--send: octal escape \\{text[i - 1:j]} is over 255")
            out.append(value)
            i = j
        else:
            raise UsageError(f"--send: unknown escape \\{char}")
    return bytes(out)
