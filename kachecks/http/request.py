"""keepalived's HTTP request bytes: the only place in kachecks they are made.

keepalived (check_http.c ``http_request_thread``) formats a fixed template
into a 2048-byte buffer. HTTP_GET/SSL_GET, genhash and kachecks must send
the same bytes, or a digest computed by one would not match the other's
(servers may vary their reply on Host or User-Agent).
"""

GET_BUFFER_LENGTH = 2048  # snprintf buffer: at most 2047 bytes go out

# keepalived's http_protocol modes, for genhash -P and kachecks-http -P alike.
PROTOCOLS = {
    # mode: (minor version digit, Connection: close?)
    "1.0": (b"0", False),
    "1.0c": (b"0", True),
    "1.0C": (b"0", True),
    "1.1": (b"1", True),
}


def protocol_mode(text):
    """``text`` if it is one of PROTOCOLS, else ValueError (an option converter)."""
    if text not in PROTOCOLS:
        raise ValueError(f"expected 1.0, 1.0c or 1.1, got {text!r}")
    return text


def request_text(text):
    """``text`` if it can go into the request line or Host header unchanged, else
    ValueError (an option converter). A control character would make it another
    request than keepalived's: CR/LF start a new header line."""
    if text.isascii() and text.isprintable():  # the usual case, without a loop in Python
        return text
    bad = next((c for c in text if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise ValueError(f"control character {bad!r} in {text!r}: the request would not be"
                         " keepalived's")
    return text


def host_header(ip, port, ipv6=False, vhost=None):
    """The Host value: the vhost verbatim (no port), else ``ip:port`` / ``[v6]:port``."""
    if vhost is not None:
        return vhost
    return f"[{ip}]:{port}" if ipv6 else f"{ip}:{port}"


def _bytes(text):
    if isinstance(text, bytes):
        return text
    import os

    return os.fsencode(text)  # verbatim: undecodable argv bytes round-trip


def build_request(path, host, protocol="1.0", extra_headers=()):
    """The GET request bytes.

    ``path`` is sent verbatim (str or bytes). ``extra_headers`` are full
    ``Name: value`` lines (no CRLF) inserted after Host, before the final
    CRLF; genhash never passes any. The result is cut at 2047 bytes like
    keepalived's snprintf, extra headers included.
    """
    minor, close = PROTOCOLS[protocol]
    parts = [b"GET ", _bytes(path), b" HTTP/1.", minor, b"\r\nUser-Agent: KeepAliveClient\r\n"]
    if close:
        parts.append(b"Connection: close\r\n")
    parts += [b"Host: ", _bytes(host), b"\r\n"]
    for line in extra_headers:
        parts += [_bytes(line), b"\r\n"]
    parts.append(b"\r\n")
    return b"".join(parts)[:GET_BUFFER_LENGTH - 1]
