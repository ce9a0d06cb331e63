"""The check executables' entry points: ``kachecks-http`` is ``entry.http()``, and so on.

They catch the terminating signals (kachecks.interrupt) before the check's own
modules load, so a SIGTERM in the first milliseconds still ends in exit 1 and
one line, not death by the signal. Importing this module imports nothing else.
"""


def _main(name):
    from kachecks import interrupt

    interrupt.install()
    from kachecks.checks import registry
    from kachecks.checks.contract import run

    return run(registry.load(name))


def http():
    """``kachecks-http``."""
    return _main("http")


def tcp():
    """``kachecks-tcp``."""
    return _main("tcp")


def ldap():
    """``kachecks-ldap``."""
    return _main("ldap")
