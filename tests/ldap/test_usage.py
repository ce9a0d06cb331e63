"""Bad command lines and secrets: one line, exit 1, never a traceback, never argv secrets."""

import pytest

from harness.checks import BASE, REFERENCE, ldap_check
from harness.peers import cli
from harness.peers import slapd as ldap_peer

URI = "ldap://127.0.0.1:9"  # never reached: every case fails before connecting


def usage_error(*args, env=None):
    done = ldap_check(*args, env=env)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("kachecks-ldap: error: ")
    return done.stderr


@pytest.mark.parametrize("args, message", [
    ([], "--uri is required"),
    (["--uri", "http://127.0.0.1"], "--uri must be ldap://HOST[:PORT] or ldaps://HOST[:PORT]"),
    (["--uri", "ldap://"], "--uri has no host"),
    (["--uri", "ldap://127.0.0.1:70000"], "--uri: port must be 1-65535"),
    (["--uri", "ldap://::1"], "write an IPv6 address in brackets"),
    (["--uri", f"ldap://127.0.0.1/{BASE}"], "--uri takes no DN or query"),
    (["--uri", URI, "--scope", "subtree"], "--scope: expected base, one or sub"),
    (["--uri", URI, "--expect", "o"], "--expect: expected ATTR=VALUE"),
    (["--uri", URI, "--expect-regex", "o=("], "--expect-regex: bad regular expression"),
    (["--uri", URI, "--min-entries", "-1"], "--min-entries: expected a non-negative integer"),
    (["--uri", URI, "--filter", ""], "--filter: empty filter"),
    (["--uri", URI, "--timeout", "0"], "--timeout: expected a positive number"),
    (["--uri", "ldaps://127.0.0.1", "--starttls"], "--starttls is for ldap:// URIs"),
    (["--uri", URI, "--ca-file", "/etc/hostname"], "TLS options need ldaps:// or --starttls"),
    (["--uri", URI, "--sni-name", "ldap1"], "TLS options need ldaps:// or --starttls"),
    (["--uri", URI, "--client-key", "/etc/hostname"], "TLS options need ldaps:// or --starttls"),
    (["--uri", "ldaps://127.0.0.1", "--ca-file", "/nonexistent"],
     "cannot read /nonexistent: No such file or directory"),
    (["--uri", "ldaps://127.0.0.1", "--client-key", "/etc/hostname"],
     "--client-key needs --client-cert"),
    (["--uri", URI, "--bind-dn", ldap_peer.BIND_DN], "--bind-dn needs --password-file FILE or"),
    (["--uri", URI, "--password-file", "/etc/hostname"], "--password-file needs --bind-dn"),
    (["--uri", URI, "--no-such-option"], "Unknown option --no-such-option"),
    (["--uri", URI, "stray"], "Unexpected argument(s): stray"),
])
def test_bad_command_line_is_one_line_and_exit_one(args, message):
    assert message in usage_error(*args)


def test_invalid_filter_is_a_usage_error(slapd):
    assert "--filter '(cn=x': invalid filter" in usage_error("--uri", slapd.url, "--filter", "(cn=x")


def test_missing_password_file(tmp_path):
    err = usage_error("--uri", URI, "--bind-dn", ldap_peer.BIND_DN,
                      "--password-file", tmp_path / "missing.pw")
    assert "cannot read password file" in err and "No such file or directory" in err


def test_password_file_readable_by_others_is_refused_saying_why(password_file):
    path = password_file(mode=0o644)
    err = usage_error("--uri", URI, "--bind-dn", ldap_peer.BIND_DN, "--password-file", path)
    assert f"password file {path} has mode 0644" in err


def test_empty_password_file_is_refused_not_an_anonymous_bind(password_file):
    err = usage_error("--uri", URI, "--bind-dn", ldap_peer.BIND_DN,
                      "--password-file", password_file(text=""))
    assert "is empty" in err


def test_password_from_file_wins_over_environment_and_never_shows(slapd, password_file):
    done = ldap_check("--uri", slapd.url, *REFERENCE, "--bind-dn", ldap_peer.BIND_DN,
                      "--password-file", password_file(ldap_peer.BIND_PASSWORD), "--verbose",
                      env={"KACHECKS_LDAP_PASSWORD": "wrong"})
    assert done.returncode == 0, done.stdout
    assert ldap_peer.BIND_PASSWORD not in done.stdout + done.stderr


def test_help_shows_the_reference_check_and_exits_zero():
    done = cli.run("kachecks-ldap", "--help")
    assert done.returncode == 0
    assert "--filter '(dc=mysite)' --expect o=mysite.mydmn.org" in done.stdout
    for option in ("--uri", "--starttls", "--bind-dn", "--password-file", "--base", "--scope",
                   "--filter", "--expect", "--expect-regex", "--min-entries", "--tls-verify",
                   "--ca-file", "--client-cert", "--client-key", "--timeout", "--dynamic"):
        assert option in done.stdout


def test_nagios_usage_error_is_unknown():
    done = cli.run("kachecks-ldap", "--nagios", "--uri", "http://x")
    assert done.returncode == 3
    assert done.stdout.startswith("LDAP UNKNOWN: ")
