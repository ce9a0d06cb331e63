"""A minimal LDAPv3 client for health checks: simple bind, StartTLS, search, unbind.

Why not ldap3: importing it costs ~70 ms of CPU (it loads logging, ssl,
json, uuid, dataclasses, ctypes …), 8× a bare interpreter, on every
delay_loop of every real server; a check needs four operations of RFC 4511.
This speaks them over any connected socket-like object (``sendall`` and
``recv``: a ``socket.socket``, an ``ssl.SSLSocket``) and returns results in
the shapes ldap3 uses, so a probe written for ldap3 keeps its judgement code:

    outcome  {"result": 0, "description": "success", "dn": matchedDN,
              "message": diagnosticMessage, "referrals": [url, …] or None}
    response [{"type": "searchResEntry", "dn": …, "raw_attributes": {name: [bytes]}},
              {"type": "searchResRef", "uri": [url, …]}]

Time: with ``deadline`` each wait is bounded by ``deadline.remaining(phase)``
(DeadlineExceeded); without, the caller bounds it (socket timeout, SIGALRM).
A server that closes, or sends a Notice of Disconnection, raises
``ConnectionClosed``; bytes that are not LDAP raise ``ber.BERError``.
"""

from kachecks.ldap import ber
from kachecks.ldap.filter import encode as encode_filter

STARTTLS_OID = "1.3.6.1.4.1.1466.20037"
SCOPES = {"base": 0, "one": 1, "sub": 2}
NO_ATTRIBUTES = "1.1"

BIND_REQUEST, BIND_RESPONSE, UNBIND_REQUEST = 0x60, 0x61, 0x42
SEARCH_REQUEST, SEARCH_ENTRY, SEARCH_DONE, SEARCH_REFERENCE = 0x63, 0x64, 0x65, 0x73
EXTENDED_REQUEST, EXTENDED_RESPONSE = 0x77, 0x78
REFERRAL_TAG = 0xA3

# RFC 4511 §4.1.9 names, as ldap3 reports them in "description".
RESULT_NAMES = {
    0: "success", 1: "operationsError", 2: "protocolError", 3: "timeLimitExceeded",
    4: "sizeLimitExceeded", 7: "authMethodNotSupported", 8: "strongerAuthRequired",
    10: "referral", 11: "adminLimitExceeded", 12: "unavailableCriticalExtension",
    13: "confidentialityRequired", 14: "saslBindInProgress", 16: "noSuchAttribute",
    17: "undefinedAttributeType", 18: "inappropriateMatching", 19: "constraintViolation",
    21: "invalidAttributeSyntax", 32: "noSuchObject", 33: "aliasProblem",
    34: "invalidDNSyntax", 36: "aliasDereferencingProblem", 48: "inappropriateAuthentication",
    49: "invalidCredentials", 50: "insufficientAccessRights", 51: "busy", 52: "unavailable",
    53: "unwillingToPerform", 54: "loopDetect", 64: "namingViolation",
    65: "objectClassViolation", 80: "other",
}


class ConnectionClosed(OSError):
    """The server closed the connection (or announced it would) mid-operation."""


class Client:
    """One LDAP session over ``sock``; message IDs count from 1."""

    def __init__(self, sock, deadline=None):
        self.sock = sock
        self.deadline = deadline
        self.buffer = bytearray()
        self.last_id = 0
        _no_delay(sock)

    def use(self, sock):
        """Go on over ``sock`` (the TLS socket after StartTLS)."""
        self.sock = sock
        _no_delay(sock)

    def bind(self, dn="", password=""):
        """Simple bind (anonymous when both are empty); returns the outcome."""
        request = ber.integer(3) + ber.octets(dn) + ber.octets(password, 0x80)
        message_id = self._send(ber.tlv(BIND_REQUEST, request), "bind")
        return _outcome(self._expect(message_id, BIND_RESPONSE, "bind"))

    def start_tls(self):
        """The StartTLS extended operation; on success the caller handshakes on
        the same socket and hands the TLS socket to ``use``."""
        message_id = self._send(ber.tlv(EXTENDED_REQUEST, ber.octets(STARTTLS_OID, 0x80)),
                                "starttls")
        return _outcome(self._expect(message_id, EXTENDED_RESPONSE, "starttls"))

    def search(self, base, scope="sub", filter_text="(objectClass=*)", attributes=()):
        """(outcome, response); ``filter_text`` errors raise FilterError before any I/O."""
        request = b"".join((
            ber.octets(base),
            ber.integer(SCOPES[scope], ber.ENUMERATED),
            ber.integer(0, ber.ENUMERATED),  # derefAliases: never
            ber.integer(0), ber.integer(0),  # no size or time limit of our own
            ber.boolean(False),
            encode_filter(filter_text),
            ber.tlv(ber.SEQUENCE, b"".join(ber.octets(a) for a in attributes or
                                           (NO_ATTRIBUTES,))),
        ))
        message_id = self._send(ber.tlv(SEARCH_REQUEST, request), "search")
        response = []
        while True:
            tag, value = self._receive(message_id, "search")
            if tag == SEARCH_ENTRY:
                response.append(_entry(value))
            elif tag == SEARCH_REFERENCE:
                response.append({"type": "searchResRef",
                                 "uri": [v.decode("utf-8", "replace")
                                         for _, v in ber.children(value)]})
            elif tag == SEARCH_DONE:
                return _outcome(value), response
            else:
                raise ber.BERError(f"unexpected LDAP operation 0x{tag:02x} in a search")

    def unbind(self):
        """Say goodbye (no answer comes); errors are the caller's to ignore."""
        self._send(ber.tlv(UNBIND_REQUEST), "unbind")

    # -- wire ------------------------------------------------------------
    def _send(self, operation, phase):
        self.last_id += 1
        message = ber.tlv(ber.SEQUENCE, ber.integer(self.last_id) + operation)
        self._bound(phase)
        try:
            self.sock.sendall(message)
        except TimeoutError:
            raise self._expired(phase) from None
        return self.last_id

    def _expect(self, message_id, wanted, phase):
        tag, value = self._receive(message_id, phase)
        if tag != wanted:
            raise ber.BERError(f"expected LDAP operation 0x{wanted:02x}, got 0x{tag:02x}")
        return value

    def _receive(self, message_id, phase):
        """(operation tag, operation value) of the next message for ``message_id``."""
        while True:
            found = ber.header(self.buffer)
            if found is None:
                self._fill(phase)
                continue
            tag, start, end = found
            message = bytes(self.buffer[start:end])
            del self.buffer[:end]
            if tag != ber.SEQUENCE:
                raise ber.BERError(f"not an LDAP message (tag 0x{tag:02x})")
            _, id_value, pos = ber.read(message)
            op_tag, op_value, _ = ber.read(message, pos)
            got_id = ber.to_int(id_value)
            if got_id == 0:  # unsolicited: a Notice of Disconnection
                notice = _outcome(op_value)
                raise ConnectionClosed(f"server disconnects: {notice['description']}"
                                       + (f": {notice['message']}" if notice["message"] else ""))
            if got_id == message_id:
                return op_tag, op_value

    def _fill(self, phase):
        self._bound(phase)
        try:
            data = self.sock.recv(16384)
        except TimeoutError:
            raise self._expired(phase) from None
        if not data:
            raise ConnectionClosed("connection closed by the server")
        self.buffer += data

    def _bound(self, phase):
        if self.deadline is not None:
            self.sock.settimeout(self.deadline.remaining(phase))

    def _expired(self, phase):
        if self.deadline is None:
            return TimeoutError(f"timed out during {phase}")
        return self.deadline.expired_in(phase)


def _no_delay(sock):
    """Send each request at once: with Nagle, a request right after the TLS
    handshake waits for the server's delayed ACK (40 ms against slapd)."""
    import _socket

    try:
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
    except OSError:  # not TCP
        pass


def _outcome(value):
    """An LDAPResult (and what follows it) as ldap3's result dict."""
    parts = ber.children(value)
    if len(parts) < 3 or parts[0][0] != ber.ENUMERATED:
        raise ber.BERError("malformed LDAPResult")
    code = ber.to_int(parts[0][1])
    referrals = None
    for tag, inner in parts[3:]:
        if tag == REFERRAL_TAG:
            referrals = [v.decode("utf-8", "replace") for _, v in ber.children(inner)]
    return {"result": code, "description": RESULT_NAMES.get(code, "unknown"),
            "dn": parts[1][1].decode("utf-8", "replace"),
            "message": parts[2][1].decode("utf-8", "replace"), "referrals": referrals}


def _entry(value):
    (_, dn), (_, attributes) = ber.children(value)[:2]
    raw = {}
    for _, attribute in ber.children(attributes):
        (_, name), (_, values) = ber.children(attribute)[:2]
        raw.setdefault(name.decode("utf-8", "replace"), []).extend(
            v for _, v in ber.children(values))
    return {"type": "searchResEntry", "dn": dn.decode("utf-8", "replace"),
            "raw_attributes": raw}
