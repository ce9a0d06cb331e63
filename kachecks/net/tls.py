"""Client TLS over a socket from kachecks.net.connect, within the Deadline.

Importing this module is cheap: ``ssl`` (and ``socket``, which it needs) are
imported only when a handshake is made, so plain-HTTP runs never load them.
The default is keepalived's SSL_GET: any TLS version the system OpenSSL
policy allows, no certificate verification, no SNI unless a name is given,
no close_notify on close. Ragged EOFs are not suppressed here:
kachecks.net.connect.Stream turns them into an end of stream it can tell from a
clean one (keepalived hashes anyway but skips its verbose digest dump).
"""

import time

from kachecks.errors import ProbeFailure, os_error_text
from kachecks.net.connect import Stream


class TLSOptions:
    """What the handshake should do; every field optional; immutable.

    ``verify``: check the chain against the system store (or ``ca_file``,
    which implies verification); the hostname checked is ``sni``.
    ``sni``: server name to send (None: no SNI extension, like genhash without -I).
    """

    __slots__ = ("verify", "ca_file", "cert_file", "key_file", "sni")

    def __init__(self, verify=False, ca_file=None, cert_file=None, key_file=None, sni=None):
        for name, value in (("verify", bool(verify or ca_file)), ("ca_file", ca_file),
                            ("cert_file", cert_file), ("key_file", key_file), ("sni", sni)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError("TLSOptions is immutable")


def _failure(message, reason):
    return ProbeFailure(message, "tls", reason)


def client_context(options):
    """An ``ssl.SSLContext`` for ``options`` (raises ProbeFailure on bad files)."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Some 3.10/3.11 releases (Debian's 3.11.2) set this by default: then a
    # ragged EOF would look like a clean close_notify.
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    if options.verify:
        ctx.check_hostname = bool(options.sni)
        try:
            if options.ca_file:
                ctx.load_verify_locations(cafile=options.ca_file)
            else:
                ctx.load_default_certs()
        except (OSError, ssl.SSLError) as exc:
            raise _failure(f"cannot load CA file {options.ca_file}: {os_error_text(exc)}",
                           "config") from None
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    # Versions and ciphers: the system OpenSSL policy, as for keepalived's TLS_method().
    if options.cert_file:
        try:
            ctx.load_cert_chain(options.cert_file, options.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise _failure(f"cannot load client certificate {options.cert_file}: "
                           f"{os_error_text(exc)}", "config") from None
    return ctx


def wrap(raw_sock, family, options, deadline, context=None):
    """Handshake on a connected ``_socket.socket``; returns an ``ssl.SSLSocket``.

    Failures: DeadlineExceeded("tls") or ProbeFailure(phase "tls", reason
    ``handshake``/``verify``/``config``).
    """
    import socket
    import ssl

    ctx = context or client_context(options)
    sock = socket.socket(family, socket.SOCK_STREAM, 0, fileno=raw_sock.detach())
    try:
        tls = ctx.wrap_socket(sock, server_hostname=options.sni or None,
                              do_handshake_on_connect=False, suppress_ragged_eofs=False)
        try:
            Stream(tls, deadline).bounded("tls", tls.do_handshake)
        except ssl.SSLCertVerificationError as exc:
            raise _failure(f"certificate verification failed: {exc.verify_message}", "verify") from None
        except (ssl.SSLError, OSError) as exc:
            raise _failure(f"TLS handshake failed: {os_error_text(exc)}", "handshake") from None
        return tls
    except BaseException:
        sock.close()
        raise


def peer_cert_days_left(tls_sock, now=None):
    """Days until the peer certificate's notAfter (float), or None without a cert.

    Works without verification: ``getpeercert()`` is empty then, so the DER
    is read directly.
    """
    der = tls_sock.getpeercert(binary_form=True)
    if not der:
        return None
    not_after = cert_not_after(der)
    if not_after is None:
        return None
    return (not_after - (time.time() if now is None else now)) / 86400.0


def cert_not_after(der):
    """notAfter of a DER certificate as a Unix timestamp (None if unreadable)."""
    try:
        cert, _ = _der_item(der, 0)
        tbs, _ = _der_item(cert[1], 0)
        body = tbs[1]
        pos = 0
        fields = []
        while pos < len(body) and len(fields) < 6:
            item, pos = _der_item(body, pos)
            fields.append(item)
        if fields[0][0] == 0xA0:  # explicit [0] version
            fields = fields[1:]
        validity = fields[3][1]
        _not_before, pos = _der_item(validity, 0)
        tag, value = _der_item(validity, pos)[0]
        return _asn1_time(tag, value.decode("ascii"))
    except (IndexError, ValueError, UnicodeDecodeError):
        return None


def _der_item(data, pos):
    """((tag, value), next_pos) of the DER TLV at ``pos``."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return (tag, data[pos:pos + length]), pos + length


def _asn1_time(tag, text):
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ
        year = int(text[:2])
        text = str(1900 + year if year >= 50 else 2000 + year) + text[2:]
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise ValueError("not a time")
    days = _days_since_epoch(int(text[0:4]), int(text[4:6]), int(text[6:8]))
    return days * 86400 + int(text[8:10]) * 3600 + int(text[10:12]) * 60 + int(text[12:14])


def _days_since_epoch(year, month, day):
    """Days from 1970-01-01 to a proleptic Gregorian date.

    calendar.timegm would do, but ``calendar`` imports datetime and locale:
    ~2 ms on every TLS check run, for one subtraction.
    """
    if not 1 <= month <= 12 or not 1 <= day <= 31:
        raise ValueError("bad date")
    year -= month <= 2
    era, year_of_era = divmod(year, 400)
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468
