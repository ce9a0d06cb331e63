"""Every file a check reads is read under its deadline, and only if it is a plain file.

A FIFO nobody writes to blocks an ``open()`` forever; /dev/zero never ends;
a sparse file can claim gigabytes. As a password file, CA file or client
certificate/key each must end the check with one clear line and exit 1
(3, UNKNOWN, under --nagios) well within --timeout, never hang until
keepalived's SIGKILL.
"""

import os

import pytest

from harness.redteam import assert_clean, spawn

TIMEOUT = 1
WITHIN = 5  # seconds: --timeout plus generous room for a loaded machine, far below a hang


@pytest.fixture(params=["fifo", "dev_zero", "directory", "huge"])
def hostile_file(request, tmp_path):
    """A path where a check expects a small regular file."""
    kind = request.param
    if kind == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path, 0o600)
    elif kind == "dev_zero":
        return "/dev/zero"
    elif kind == "directory":
        path = tmp_path / "dir"
        path.mkdir(mode=0o700)
    else:
        path = tmp_path / "huge"
        with open(path, "wb") as handle:
            handle.truncate(8 << 30)  # sparse: 8 GiB
        os.chmod(path, 0o600)
    return str(path)


def _cases(port, path):
    https = f"https://127.0.0.1:{port}/service.txt"
    ldaps = f"ldaps://127.0.0.1:{port}"
    return {
        "http --password-file": ("kachecks-http", "--url", f"http://127.0.0.1:{port}/",
                                 "--user", "monitor", "--password-file", path),
        "http --ca-file": ("kachecks-http", "--url", https, "--ca-file", path),
        "http --client-cert": ("kachecks-http", "--url", https, "--client-cert", path),
        "http --client-key": ("kachecks-http", "--url", https, "--client-cert", path,
                              "--client-key", path),
        "tcp --ca-file": ("kachecks-tcp", f"127.0.0.1:{port}", "--tls", "--ca-file", path),
        "tcp --client-cert": ("kachecks-tcp", f"127.0.0.1:{port}", "--tls", "--client-cert", path),
        "ldap --password-file": ("kachecks-ldap", "--uri", f"ldap://127.0.0.1:{port}",
                                 "--bind-dn", "cn=monitor,dc=mysite,dc=mydmn,dc=org",
                                 "--password-file", path),
        "ldap --ca-file": ("kachecks-ldap", "--uri", ldaps, "--ca-file", path),
        "check http --ca-file": ("kachecks", "check", "http", "--url", https, "--ca-file", path),
    }


CASES = list(_cases(0, "x"))


@pytest.mark.parametrize("case", CASES)
def test_a_file_that_is_not_a_small_regular_file_fails_fast_with_one_line(
        listener, hostile_file, case):
    command = _cases(listener.port, hostile_file)[case]
    finished = spawn(*command, "--timeout", TIMEOUT, timeout=12)
    assert finished.returncode == 1, finished
    assert finished.elapsed < WITHIN, finished
    assert_clean(finished)
    assert len(finished.output.splitlines()) == 1, finished
    assert listener.connections() == 0  # refused before any traffic


@pytest.mark.parametrize("case", ["http --ca-file", "ldap --password-file"])
def test_under_nagios_an_unusable_file_is_unknown(listener, fifo, case):
    command = _cases(listener.port, str(fifo))[case]
    finished = spawn(*command, "--timeout", TIMEOUT, "--nagios", timeout=12)
    assert finished.returncode == 3, finished
    assert finished.elapsed < WITHIN, finished
    assert finished.stdout.startswith(("HTTP UNKNOWN: ", "LDAP UNKNOWN: ")), finished
