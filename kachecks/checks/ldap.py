"""kachecks-ldap: bind and search an LDAP server (docs/ldap.md).

Replaces the ``ldapsearch … | grep "^o: …$"`` MISC_CHECK: the password
never reaches argv, and every way the server can be unhealthy (down, mute,
wrong credentials, no such base, too few entries, wrong value, referral,
size limit) has its own one-line message.

ldap3 encodes and decodes the protocol, but the socket is ours
(kachecks.net.connect and kachecks.net.tls, as for the other checks: --bind,
--fwmark, TLS options, expiry warning), handed to ldap3 already connected
behind an adapter whose every recv/sendall gets the socket timeout the
deadline leaves. So the whole run, ldap3 calls included, is bounded by the
deadline without signals, on any thread.
ldap3 is imported only inside the probe and dominates the start-up cost.

With --provider, the checked server's and the providers' contextCSN are
read on connections of their own, beside the search, and judged by
kachecks.checks.replication (replication freshness, per server ID).
"""

from kachecks.argspec import FLAG, MULTI, Opt
from kachecks.checks.contract import Check, run
from kachecks.checks.options import (SNI_NAME_OPT, TLS_OPTS, Target, common, compile_option,
                                     fields_of, integer, port_number, seconds, tls_fields)
from kachecks.checks.result import L4CON, L7OK, L7RSP, L7STS, L7TOUT, Cause, Result, cause_of
from kachecks.errors import DeadlineExceeded, KachecksError, ProbeFailure, UsageError

PASSWORD_ENV = "KACHECKS_LDAP_PASSWORD"
PROVIDER_PASSWORD_ENV = "KACHECKS_LDAP_PROVIDER_PASSWORD"
DEFAULT_MAX_LAG = 60.0  # seconds
PROVIDER_DOWN = ("ok", "fail")
STARTTLS_OID = "1.3.6.1.4.1.1466.20037"
DEFAULT_PORTS = {"ldap": 389, "ldaps": 636}
MAX_ENTRIES = 2**31 - 1  # LDAP counts are 32-bit integers
BER_SEQUENCE = 0x30  # the first byte of every LDAP message (RFC 4511 §4.1.1)
LDAP3_SCOPES = {"base": "BASE", "one": "LEVEL", "sub": "SUBTREE"}

HEALTHY = Cause(L7OK)
CHANGES_LIMIT = 50  # entries a window search for changes a replica lacks may return

# LDAP result codes (RFC 4511 §4.1.9) that get a message of their own.
SIZE_LIMIT_EXCEEDED = 4
REFERRAL = 10
NO_SUCH_OBJECT = 32
INVALID_CREDENTIALS = 49


def _scope(text):
    if text not in LDAP3_SCOPES:
        raise ValueError(f"expected base, one or sub, got {text!r}")
    return text


def _filter(text):
    text = text.strip()
    if not text:
        raise ValueError("empty filter")
    return text if text.startswith("(") else f"({text})"


def _split_assertion(text, what):
    attr, sep, value = text.partition("=")
    attr = attr.strip()
    if not sep or not attr or not all(c.isalnum() or c in "-;." for c in attr):
        raise ValueError(f"expected ATTR={what}, got {text!r}")
    return attr, value


def _expectation(text):
    return _split_assertion(text, "VALUE")


def _regex_expectation(text):
    attr, pattern = _split_assertion(text, "RE")
    return attr, compile_option("--expect-regex", pattern)


LDAP = "LDAP"
OPTS = [
    Opt("uri", "H", "uri", metavar="URI",
        help="server: ldap://HOST[:PORT] or ldaps://HOST[:PORT] (HOST a name, IPv4 or [IPv6]);"
             " a bare HOST (check_ldap's -H) means ldap://HOST", section=LDAP),
    Opt("starttls", "Z", "starttls", kind=FLAG, help="upgrade ldap:// with StartTLS before binding",
        section=LDAP),
    Opt("bind_dn", "D", "bind-dn", metavar="DN",
        help=f"simple bind as DN; password from --password-file or ${PASSWORD_ENV}"
             " (anonymous without it)", section=LDAP),
    Opt("password_file", "y", "password-file", metavar="FILE",
        help="file holding the bind password (mode 0600 or 0640)", section=LDAP),
    Opt("base", "b", "base", metavar="DN", default="", help="search base (default: the root DSE)",
        section=LDAP),
    Opt("scope", "s", "scope", metavar="base|one|sub", default="sub", convert=_scope,
        help="search scope", section=LDAP),
    Opt("filter", None, "filter", metavar="FILTER", default="(objectClass=*)", convert=_filter,
        help="search filter (RFC 4515; outer parentheses optional, as in ldapsearch)",
        section=LDAP),
    Opt("expect", None, "expect", kind=MULTI, metavar="ATTR=VALUE", convert=_expectation,
        help="a returned entry must hold exactly this value (repeatable; all must hold)",
        section=LDAP),
    Opt("expect_regex", None, "expect-regex", kind=MULTI, metavar="ATTR=RE",
        convert=_regex_expectation,
        help="a value of ATTR on a returned entry must match RE (repeatable)", section=LDAP),
    Opt("min_entries", None, "min-entries", metavar="N", default=1, convert=integer(0, MAX_ENTRIES),
        help="fewest entries the search must return", section=LDAP),
    SNI_NAME_OPT,
    *TLS_OPTS,
]


def _provider_down(text):
    if text not in PROVIDER_DOWN:
        raise ValueError(f"expected ok or fail, got {text!r}")
    return text


REPLICATION = "Replication freshness (syncrepl consumers)"
OPTS += [
    Opt("providers", None, "provider", kind=MULTI, metavar="URI",
        help="also compare this server's contextCSN with this provider's, per server ID"
             " (repeatable: multi-provider); ldap[s]://HOST[:PORT]", section=REPLICATION),
    Opt("max_lag", None, "max-lag", metavar="SECONDS", convert=seconds,
        help="fail when this server lacks a provider change older than this"
             f" (default {DEFAULT_MAX_LAG:g})", section=REPLICATION),
    Opt("provider_down", None, "provider-down", metavar="ok|fail", convert=_provider_down,
        help="a provider that cannot be read: ok (default: logged, freshness judged on the"
             " other providers or skipped) or fail", section=REPLICATION),
    Opt("provider_bind_dn", None, "provider-bind-dn", metavar="DN",
        help="bind to the providers as DN (default: as --bind-dn, with its password)",
        section=REPLICATION),
    Opt("provider_password_file", None, "provider-password-file", metavar="FILE",
        help=f"the providers' bind password (or ${PROVIDER_PASSWORD_ENV})", section=REPLICATION),
]

USAGE = ("--uri ldap[s]://HOST[:PORT] [--base DN] [--filter F] [--expect ATTR=VALUE]"
         " [--provider URI] [OPTIONS]")
DESCRIPTION = """\
Bind to an LDAP server (anonymously, or as --bind-dn with the password from a
file or the environment, never argv), search, and judge what comes back.
Exit 0 when healthy, 1 otherwise (2+weight with --dynamic), for keepalived's
MISC_CHECK and vrrp_script. Referrals are never followed: a referral answer,
a size-limit error, invalid credentials, a missing base, too few entries, a
missing value and a server that accepts TCP but never answers LDAP each fail
with their own message.

With --provider, a syncrepl consumer must also be fresh: for every server ID
a provider holds, this server's contextCSN must be as new, or the provider's
newest change it lacks younger than --max-lag. A provider that cannot be
read is logged and skipped (--provider-down fail: a failure), so a provider
outage does not empty the pool."""
EPILOG = """\
Examples:
  # the reference deployment's MISC_CHECK (replaces ldapsearch | grep)
  kachecks-ldap --uri ldap://192.168.8.101 --base dc=mysite,dc=mydmn,dc=org \\
      --filter '(dc=mysite)' --expect o=mysite.mydmn.org
  # StartTLS, verified against a CA, bound as a monitoring user
  KACHECKS_LDAP_PASSWORD=… kachecks-ldap --uri ldap://ldap1.mydmn.org --starttls \\
      --ca-file /etc/ssl/certs/mydmn-ca.pem --bind-dn uid=monitor,ou=people,dc=mysite,dc=mydmn,dc=org \\
      --base ou=people,dc=mysite,dc=mydmn,dc=org --filter '(uid=*)' --min-entries 10
  # LDAPS with a password file (chmod 600)
  kachecks-ldap --uri ldaps://192.168.8.101 --bind-dn cn=monitor,dc=mysite,dc=mydmn,dc=org \\
      --password-file /etc/kachecks/ldap.pw --base dc=mysite,dc=mydmn,dc=org --scope base
  # web2, a replica of web1: also fail when it lacks a change older than 30 s
  # (repeat --provider for each provider of a multi-provider setup)
  kachecks-ldap --uri ldap://192.168.8.102 --base dc=mysite,dc=mydmn,dc=org \\
      --filter '(dc=mysite)' --expect o=mysite.mydmn.org \\
      --provider ldap://192.168.8.101 --max-lag 30
  # Icinga/Nagios: WARNING beyond 5 s of lag, CRITICAL beyond 30 s
  kachecks-ldap --nagios --uri ldap://192.168.8.102 --base dc=mysite,dc=mydmn,dc=org \\
      --provider ldap://192.168.8.101 -w 5 -c 30 --max-lag 300"""


def parse_uri(text):
    """``ldap[s]://HOST[:PORT]`` -> (scheme, host, port); HOST may be ``[v6]``.

    A bare host name or address (check_ldap's ``-H HOST``) is ``ldap://HOST``.
    """
    if "/" not in text and not text.count(":") > 1 and not text.startswith("["):
        text = f"ldap://{text}"
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in DEFAULT_PORTS:
        raise UsageError(f"--uri must be ldap://HOST[:PORT] or ldaps://HOST[:PORT], got {text!r}")
    hostport, _, tail = rest.partition("/")
    if tail.strip("/"):
        raise UsageError(f"--uri takes no DN or query ({text!r}): use --base, --scope, --filter")
    port_text = ""
    if hostport.startswith("["):
        host, close, after = hostport[1:].partition("]")
        if not close or (after and not after.startswith(":")):
            raise UsageError(f"--uri: bad bracketed IPv6 address in {text!r}")
        port_text = after[1:]
    elif hostport.count(":") > 1:
        raise UsageError(f"--uri: write an IPv6 address in brackets, ldap://[{hostport}]")
    else:
        host, _, port_text = hostport.partition(":")
    if not host:
        raise UsageError(f"--uri has no host: {text!r}")
    try:
        port = port_number(port_text) if port_text else DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise UsageError(f"--uri: {exc}") from None
    return scheme, host, port


class LdapTarget(Target):
    """One bind-and-search.

    ``scheme``: ldap or ldaps; ``tls``: kachecks.net.tls.TLSOptions for
    ldaps:// and --starttls, else None; ``password``: read from the file or
    the environment at parse time (None: anonymous); ``expect``: (attr,
    value) pairs; ``expect_regex``: (attr, compiled pattern) pairs.
    """

    __slots__ = ("scheme", "starttls", "tls", "cert_min_days", "bind_dn", "password", "base",
                 "scope", "filter", "expect", "expect_regex", "min_entries",
                 # replication freshness: ``providers`` are LdapTargets to read contextCSN from
                 "providers", "max_lag", "provider_down")


def build(ns):
    """The LdapTarget for parsed options; the password and TLS files are read here."""
    base = common(ns)
    if not ns.uri:
        raise UsageError("--uri is required")
    scheme, host, port = parse_uri(ns.uri)
    if ns.starttls and scheme == "ldaps":
        raise UsageError("--starttls is for ldap:// URIs; ldaps:// is TLS already")
    if ns.password_file and not ns.bind_dn:
        raise UsageError("--password-file needs --bind-dn")
    password = None
    if ns.bind_dn:
        from kachecks.secrets import password_from

        password = password_from(ns.password_file, PASSWORD_ENV)
        if password is None:
            raise UsageError(f"--bind-dn needs --password-file FILE or ${PASSWORD_ENV}")
    tls = tls_fields(ns, scheme == "ldaps" or ns.starttls, "ldaps:// or --starttls",
                     ns.sni_name, default_sni=host)
    target = LdapTarget(**base, **tls, host=host, port=port, scheme=scheme,
                        starttls=ns.starttls, bind_dn=ns.bind_dn, password=password,
                        base=ns.base, scope=ns.scope, filter=ns.filter, expect=tuple(ns.expect),
                        expect_regex=tuple(ns.expect_regex), min_entries=ns.min_entries,
                        **_replication_fields(ns))
    return _with_providers(target, ns)


def _replication_fields(ns):
    if not ns.providers:
        for given, option in ((ns.max_lag, "--max-lag"), (ns.provider_down, "--provider-down"),
                              (ns.provider_bind_dn, "--provider-bind-dn"),
                              (ns.provider_password_file, "--provider-password-file")):
            if given is not None:
                raise UsageError(f"{option} needs --provider")
    return {"providers": (),
            "max_lag": DEFAULT_MAX_LAG if ns.max_lag is None else ns.max_lag,
            "provider_down": ns.provider_down or "ok"}


def _with_providers(target, ns):
    """``target`` with its --provider targets: same search base and options, their own
    address, TLS (ldaps://, or --starttls) and bind (--provider-bind-dn, or the same)."""
    if not ns.providers:
        return target
    bind_dn, password = target.bind_dn, target.password
    if ns.provider_bind_dn or ns.provider_password_file:
        from kachecks.secrets import password_from

        bind_dn = ns.provider_bind_dn or target.bind_dn
        if not bind_dn:
            raise UsageError("--provider-password-file needs --provider-bind-dn or --bind-dn")
        password = password_from(ns.provider_password_file, PROVIDER_PASSWORD_ENV)
        if password is None:
            raise UsageError(f"--provider-bind-dn needs --provider-password-file FILE or"
                             f" ${PROVIDER_PASSWORD_ENV}")
    fields = {name: getattr(target, name) for name in fields_of(LdapTarget)}
    providers = []
    for text in ns.providers:
        scheme, host, port = _provider_uri(text)
        starttls = ns.starttls and scheme == "ldap"
        # the TLS options serve the providers that speak TLS; a plain one ignores them
        tls = tls_fields(ns, True, "", default_sni=host)["tls"] \
            if scheme == "ldaps" or starttls else None
        providers.append(LdapTarget(**dict(
            fields, host=host, port=port, scheme=scheme, starttls=starttls, tls=tls,
            cert_min_days=None, bind_dn=bind_dn, password=password, expect=(),
            expect_regex=(), min_entries=0, warning=None, critical=None)))
    return LdapTarget(**dict(fields, providers=tuple(providers)))


def _provider_uri(text):
    try:
        return parse_uri(text)
    except UsageError as exc:  # parse_uri speaks of --uri
        raise UsageError(str(exc).replace("--uri", "--provider")) from None


# net.connect failure reasons that are about this host, not the server.
LOCAL_REASONS = ("bind", "fwmark", "resolve")


class _Session:
    """One probe run: phase bookkeeping, the connection and the TLS handshakes."""

    def __init__(self, target, deadline):
        self.target = target
        self.deadline = deadline
        self.phase = "start"
        self.answered = False  # any LDAP (or TLS) answer seen: tells "mute" from "slow"
        self.heard = False  # the first byte of the server's LDAP stream seen
        self.times = []
        self.warning = ""
        self.family = None

    def enter(self, phase):
        self.deadline.remaining(self.phase)  # the phase that ends used up the time: name it
        now = self.deadline.elapsed()
        if self.times:
            self.times[-1] = (self.times[-1][0], now - self.times[-1][1])
        self.times.append((phase, now))
        self.phase = phase

    def connect(self):
        """A connected socket for ldap3 (TLS already for ldaps://) and the address that answered."""
        from kachecks.net import connect as net

        self.enter("connect")
        try:
            sock, self.family, sockaddr = net.connect(self.target.host, self.target.port,
                                                      self.deadline, bind=self.target.bind,
                                                      fwmark=self.target.fwmark)
        except DeadlineExceeded:
            raise
        except ProbeFailure as exc:
            if exc.reason in LOCAL_REASONS:
                raise
            raise ProbeFailure(f"server down: {exc} at {self.target.identity}",
                               "connect", exc.reason, code=exc.code) from None
        if self.target.scheme == "ldaps":
            sock = self.handshake(sock)
        return _BoundedSocket(sock, self), sockaddr

    def handshake(self, sock):
        from kachecks.checks import tlsopts
        from kachecks.net import tls

        self.enter("tls")
        wrapped = tls.wrap(sock, self.family, self.target.tls, self.deadline)
        self.answered = True
        self.warning = tlsopts.expiry_warning(self.target.cert_min_days,
                                              tls.peer_cert_days_left(wrapped))
        return wrapped

    def expired(self, phase):
        if not self.answered and phase not in ("start", "ldap3 import", "resolve", "connect"):
            return ProbeFailure(
                f"TCP connection accepted but no LDAP answer within {self.deadline.timeout:g} s"
                f" (during {phase})", phase, "timeout", code=L7TOUT)
        return DeadlineExceeded(phase, self.deadline.timeout)


class _BoundedSocket:
    """The socket ldap3 is handed: recv/sendall run under the deadline.

    ldap3 sets no timeout of its own on an adopted socket, so a mute server
    would block it forever; here each call gets what the deadline leaves and
    raises DeadlineExceeded (not an OSError: ldap3 lets it through) when it
    runs out. Other socket errors reach ldap3 as before, which reports them.
    """

    __slots__ = ("sock", "session", "stream")

    def __init__(self, sock, session):
        from kachecks.net.connect import Stream

        self.sock = sock
        self.session = session
        self.stream = Stream(sock, session.deadline)

    def recv(self, size):
        data = self.stream.bounded(self.session.phase, self.sock.recv, size)
        if data and not self.session.heard:
            self.session.heard = True
            if data[0] != BER_SEQUENCE:
                raise _not_ldap(data, self.session.phase)
        return data

    def sendall(self, data):
        return self.stream.bounded(self.session.phase, self.sock.sendall, data)

    def shutdown(self, how):
        self.sock.shutdown(how)

    def close(self):
        self.sock.close()

    def fileno(self):
        return self.sock.fileno()


def _not_ldap(data, phase):
    """Every LDAP message is a BER SEQUENCE: a stream that starts otherwise is another
    protocol (an HTTP server on the LDAP port answers "HTTP/1.0 400 …"), said as such
    rather than as whatever ldap3's decoder trips over; ldap3 lets it through (not an
    OSError)."""
    first = data[:64].split(b"\n", 1)[0].rstrip(b"\r")[:48]
    shown = first.decode("utf-8", "replace")
    more = "…" if len(first) < len(data.rstrip(b"\r\n")) else ""
    return ProbeFailure(f'not an LDAP server (it answered the {phase} with "{shown}{more}")',
                        phase, "not-ldap", code=L7RSP)


def probe(target, deadline):
    """Bind and search ``target``: a Result, or ProbeFailure saying what is wrong.

    With --provider, the replication freshness too (kachecks.checks.replication).
    """
    if target.providers:
        from kachecks.checks import replication

        return replication.probe(target, deadline, _probe, _read_context_csn, _changes)
    return _probe(target, deadline)


def _probe(target, deadline):
    return _run(_Session(target, deadline))


def _run(session, read=None):
    try:
        return _search(session, read)
    except DeadlineExceeded as exc:
        raise session.expired(exc.phase or session.phase) from None


def _search(session, read=None):
    target = session.target
    session.enter("ldap3 import")
    import ldap3
    from ldap3.core.exceptions import LDAPCommunicationError, LDAPException, LDAPInvalidFilterError

    sock, sockaddr = session.connect()
    # A literal address, so ldap3 never calls the resolver itself; it never connects either:
    server = ldap3.Server(sockaddr[0], port=target.port, get_info=ldap3.NONE)
    _resolved(server, session.family, sockaddr)
    conn = ldap3.Connection(
        server, user=target.bind_dn, password=target.password,
        authentication=ldap3.SIMPLE if target.bind_dn else ldap3.ANONYMOUS,
        auto_referrals=False, read_only=True, check_names=False, raise_exceptions=False,
        return_empty_attributes=False)

    def adopt_socket(address, use_ssl=False, unix_socket=False):
        conn.socket = sock
        conn.closed = False

    conn.strategy._open_socket = adopt_socket
    try:
        conn.open(read_server_info=False)
        if target.starttls:
            _start_tls(session, conn)
        if target.bind_dn:
            session.enter("bind")
            conn.bind()
            session.answered = True
            _judge_bind(target, conn.result)
        if read is not None:  # a contextCSN read (kachecks.checks.replication), not the search
            return _goodbye(conn, read(session, conn))
        session.enter("search")
        attributes = (sorted({a for a, _ in target.expect + target.expect_regex})
                      or [ldap3.NO_ATTRIBUTES])
        conn.search(target.base, target.filter,
                    search_scope=getattr(ldap3, LDAP3_SCOPES[target.scope]),
                    attributes=attributes, dereference_aliases=ldap3.DEREF_NEVER)
        session.answered = True
    except LDAPInvalidFilterError as exc:
        raise UsageError(f"--filter {target.filter!r}: {exc}") from None
    except LDAPCommunicationError as exc:
        what = "no LDAP answer, connection closed" if not session.answered else "connection lost"
        raise ProbeFailure(f"{what} during {session.phase}: {_ldap3_reason(exc)}",
                           session.phase, "closed", code=L4CON) from None
    except LDAPException as exc:
        raise ProbeFailure(f"{session.phase} failed: {_ldap3_reason(exc)}", session.phase,
                           code=L7RSP) from None
    except KachecksError:
        raise
    except Exception as exc:  # ldap3's decoder tripping over what the server sent
        raise ProbeFailure(f"malformed LDAP reply during {session.phase}"
                           f" ({type(exc).__name__}: {exc})", session.phase, "malformed",
                           code=L7RSP) from None
    session.enter("judge")
    return _goodbye(conn, _judge_search(session, conn.result or {}, conn.response or []))


def _resolved(server, family, sockaddr):
    """Tell ldap3 the address is resolved: the one that answered. Else, at open, it calls
    getaddrinfo (AI_ADDRCONFIG: a netlink exchange of about seven system calls, each a
    hand-over of the interpreter lock in the agent) only to choose the candidate address
    our adopted socket stands in for. An ldap3 without these attributes resolves as before."""
    from datetime import datetime
    from socket import IPPROTO_TCP, SOCK_STREAM

    server._address_info = [[family, SOCK_STREAM, IPPROTO_TCP, "", sockaddr, None, None]]
    server._address_info_resolved_time = datetime.now()


def _goodbye(conn, result):
    """Unbind and return ``result``."""
    try:
        conn.unbind()
    except Exception:  # the verdict is in; a failing goodbye changes nothing
        pass
    return result


def _read_context_csn(server, deadline):
    """(dn, contextCSN values) of ``server``, for kachecks.checks.replication.

    A server that never answered raises ProbeFailure with reason "unreachable".
    """
    session = _Session(server, deadline)
    try:
        return _run(session, _context_csn)
    except ProbeFailure as exc:
        if session.answered or exc.reason in ("verify", "config"):  # it spoke; we refused
            raise
        raise ProbeFailure(str(exc), exc.phase, "unreachable", code=cause_of(exc).code) from None


def _context_csn(session, conn):
    """(dn, values): contextCSN of --base, else of the naming context holding it.

    One base-scope search when --base is the suffix of its database (the
    usual case); otherwise the root DSE's namingContexts say which is.
    """
    from kachecks.checks import replication

    base = session.target.base
    if base:
        session.enter("contextCSN")
        _, values = _read_attribute(session, conn, base, "contextCSN")
        if values:
            return base, values
    session.enter("root DSE")
    found, contexts = _read_attribute(session, conn, "", "namingContexts")
    if not found:
        raise ProbeFailure(f"cannot read the root DSE: {_describe(conn.result or {})}",
                           "root DSE", code=L7RSP)
    suffix = replication.naming_context(base, contexts)
    if suffix is None:
        listed = ", ".join(contexts) or "none"
        what = f"holds {base}" if base else "to choose without --base"
        raise ProbeFailure(f"no naming context {what} (namingContexts: {listed})", "root DSE",
                           code=L7RSP)
    if base and replication.same_dn(suffix, base):
        return base, []
    session.enter("contextCSN")
    return suffix, _read_attribute(session, conn, suffix, "contextCSN")[1]


def _changes(server, deadline, dn, low, high):
    """entryCSN values of entries under ``dn`` on ``server`` last changed between the
    CSNs ``low`` and ``high`` (at most CHANGES_LIMIT: any one is evidence)."""
    import ldap3

    def read(session, conn):
        session.enter("entryCSN search")
        conn.search(dn, f"(&(entryCSN>={low})(entryCSN<={high}))", search_scope=ldap3.SUBTREE,
                    attributes=["entryCSN"], size_limit=CHANGES_LIMIT,
                    dereference_aliases=ldap3.DEREF_NEVER)
        entries = [r for r in conn.response or () if r.get("type") == "searchResEntry"]
        return [_text(v) for v in _values(entries, "entryCSN")]

    return _run(_Session(server, deadline), read)


def _read_attribute(session, conn, dn, attribute):
    """(entry found, values of ``attribute`` as text) of a base-scope read of ``dn``."""
    import ldap3

    conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=[attribute],
                dereference_aliases=ldap3.DEREF_NEVER)
    session.answered = True
    entries = [r for r in conn.response or () if r.get("type") == "searchResEntry"]
    return bool(entries), [_text(v) for v in _values(entries, attribute)]


def _ldap3_reason(exc):
    text = str(exc) or type(exc).__name__
    return text.replace("error receiving data: ", "")


def _start_tls(session, conn):
    session.enter("starttls")
    conn.extended(STARTTLS_OID)
    session.answered = True
    outcome = conn.result or {}
    if outcome.get("result") != 0:
        raise ProbeFailure(f"StartTLS refused: {_describe(outcome)}", "starttls", code=L7STS)
    conn.socket = _BoundedSocket(session.handshake(conn.socket.sock), session)


def _describe(outcome):
    text = f"{outcome.get('description', 'error')} ({outcome.get('result')})"
    message = (outcome.get("message") or "").strip()
    return f"{text}: {message}" if message else text


def _judge_bind(target, outcome):
    code = outcome.get("result")
    if code == INVALID_CREDENTIALS:
        raise ProbeFailure(f"invalid credentials for {target.bind_dn}", "bind",
                           "invalid-credentials", code=L7STS)
    if code != 0:
        raise ProbeFailure(f"bind as {target.bind_dn} failed: {_describe(outcome)}", "bind",
                           code=L7STS)


def _judge_search(session, outcome, response):
    target = session.target
    entries = [r for r in response if r.get("type") == "searchResEntry"]
    references = [u for r in response if r.get("type") == "searchResRef" for u in r.get("uri", ())]
    code = outcome.get("result")
    base = target.base or "the root DSE"
    if code == REFERRAL:
        urls = ", ".join(outcome.get("referrals") or ()) or "no URL"
        raise ProbeFailure(f"referral for {base} to {urls} (referrals are not followed)", "search",
                           "referral", code=L7STS)
    if code == NO_SUCH_OBJECT:
        matched = outcome.get("dn") or ""
        hint = f" (nearest existing: {matched})" if matched else ""
        raise ProbeFailure(f"no such base {base}{hint}", "search", "no-such-object", code=L7STS)
    if code == SIZE_LIMIT_EXCEEDED:
        raise ProbeFailure(f"size limit exceeded after {len(entries)} entries under {base}"
                           f" with {target.filter}: narrow --base/--filter/--scope", "search",
                           "size-limit", code=L7STS)
    if code != 0:
        raise ProbeFailure(f"search under {base} failed: {_describe(outcome)}", "search",
                           code=L7STS)
    if len(entries) < target.min_entries:
        refs = f", {len(references)} referral(s) not followed" if references else ""
        raise ProbeFailure(f"too few entries: {len(entries)} < {target.min_entries} under {base}"
                           f" with {target.filter}{refs}", "search", "too-few-entries",
                           code=L7RSP)
    found = []
    for attr, value in target.expect:
        values = _values(entries, attr)
        if value.encode("utf-8", "surrogateescape") not in values:
            raise ProbeFailure(f"{attr}={value} not found: {_found(attr, values, entries)}",
                               "expect", code=L7RSP)
        found.append(f"{attr}={value}")
    for attr, regex in target.expect_regex:
        values = _values(entries, attr)
        match = next((v for v in values if regex.search(v)), None)
        if match is None:
            raise ProbeFailure(f"{attr} matching /{_text(regex.pattern)}/ not found:"
                               f" {_found(attr, values, entries)}", "expect", code=L7RSP)
        found.append(f"{attr}={_text(match)}")
    elapsed = session.deadline.elapsed()
    count = f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
    summary = ", ".join([count, *found]) + f" in {elapsed:.3f} s"
    details = [f"{phase}: {took * 1000:.1f} ms" for phase, took in session.times[:-1]]
    details += [f"entry: {e.get('dn')}" for e in entries[:20]]
    details += [f"referral not followed: {u}" for u in references]
    return Result(True, summary=summary, warning=session.warning,
                  perfdata=(("time", elapsed, "s"), ("entries", len(entries), "")),
                  details=details, cause=HEALTHY)


def _values(entries, attr):
    """Every raw value of ``attr`` (any case, any ;option) on every entry."""
    wanted = attr.lower().split(";")[0]
    out = []
    for entry in entries:
        for name, values in (entry.get("raw_attributes") or {}).items():
            if name.lower().split(";")[0] == wanted:
                out.extend(v if isinstance(v, bytes) else str(v).encode() for v in values)
    return out


def _text(value):
    return value.decode("utf-8", "replace")


def _found(attr, values, entries):
    if not entries:
        return "no entries"
    if not values:
        return f"no {attr} on {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
    shown = ", ".join(repr(_text(v)) for v in values[:5])
    more = f" and {len(values) - 5} more" if len(values) > 5 else ""
    return f"found {attr}: {shown}{more}"


CHECK = Check(name="LDAP", prog="kachecks-ldap", opts=OPTS, usage=USAGE,
              description=DESCRIPTION, epilog=EPILOG, build=build, probe=probe,
              delegate=lambda argv: True)  # ldap3: ~75 ms to import


def main(argv=None, prog=None):
    return run(CHECK, argv, prog)
