"""kachecks-ldap handed to `kachecks worker`: same lines and exit codes as in-process."""

import time

import pytest

from harness.checks import BASE, REFERENCE, ldap_check
from harness.peers import slapd as ldap_peer

IN_PROCESS = {"KACHECKS_WORKER_SOCKET": "/nonexistent/worker.sock"}


def test_reference_check_in_the_worker_passes_then_names_the_value_found(worker, own_slapd):
    done = ldap_check("--uri", own_slapd.url, *REFERENCE, "--verbose")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"(run by kachecks worker {worker.pid})" in done.stdout
    own_slapd.set_attribute(BASE, "o", "othersite.mydmn.org")
    failed = ldap_check("--uri", own_slapd.url, *REFERENCE)
    local = ldap_check("--uri", own_slapd.url, *REFERENCE, env=IN_PROCESS)
    assert failed.returncode == local.returncode == 1
    assert failed.stdout == local.stdout == ("LDAP FAIL - o=mysite.mydmn.org not found:"
                                             " found o: 'othersite.mydmn.org'\n")


@pytest.mark.slow
def test_deadline_holds_in_the_worker_against_a_paused_slapd(worker, own_slapd):
    own_slapd.pause()
    started = time.monotonic()
    done = ldap_check("--uri", own_slapd.url, *REFERENCE, "--timeout", "1", "--verbose")
    assert time.monotonic() - started < 2
    assert done.returncode == 1
    assert done.stdout.startswith("LDAP FAIL - TCP connection accepted but no LDAP answer within"
                                  " 1 s (during search)")


def test_insecure_password_file_is_refused_in_the_worker_too(worker, slapd, password_file):
    args = ["--uri", slapd.url, *REFERENCE, "--bind-dn", ldap_peer.BIND_DN,
            "--password-file", password_file(mode=0o644)]
    delegated, local = ldap_check(*args), ldap_check(*args, env=IN_PROCESS)
    assert delegated.returncode == local.returncode == 1
    assert delegated.stderr == local.stderr
    assert "has mode 0644" in delegated.stderr
