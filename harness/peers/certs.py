"""Test certificates made with the ``openssl`` CLI (no pip package).

    cert, key = self_signed(tmp_dir, "www.mysite.mydmn.org")
    paths = pki(tmp_dir)          # CA + server + client, for slapd and SMTP servers
"""

import os
import subprocess
from pathlib import Path


def self_signed(directory, common_name="localhost", days=30, alt_names=("localhost", "127.0.0.1")):
    """Create ``<cn>.crt`` and ``<cn>.key`` (EC P-256) in ``directory``; return their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert = directory / f"{common_name}.crt"
    key = directory / f"{common_name}.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", days, "-subj", f"/CN={common_name}",
             "-addext", _sans(common_name, alt_names), "-keyout", key, "-out", cert)
    return cert, key


def _sans(common_name, alt_names):
    names = [f"IP:{n}" if n.replace(".", "").isdigit() or ":" in n else f"DNS:{n}"
             for n in (common_name, *alt_names)]
    return "subjectAltName=" + ",".join(dict.fromkeys(names))


def _openssl(*args):
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=30)


def ca(directory, common_name="kachecks test CA", days=30):
    """A CA certificate and key (``<cn>.crt``/``.key``) that ``signed`` can issue from."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = common_name.replace(" ", "-")
    cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", days, "-subj", f"/CN={common_name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", key, "-out", cert)
    return cert, key


_CA_CONF = """\
[ca]
default_ca = test_ca
[test_ca]
database = {dir}/index.txt
new_certs_dir = {dir}
serial = {dir}/serial
default_md = sha256
policy = any_name
copy_extensions = copy
unique_subject = no
[any_name]
commonName = supplied
"""


def signed(directory, issuer, common_name, alt_names=("127.0.0.1",), start="-1d", end="+30d",
           stem=None, client=False):
    """A certificate for ``common_name`` issued by ``issuer`` = (ca_cert, ca_key).

    ``start``/``end`` are days relative to now (``"-40d"``) or openssl dates
    (``"20200101000000Z"``): an expired certificate is ``start="-60d", end="-30d"``.
    ``client`` marks it for TLS client authentication.
    """
    import datetime

    directory = Path(directory)
    work = directory / f"{stem or common_name}.ca"
    work.mkdir(parents=True, exist_ok=True)
    (work / "index.txt").write_text("")
    (work / "serial").write_text("%032x\n" % int.from_bytes(os.urandom(15), "big"))
    (work / "ca.cnf").write_text(_CA_CONF.format(dir=work))
    cert = directory / f"{stem or common_name}.crt"
    key = directory / f"{stem or common_name}.key"
    csr = work / "req.csr"
    usage = "clientAuth" if client else "serverAuth"
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-subj", f"/CN={common_name}", "-addext", _sans(common_name, alt_names),
             "-addext", f"extendedKeyUsage={usage}", "-keyout", key, "-out", csr)

    def when(spec):
        if spec.endswith("d") and spec[:-1].lstrip("+-").isdigit():
            moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=int(spec[:-1]))
            return moment.strftime("%Y%m%d%H%M%SZ")
        return spec

    _openssl("ca", "-batch", "-config", work / "ca.cnf", "-cert", issuer[0], "-keyfile", issuer[1],
             "-in", csr, "-out", cert, "-startdate", when(start), "-enddate", when(end), "-notext")
    return cert, key


def pki(directory, hosts=("127.0.0.1", "::1", "localhost")):
    """A CA, a server certificate naming every ``hosts`` entry and a client one (CN=monitor).

    Returns a dict of paths: ca, ca_key, server_cert, server_key, client_cert, client_key;
    keys are mode 0600 (slapd refuses readable ones).
    """
    directory = Path(directory)
    authority = ca(directory)
    server = signed(directory, authority, hosts[0], alt_names=hosts, stem="server")
    client = signed(directory, authority, "monitor", alt_names=(), stem="client", client=True)
    for key in (authority[1], server[1], client[1]):
        os.chmod(key, 0o600)
    return {"ca": authority[0], "ca_key": authority[1], "server_cert": server[0],
            "server_key": server[1], "client_cert": client[0], "client_key": client[1]}
