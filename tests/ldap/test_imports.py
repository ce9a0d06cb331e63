"""ldap3 (and ssl, logging… which it drags in) load only when a search really runs."""

from harness.checks import REFERENCE
from harness.imports import HEAVY, LDAP3_BRINGS, PLAIN_EXTRA, imported

MODULE = "kachecks.checks.ldap"


def test_help_and_usage_errors_import_neither_ldap3_nor_ssl():
    for argv in (["--help"], ["--uri", "http://nowhere"], ["--uri", "ldap://127.0.0.1",
                                                           "--scope", "bad"]):
        code, names = imported(MODULE, argv)
        assert code in (0, 1), argv
        assert MODULE in names
        assert not names & (HEAVY | PLAIN_EXTRA), (argv, names & (HEAVY | PLAIN_EXTRA))


def test_a_search_imports_ldap3_and_nothing_else_heavy(slapd):
    code, names = imported(MODULE, ["--uri", slapd.url, *REFERENCE, "-q"])
    assert code == 0
    assert "ldap3" in names
    assert not names & (HEAVY - LDAP3_BRINGS), names & (HEAVY - LDAP3_BRINGS)
