"""TLS options shared by kachecks-http, kachecks-tcp and kachecks-ldap, and the expiry warning.

Importing this module must not import ``ssl``: kachecks.net.tls loads it
only at the handshake, so plain checks stay cheap.
"""

from kachecks.checks.options import TLS, TLS_OPTS, Opt
from kachecks.errors import UsageError

SNI_NAME_OPT = Opt("sni_name", None, "sni-name", metavar="NAME",
                   help="send NAME as SNI; with verification, the name the certificate must carry",
                   section=TLS)


def fields(ns, enabled, needs, sni=None, default_sni=None):
    """The ``tls`` and ``cert_min_days`` fields of a target.

    ``enabled``: the target speaks TLS; otherwise any TLS option (or an SNI
    name) is a usage error saying it ``needs`` something. ``tls`` is a
    kachecks.net.tls.TLSOptions sending ``sni or default_sni``, or None.
    """
    if not enabled:
        if _uses_tls_options(ns) or sni:
            raise UsageError(f"TLS options need {needs}")
        return {"tls": None, "cert_min_days": None}
    _check_files(ns)
    from kachecks.net.tls import TLSOptions

    options = TLSOptions(verify=ns.tls_verify, ca_file=ns.ca_file, cert_file=ns.client_cert,
                         key_file=ns.client_key, sni=sni or default_sni)
    return {"tls": options, "cert_min_days": ns.cert_min_days}


def _check_files(ns):
    if ns.client_key and not ns.client_cert:
        raise UsageError("--client-key needs --client-cert")
    if ns.ca_file or ns.client_cert or ns.client_key:
        # Early and clear, before any traffic: each is a regular file of sane size.
        from kachecks.net.tls import checked_files

        with checked_files(ns.ca_file, ns.client_cert, ns.client_key):
            pass


def _uses_tls_options(ns):
    return bool(ns.tls_verify or ns.ca_file or ns.client_cert or ns.cert_min_days is not None)


def expiry_warning(cert_min_days, days_left):
    """The --cert-min-days warning for ``days_left`` (float or None), or ""."""
    if cert_min_days is None or days_left is None:
        return ""
    if days_left < 0:
        return f"certificate expired {int(-days_left)} days ago"
    if days_left < cert_min_days:
        return f"certificate expires in {int(days_left)} days (< {cert_min_days})"
    return ""


__all__ = ["TLS_OPTS", "SNI_NAME_OPT", "fields", "expiry_warning"]
