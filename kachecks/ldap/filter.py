"""RFC 4515 string filters to the BER of RFC 4511 §4.5.1, with no imports of note.

``encode("(&(objectClass=device)(cn=ldap*))")`` returns the Filter's BER;
a malformed filter raises ``FilterError`` naming what and where.
"""

from kachecks.ldap import ber

AND, OR, NOT = 0xA0, 0xA1, 0xA2
EQUALITY, SUBSTRINGS, GREATER_OR_EQUAL, LESS_OR_EQUAL = 0xA3, 0xA4, 0xA5, 0xA6
PRESENT, APPROX, EXTENSIBLE = 0x87, 0xA8, 0xA9
_OPERATORS = {"~=": APPROX, ">=": GREATER_OR_EQUAL, "<=": LESS_OR_EQUAL}
_HEX = frozenset("0123456789abcdefABCDEF")
_ATTRIBUTE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.;")


class FilterError(ValueError):
    """The filter string is not RFC 4515."""


def encode(text):
    parser = _Parser(text)
    encoded = parser.filter()
    if parser.pos != len(text):
        raise FilterError(f"unexpected {text[parser.pos:]!r} after the filter")
    return encoded


class _Parser:
    def __init__(self, text):
        self.text = text
        self.pos = 0

    def expect(self, char):
        if not self.text.startswith(char, self.pos):
            found = repr(self.text[self.pos]) if self.pos < len(self.text) else "the end"
            raise FilterError(f"expected {char!r} at position {self.pos}, found {found}")
        self.pos += 1

    def filter(self):
        self.expect("(")
        char = self.text[self.pos:self.pos + 1]
        if char in ("&", "|"):
            self.pos += 1
            parts = []
            while self.text.startswith("(", self.pos):
                parts.append(self.filter())
            encoded = ber.tlv(AND if char == "&" else OR, b"".join(parts))
        elif char == "!":
            self.pos += 1
            encoded = ber.tlv(NOT, self.filter())
        else:
            encoded = self.item()
        self.expect(")")
        return encoded

    def item(self):
        end = self._item_end()
        text = self.text[self.pos:end]
        self.pos = end
        eq = text.find("=")
        if eq < 1:
            raise FilterError(f"no attribute and '=' in filter item {text!r}")
        before, value = text[eq - 1], text[eq + 1:]
        if before == ":":
            return _extensible(text[:eq - 1], value, text)
        if before in "~<>":
            return _assertion(_OPERATORS[before + "="], _attribute(text[:eq - 1]),
                              _unescape(value))
        attr = _attribute(text[:eq])
        if value == "*":
            return ber.octets(attr, PRESENT)
        if "*" in value:
            return _substrings(attr, value)
        return _assertion(EQUALITY, attr, _unescape(value))

    def _item_end(self):
        end = self.text.find(")", self.pos)
        if end < 0:
            raise FilterError(f"unbalanced parentheses in {self.text!r}")
        if "(" in self.text[self.pos:end]:
            raise FilterError(f"unescaped '(' in a value at position {self.pos}")
        return end


def _attribute(text):
    if not text or not set(text) <= _ATTRIBUTE_CHARS:
        raise FilterError(f"bad attribute description {text!r}")
    return text


def _assertion(tag, attr, value):
    return ber.tlv(tag, ber.octets(attr) + ber.octets(value))


def _substrings(attr, value):
    pieces = value.split("*")
    parts = []
    if pieces[0]:
        parts.append(ber.octets(_unescape(pieces[0]), 0x80))
    for piece in pieces[1:-1]:
        if not piece:
            raise FilterError(f"empty substring ('**') in {value!r}")
        parts.append(ber.octets(_unescape(piece), 0x81))
    if pieces[-1]:
        parts.append(ber.octets(_unescape(pieces[-1]), 0x82))
    return ber.tlv(SUBSTRINGS, ber.octets(attr) + ber.tlv(ber.SEQUENCE, b"".join(parts)))


def _extensible(left, value, text):
    """``attr[:dn][:rule]:=value`` or ``[:dn]:rule:=value``."""
    fields = left.split(":")
    attr, options = fields[0], fields[1:]
    dn = "dn" in (o.lower() for o in options)
    rules = [o for o in options if o.lower() != "dn"]
    if len(rules) > 1 or any(not o for o in options) or (not attr and not rules):
        raise FilterError(f"bad extensible match {text!r}")
    content = b""
    if rules:
        content += ber.octets(_attribute(rules[0]), 0x81)
    if attr:
        content += ber.octets(_attribute(attr), 0x82)
    content += ber.octets(_unescape(value), 0x83)
    if dn:
        content += ber.boolean(True, 0x84)
    return ber.tlv(EXTENSIBLE, content)


def _unescape(text):
    """RFC 4515 value: ``\\HH`` escapes to bytes; '*', '(', ')' must be escaped."""
    if "\\" not in text:
        return text.encode("utf-8")
    out = bytearray()
    pos = 0
    while pos < len(text):
        slash = text.find("\\", pos)
        if slash < 0:
            out += text[pos:].encode("utf-8")
            break
        out += text[pos:slash].encode("utf-8")
        pair = text[slash + 1:slash + 3]
        if len(pair) != 2 or not set(pair) <= _HEX:
            raise FilterError(f"bad escape {text[slash:slash + 3]!r}: use \\HH")
        out.append(int(pair, 16))
        pos = slash + 3
    return bytes(out)
