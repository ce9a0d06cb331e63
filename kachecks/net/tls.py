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

from kachecks.errors import DeadlineExceeded, ProbeFailure, os_error_text
from kachecks.net import steps
from kachecks.utctime import generalized_time


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


# CA bundles are a few hundred kB; a larger file is the wrong file (or a sparse trap).
MAX_TLS_FILE = 16 << 20


def client_context(options):
    """An ``ssl.SSLContext`` for ``options`` (raises ProbeFailure on bad files).

    OpenSSL opens files by name and would block on a FIFO or read /dev/zero
    forever, so each file is first opened here without blocking and checked
    (kachecks.files); OpenSSL then reads that very file through
    /proc/self/fd.
    """
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Some 3.10/3.11 releases (Debian's 3.11.2) set this by default: then a
    # ragged EOF would look like a clean close_notify.
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    if options.verify:
        ctx.check_hostname = bool(options.sni)
        try:
            if options.ca_file:
                with checked_files(options.ca_file) as (cafile,):
                    ctx.load_verify_locations(cafile=cafile)
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
            with checked_files(options.cert_file, options.key_file) as (certfile, keyfile):
                # An encrypted key fails here instead of prompting on the terminal.
                ctx.load_cert_chain(certfile, keyfile, password=b"")
        except (OSError, ssl.SSLError) as exc:
            raise _failure(f"cannot load client certificate {options.cert_file}: "
                           f"{os_error_text(exc)}", "config") from None
    return ctx


class checked_files:
    """``with checked_files(a, b) as (a2, b2)``: paths OpenSSL may open safely (None stays None).

    Raises kachecks.files.UnusableFile (a usage error) for a FIFO, device,
    directory or oversized file.
    """

    def __init__(self, *paths):
        self.paths = paths
        self.fds = []

    def __enter__(self):
        import os

        from kachecks.files import open_regular

        proc = os.path.isdir("/proc/self/fd")
        opened = []
        try:
            for path in self.paths:
                if path is None:
                    opened.append(None)
                    continue
                fd, _info = open_regular(path, "", MAX_TLS_FILE)
                self.fds.append(fd)
                opened.append(f"/proc/self/fd/{fd}" if proc else path)
        except BaseException:
            self.__exit__()
            raise
        return opened

    def __exit__(self, *exc):
        import os

        while self.fds:
            os.close(self.fds.pop())


def wrap(raw_sock, family, options, deadline, context=None):
    """Handshake on a connected ``_socket.socket``; returns an ``ssl.SSLSocket`` (blocking).

    Failures: DeadlineExceeded("tls") or ProbeFailure(phase "tls", reason
    ``handshake``/``verify``/``config``).
    """
    return steps.run(handshake(raw_sock, family, options, deadline, context), deadline)


def handshake(raw_sock, family, options, deadline, context=None):
    """Steps of ``wrap``: the ``ssl.SSLSocket`` (non-blocking), handshake done."""
    import socket
    import ssl

    ctx = context or client_context(options)
    sock = socket.socket(family, socket.SOCK_STREAM, 0, fileno=raw_sock.detach())
    tls = None
    try:
        sock.setblocking(False)
        tls = ctx.wrap_socket(sock, server_hostname=options.sni or None,
                              do_handshake_on_connect=False, suppress_ragged_eofs=False)
        expired = lambda: DeadlineExceeded("tls", deadline.timeout)  # noqa: E731
        while True:
            if deadline.expires <= time.monotonic():
                raise expired()
            try:
                tls.do_handshake()
                return tls
            except ssl.SSLWantReadError:
                yield from steps.wait(tls, steps.READ, expired)
            except ssl.SSLWantWriteError:
                yield from steps.wait(tls, steps.WRITE, expired)
            except ssl.SSLCertVerificationError as exc:
                raise _failure(f"certificate verification failed: {exc.verify_message}",
                               "verify") from None
            except (ssl.SSLError, OSError) as exc:
                raise _failure(f"TLS handshake failed: {os_error_text(exc)}", "handshake") \
                    from None
    except BaseException:
        (tls or sock).close()  # the wrapped socket took the descriptor over
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
    return generalized_time(text)
