"""--provider and its options on bad command lines: one line, exit 1 (UNKNOWN 3 under --nagios)."""

import pytest

from harness.checks import REFERENCE, ldap_check
from harness.peers import cli
from harness.peers import slapd as ldap_peer

URI = "ldap://127.0.0.1:9"  # never reached: every case fails before connecting
PROVIDER = "ldap://127.0.0.1:10"


def usage_error(*args, env=None):
    done = ldap_check("--uri", URI, *args, env=env)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("kachecks-ldap: error: ")
    return done.stderr


@pytest.mark.parametrize("args, message", [
    (["--max-lag", "30"], "--max-lag needs --provider"),
    (["--provider-down", "fail"], "--provider-down needs --provider"),
    (["--provider-bind-dn", ldap_peer.BIND_DN], "--provider-bind-dn needs --provider"),
    (["--provider", "http://127.0.0.1"],
     "--provider must be ldap://HOST[:PORT] or ldaps://HOST[:PORT]"),
    (["--provider", f"ldap://127.0.0.1/{ldap_peer.BASE}"], "--provider takes no DN or query"),
    (["--provider", "ldap://127.0.0.1:0"], "--provider: port must be 1-65535"),
    (["--provider", PROVIDER, "--max-lag", "0"], "--max-lag: expected a positive number"),
    (["--provider", PROVIDER, "--provider-down", "maybe"],
     "--provider-down: expected ok or fail, got 'maybe'"),
    (["--provider", PROVIDER, "-w", "5"], "-w/-c are Icinga/Nagios thresholds: they need --nagios"),
    (["--provider", PROVIDER, "--provider-bind-dn", ldap_peer.BIND_DN],
     "--provider-bind-dn needs --provider-password-file FILE or"
     " $KACHECKS_LDAP_PROVIDER_PASSWORD"),
    (["--provider", PROVIDER, "--provider-password-file", "/etc/hostname"],
     "--provider-password-file needs --provider-bind-dn or --bind-dn"),
])
def test_bad_replication_options_are_one_line_and_exit_one(args, message):
    assert message in usage_error(*args)


def test_provider_password_file_readable_by_others_is_refused(password_file):
    path = password_file(mode=0o644, name="provider.pw")
    err = usage_error("--provider", PROVIDER, "--provider-bind-dn", ldap_peer.BIND_DN,
                      "--provider-password-file", path)
    assert f"password file {path} has mode 0644" in err


@pytest.mark.parametrize("threshold", ["abc", "20:10"])
def test_a_bad_nagios_range_is_unknown(threshold):
    done = cli.run("kachecks-ldap", "--nagios", "--uri", URI, "--provider", PROVIDER,
                   "-c", threshold)
    assert done.returncode == 3
    assert done.stdout.startswith(f"LDAP UNKNOWN: -c: '{threshold}' is not a range"), done.stdout


def test_the_provider_password_comes_from_the_environment(replication):
    done = ldap_check("--uri", replication.consumer.url, *REFERENCE,
                      "--provider", replication.providers[0].url,
                      "--provider-bind-dn", ldap_peer.BIND_DN, "--provider-down", "fail",
                      env={"KACHECKS_LDAP_PROVIDER_PASSWORD": ldap_peer.BIND_PASSWORD})
    assert done.returncode == 0, done.stdout
    assert "in sync with" in done.stdout


def test_help_has_the_replication_options_and_examples():
    done = cli.run("kachecks-ldap", "--help")
    assert done.returncode == 0
    assert "Replication freshness (syncrepl consumers)" in done.stdout
    for option in ("--provider URI", "--max-lag SECONDS", "--provider-down ok|fail",
                   "--provider-bind-dn DN", "--provider-password-file FILE", "-w, --warning RANGE",
                   "-c, --critical RANGE"):
        assert option in done.stdout, option
    assert "--provider ldap://192.168.8.101 -w 5 -c 30 --max-lag 300" in done.stdout
