"""Self-signed certificates made with the ``openssl`` CLI (no pip package).

    cert, key = self_signed(tmp_dir, "www.mysite.mydmn.org")
"""

import subprocess
from pathlib import Path


def self_signed(directory, common_name="localhost", days=30, alt_names=("localhost", "127.0.0.1")):
    """Create ``<cn>.crt`` and ``<cn>.key`` (EC P-256) in ``directory``; return their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert = directory / f"{common_name}.crt"
    key = directory / f"{common_name}.key"
    sans = [f"IP:{n}" if n.replace(".", "").isdigit() or ":" in n else f"DNS:{n}"
            for n in (common_name, *alt_names)]
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", str(days), "-subj", f"/CN={common_name}",
         "-addext", "subjectAltName=" + ",".join(dict.fromkeys(sans)),
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )
    return cert, key
