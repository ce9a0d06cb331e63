"""Every search option of kachecks-ldap, against the real slapd."""

import socket

import pytest

from harness.checks import BASE, ldap_check
from harness.peers import slapd as ldap_peer

SERVERS = ldap_peer.SERVERS_BASE


def passes(slapd, *args):
    done = ldap_check("--uri", slapd.url, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def fails(slapd, *args):
    done = ldap_check("--uri", slapd.url, *args)
    assert done.returncode == 1, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.mark.parametrize("scope, entries", [("base", 1), ("one", ldap_peer.SERVER_COUNT),
                                            ("sub", ldap_peer.SERVER_COUNT + 1)])
def test_scope_decides_how_many_entries_are_counted(slapd, scope, entries):
    out = passes(slapd, "--base", SERVERS, "--scope", scope, "--min-entries", entries)
    assert out.startswith(f"LDAP OK - {entries} entr")
    fails(slapd, "--base", SERVERS, "--scope", scope, "--min-entries", entries + 1)


def test_default_scope_is_subtree_and_default_filter_matches_everything(slapd):
    assert passes(slapd, "--base", SERVERS, "--min-entries", ldap_peer.SERVER_COUNT + 1)


def test_filter_without_parentheses_is_accepted_like_ldapsearch(slapd):
    assert passes(slapd, "--base", SERVERS, "--filter", "cn=ldap2").startswith("LDAP OK - 1 entry")


def test_filter_selects_entries(slapd):
    fails(slapd, "--base", SERVERS, "--filter", "(cn=ldap9)")
    out = passes(slapd, "--base", SERVERS, "--filter", "(|(cn=ldap1)(cn=ldap3))",
                 "--min-entries", "2")
    assert out.startswith("LDAP OK - 2 entries")


def test_min_entries_zero_accepts_an_empty_result(slapd):
    assert passes(slapd, "--base", SERVERS, "--filter", "(cn=ldap9)", "--min-entries", "0")


def test_too_few_entries_says_how_many_came_back(slapd):
    out = fails(slapd, "--base", SERVERS, "--scope", "one", "--min-entries", "5")
    assert out == f"LDAP FAIL - too few entries: 3 < 5 under {SERVERS} with (objectClass=*)\n"


def test_every_expect_must_hold_on_some_returned_entry(slapd):
    args = ["--base", SERVERS, "--scope", "one", "--expect", "cn=ldap1", "--expect", "cn=ldap3"]
    assert "cn=ldap1, cn=ldap3" in passes(slapd, *args)
    out = fails(slapd, *args, "--expect", "description=replica 9")
    assert "description=replica 9 not found: found description: 'replica 1', 'replica 2'" in out


def test_expect_is_an_exact_value_not_a_substring(slapd):
    out = fails(slapd, "--base", BASE, "--scope", "base", "--expect", "o=mysite")
    assert "o=mysite not found: found o: 'mysite.mydmn.org'" in out


def test_expect_attribute_names_are_case_insensitive(slapd):
    assert passes(slapd, "--base", BASE, "--scope", "base", "--expect", "O=mysite.mydmn.org")


def test_expect_on_an_attribute_no_entry_has_says_so(slapd):
    out = fails(slapd, "--base", BASE, "--scope", "base", "--expect", "description=x")
    assert "description=x not found: no description on 1 entry" in out


def test_expect_regex_matches_any_value(slapd):
    out = passes(slapd, "--base", SERVERS, "--expect-regex", r"description=^replica [23]$")
    assert "description=replica 2" in out
    out = fails(slapd, "--base", SERVERS, "--expect-regex", r"description=^replica 4")
    assert "description matching /^replica 4/ not found: found description: 'replica 1'" in out


def test_the_typographic_caret_of_the_old_script_fails_loudly(slapd):
    """ldapsearch | grep "ˆo: …" never matched; here the same slip is reported, not hidden."""
    out = fails(slapd, "--base", BASE, "--filter", "(dc=mysite)",
                "--expect-regex", "o=\u02c6mysite.mydmn.org$")
    assert "found o: 'mysite.mydmn.org'" in out


def test_verbose_lists_phases_entries_and_unfollowed_references(slapd):
    done = ldap_check("--uri", slapd.url, "--base", BASE, "--filter", "(dc=mysite)", "--verbose")
    lines = done.stdout.splitlines()
    assert lines[0].startswith("LDAP OK - 1 entry")
    assert f"entry: {BASE}" in lines
    assert f"referral not followed: {ldap_peer.REFERRAL_URL}??sub" in lines
    assert any(line.startswith("search: ") for line in lines)


def test_anonymous_cannot_read_what_the_bind_user_can(slapd, password_file):
    out = fails(slapd, "--base", ldap_peer.PRIVATE_BASE, "--filter", "(cn=secret)")
    assert out == f"LDAP FAIL - no such base {ldap_peer.PRIVATE_BASE}\n"  # slapd hides it from anonymous
    out = passes(slapd, "--base", ldap_peer.PRIVATE_BASE, "--filter", "(cn=secret)",
                 "--bind-dn", ldap_peer.BIND_DN, "--password-file", password_file(ldap_peer.BIND_PASSWORD))
    assert out.startswith("LDAP OK - 1 entry")


def test_password_may_come_from_the_environment(slapd):
    env = {"KACHECKS_LDAP_PASSWORD": ldap_peer.BIND_PASSWORD}
    done = ldap_check("--uri", slapd.url, "--base", ldap_peer.PRIVATE_BASE, "--filter", "(cn=secret)",
                      "--bind-dn", ldap_peer.BIND_DN, env=env)
    assert done.returncode == 0, done.stdout


def test_password_file_with_mode_0640_is_accepted(slapd, password_file):
    assert passes(slapd, "--base", ldap_peer.PRIVATE_BASE, "--bind-dn", ldap_peer.BIND_DN,
                  "--password-file", password_file(ldap_peer.BIND_PASSWORD, mode=0o640))


def test_ipv6_literal_uri(certs):
    with ldap_peer.Slapd(host="::1", certs=certs) as server:
        assert server.url.startswith("ldap://[::1]:")
        done = ldap_check("--uri", server.url, "--base", BASE, "--filter", "(dc=mysite)",
                          "--expect", "o=mysite.mydmn.org")
        assert done.returncode == 0, done.stdout
        assert "[::1]" not in done.stdout  # the status line is about LDAP, not the address


def test_host_name_in_uri_is_resolved_and_each_address_tried(slapd):
    """localhost may resolve to ::1 first; slapd listens on 127.0.0.1 only."""
    done = ldap_check("--uri", f"ldap://localhost:{slapd.port}", "--base", BASE, "--scope", "base")
    assert done.returncode == 0, done.stdout


def test_bind_sets_the_source_address():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        done = ldap_check("--uri", f"ldap://127.0.0.1:{port}", "--bind", "127.0.0.2",
                          "--timeout", "0.5")
        assert done.returncode == 1
        listener.settimeout(1)
        peer = listener.accept()[0]
        with peer:
            assert peer.getpeername()[0] == "127.0.0.2"


def test_bind_to_an_address_not_on_this_host_is_a_local_failure(slapd):
    done = ldap_check("--uri", slapd.url, "--base", BASE, "--scope", "base", "--bind", "192.0.2.1")
    assert done.returncode == 1
    assert done.stdout == "LDAP FAIL - cannot bind to 192.0.2.1: Cannot assign requested address\n"


def test_fwmark_is_set_on_the_socket(slapd):
    assert passes(slapd, "--base", BASE, "--scope", "base", "--fwmark", "5")
    done = ldap_check("--uri", slapd.url, "--base", BASE, "--fwmark", str(2**32))
    assert done.returncode == 1
    assert "a firewall mark is 32 bits" in done.stderr
