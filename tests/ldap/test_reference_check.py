"""The reference deployment's MISC_CHECK against a real slapd
(docs/reference.md, "The reference deployment" and "kachecks-ldap")."""

from harness.checks import BASE, REFERENCE, ldap_check
from harness.peers import cli
from harness.peers import slapd as ldap_peer


def test_reference_check_passes_then_fails_naming_the_value_found_once_o_changes(own_slapd):
    passed = ldap_check("--uri", own_slapd.url, *REFERENCE)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert passed.stdout.startswith("LDAP OK - 1 entry, o=mysite.mydmn.org in ")

    own_slapd.set_attribute(BASE, "o", "othersite.mydmn.org")
    failed = ldap_check("--uri", own_slapd.url, *REFERENCE)
    assert failed.returncode == 1
    assert failed.stdout == ("LDAP FAIL - o=mysite.mydmn.org not found:"
                             " found o: 'othersite.mydmn.org'\n")

    own_slapd.set_attribute(BASE, "o", ldap_peer.ORGANIZATION)
    assert ldap_check("--uri", own_slapd.url, *REFERENCE).returncode == 0


def test_state_changes_reach_syslog_with_the_reason_and_repeats_do_not(own_slapd, syslog_socket):
    ldap_check("--uri", own_slapd.url, *REFERENCE)
    ldap_check("--uri", own_slapd.url, *REFERENCE)
    own_slapd.set_attribute(BASE, "o", "othersite.mydmn.org")
    ldap_check("--uri", own_slapd.url, *REFERENCE)
    logged = syslog_socket()
    assert len(logged) == 2, logged
    assert "kachecks-ldap" in logged[0] and " UP: " in logged[0]
    assert f"[127.0.0.1]:{own_slapd.port} DOWN: o=mysite.mydmn.org not found" in logged[1]
    assert "othersite.mydmn.org" in logged[1]


def test_kachecks_check_ldap_is_the_same_check(slapd):
    done = cli.run("kachecks", "check", "ldap", "--uri", slapd.url, *REFERENCE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("LDAP OK - 1 entry, o=mysite.mydmn.org")


def test_dynamic_healthy_exits_two_plus_weight(slapd):
    done = cli.run("kachecks-ldap", "--uri", slapd.url, *REFERENCE, "--dynamic", "--weight", "7")
    assert done.returncode == 9, done.stdout
    assert done.stdout.rstrip().endswith("weight 7")


def test_dynamic_unhealthy_still_exits_one(slapd):
    done = cli.run("kachecks-ldap", "--uri", slapd.url, "--base", BASE, "--filter", "(dc=mysite)",
                   "--expect", "o=wrong", "--dynamic", "--weight", "7")
    assert done.returncode == 1


def test_nagios_mode_prints_status_and_perfdata(slapd):
    done = cli.run("kachecks-ldap", "--uri", slapd.url, *REFERENCE, "--nagios")
    assert done.returncode == 0
    assert done.stdout.startswith("LDAP OK: 1 entry, o=mysite.mydmn.org in ")
    assert "| time=" in done.stdout and "entries=1" in done.stdout
