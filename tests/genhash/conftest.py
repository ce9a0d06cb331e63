"""Fixtures for genhash: keepalived's /usr/bin/genhash (harness.peers.genhash), a certificate."""

from pathlib import Path

import pytest

from harness.peers.certs import self_signed
from harness.peers.genhash import KEEPALIVED_GENHASH, run_keepalived


@pytest.fixture(scope="session")
def keepalived_genhash():
    if not Path(KEEPALIVED_GENHASH).exists():
        pytest.fail("/usr/bin/genhash missing: apt-get install keepalived (listed in .ci/apt.d)")
    return run_keepalived


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    """(cert, key) of a self-signed www.mysite.mydmn.org certificate."""
    return self_signed(tmp_path_factory.mktemp("certs"), "www.mysite.mydmn.org")
