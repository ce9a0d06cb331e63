"""kachecks-ldap speaks LDAP itself (kachecks.ldap): no ldap3, and ssl only for TLS."""

from tests.checks.test_imports import NEVER, PLAIN_EXTRA, imported
from tests.ldap.helpers import REFERENCE

MODULE = "kachecks.checks.ldap"


def test_help_and_usage_errors_import_neither_ldap3_nor_ssl():
    for argv in (["--help"], ["--uri", "http://nowhere"], ["--uri", "ldap://127.0.0.1",
                                                           "--scope", "bad"]):
        code, names = imported(MODULE, argv)
        assert code in (0, 1), argv
        assert MODULE in names
        assert not names & (NEVER | PLAIN_EXTRA), (argv, names & (NEVER | PLAIN_EXTRA))


def test_a_plain_search_imports_neither_ldap3_nor_ssl_nor_anything_heavy(slapd):
    code, names = imported(MODULE, ["--uri", slapd.url, *REFERENCE, "-q"])
    assert code == 0
    assert "kachecks.ldap.client" in names  # the search really ran
    assert not names & (NEVER | PLAIN_EXTRA | {"ldap3"}), names & (NEVER | PLAIN_EXTRA | {"ldap3"})
