"""TLS options shared by kachecks-http and kachecks-tcp, and the expiry warning.

Importing this module must not import ``ssl``: kachecks.net.tls loads it
only at the handshake, so plain checks stay cheap.
"""

from kachecks.checks.options import TLS, TLS_OPTS, Opt
from kachecks.errors import UsageError

SNI_NAME_OPT = Opt("sni_name", None, "sni-name", metavar="NAME",
                   help="send NAME as SNI; with verification, the name the certificate must carry",
                   section=TLS)


def validate(ns):
    if ns.client_key and not ns.client_cert:
        raise UsageError("--client-key needs --client-cert")
    if ns.ca_file or ns.client_cert or ns.client_key:
        # Early and clear, before any traffic: each is a regular file of sane size.
        from kachecks.net.tls import checked_files

        with checked_files(ns.ca_file, ns.client_cert, ns.client_key):
            pass


def uses_tls_options(ns):
    return bool(ns.tls_verify or ns.ca_file or ns.client_cert or ns.cert_min_days is not None)


def tls_options(ns, sni):
    """A kachecks.net.tls.TLSOptions for these options and SNI name (None: no SNI)."""
    from kachecks.net.tls import TLSOptions

    return TLSOptions(verify=ns.tls_verify, ca_file=ns.ca_file, cert_file=ns.client_cert,
                      key_file=ns.client_key, sni=sni)


def expiry_warning(ns, days_left):
    """The --cert-min-days warning for ``days_left`` (float or None), or ""."""
    if ns.cert_min_days is None or days_left is None:
        return ""
    if days_left < 0:
        return f"certificate expired {int(-days_left)} days ago"
    if days_left < ns.cert_min_days:
        return f"certificate expires in {int(days_left)} days (< {ns.cert_min_days})"
    return ""


__all__ = ["TLS_OPTS", "SNI_NAME_OPT", "validate", "uses_tls_options", "tls_options",
           "expiry_warning"]
