"""ldap3 (and ssl, logging… which it drags in) load only when a search really runs."""

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


def test_a_search_imports_ldap3_and_nothing_else_heavy(slapd):
    code, names = imported(MODULE, ["--uri", slapd.url, *REFERENCE, "-q"])
    assert code == 0
    assert "ldap3" in names
    ldap3_brings = {"ldap3", "logging", "dataclasses", "ssl", "socket", "re", "base64"}
    assert not names & (NEVER - ldap3_brings), names & (NEVER - ldap3_brings)
