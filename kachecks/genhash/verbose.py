"""genhash -v: keepalived's banners and dumps, in keepalived's order
(docs/genhash.md: identical to keepalived's -v but the response time).

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


class VerboseDump:
    """ResponseReader observer printing what keepalived's genhash -v prints."""

    def __init__(self, out):
        self.out = out

    def header_pending(self):
        self.out.write(HEADER_BANNER)

    def header(self, raw):
        nul = raw.find(b"\0")  # printf("%.*s") stops at a NUL
        self.out.write(hexdump(raw) + HEADER_ASCII_BANNER + (raw if nul < 0 else raw[:nul]) + b"\n")

    def body(self, data, first):
        if first:
            self.out.write(BODY_BANNER)
        self.out.write(hexdump(data))

    def digest(self, raw_digest):
        """At EOF: the digest bytes framed by the two hash banners."""
        self.out.write(b"\n" + HASH_BANNER + hexdump(raw_digest) + HASH_FINAL_BANNER)


def response_time_line(url, microseconds):
    return b"\nGlobal response time for [%s] = %d usecs\n" % (url, microseconds)
