"""genhash -v: keepalived's banners and dumps, in keepalived's order
(docs/genhash.md: identical to keepalived's -v but the response time, and the
control characters of a peer's header, escaped in its text part).

An observer for kachecks.http.response.ResponseReader, writing bytes to a
binary stream as each read arrives, exactly as check_http.c prints them.
"""

from kachecks.genhash.hexdump import hexdump


def _banner(title):
    return b"-" * 23 + b"[" + title + b"]" + b"-" * 23 + b"\n"


HEADER_BANNER = _banner(b"    HTTP Header Buffer    ")
HEADER_ASCII_BANNER = _banner(b" HTTP Header Ascii Buffer ")
BODY_BANNER = _banner(b"        HTML Buffer        ")
HASH_BANNER = _banner(b"    HTML hash resulting    ")
HASH_FINAL_BANNER = _banner(b" HTML hash final resulting ")


# The bytes of a peer's header that could drive the reader's terminal (ESC, BEL, a bare
# CR, C1 controls…), written as Python escapes them (as kachecks.runtime.one_line does).
_ESCAPES = {byte: repr(chr(byte))[1:-1].encode("ascii")
            for byte in (*range(0x00, 0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0))}


def terminal_safe(raw):
    """``raw`` as keepalived prints it (``%.*s``), but for the control characters in it:
    CRLF line ends and tabs stay, everything else is escaped (``\\x1b``). The hex dump
    beside it keeps every byte, in keepalived's layout."""
    lines = raw.split(b"\r\n")
    for index, line in enumerate(lines):
        if any(byte in _ESCAPES for byte in line):
            lines[index] = b"".join(_ESCAPES.get(byte) or bytes((byte,)) for byte in line)
    return b"\r\n".join(lines)


class VerboseDump:
    """ResponseReader observer printing what keepalived's genhash -v prints."""

    def __init__(self, out):
        self.out = out

    def header_pending(self):
        self.out.write(HEADER_BANNER)

    def header(self, raw):
        nul = raw.find(b"\0")  # printf("%.*s") stops at a NUL
        text = terminal_safe(raw if nul < 0 else raw[:nul])
        self.out.write(hexdump(raw) + HEADER_ASCII_BANNER + text + b"\n")

    def body(self, data, first):
        if first:
            self.out.write(BODY_BANNER)
        self.out.write(hexdump(data))

    def digest(self, raw_digest):
        """At EOF: the digest bytes framed by the two hash banners."""
        self.out.write(b"\n" + HASH_BANNER + hexdump(raw_digest) + HASH_FINAL_BANNER)


def response_time_line(url, microseconds):
    return b"\nGlobal response time for [%s] = %d usecs\n" % (url, microseconds)
