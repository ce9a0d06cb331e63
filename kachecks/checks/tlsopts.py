"""The TLS side of the http, tcp and ldap checks: options -> TLSOptions, and the expiry warning.

Loaded only by runs that speak TLS (kachecks.checks.options.tls_fields
refuses TLS options on a plain run without it), and importing it must
not import ``ssl``: kachecks.net.tls loads that only at the handshake.
"""

from kachecks.errors import UsageError


def fields(ns, sni):
    """The ``tls`` and ``cert_min_days`` fields of a target that speaks TLS:
    ``tls`` is a kachecks.net.tls.TLSOptions sending ``sni`` (None: no SNI)."""
    _check_files(ns)
    from kachecks.net.tls import TLSOptions

    options = TLSOptions(verify=ns.tls_verify, ca_file=ns.ca_file, cert_file=ns.client_cert,
                         key_file=ns.client_key, sni=sni)
    return {"tls": options, "cert_min_days": ns.cert_min_days}


def _check_files(ns):
    if ns.client_key and not ns.client_cert:
        raise UsageError("--client-key needs --client-cert")
    if ns.ca_file or ns.client_cert or ns.client_key:
        # Early and clear, before any traffic: each is a regular file of sane size.
        from kachecks.net.tls import checked_files

        with checked_files(ns.ca_file, ns.client_cert, ns.client_key):
            pass


def expiry_warning(cert_min_days, days_left):
    """The --cert-min-days warning for ``days_left`` (float or None), or ""."""
    if cert_min_days is None or days_left is None:
        return ""
    if days_left < 0:
        return f"certificate expired {int(-days_left)} days ago"
    if days_left < cert_min_days:
        return f"certificate expires in {int(days_left)} days (< {cert_min_days})"
    return ""


__all__ = ["fields", "expiry_warning"]
