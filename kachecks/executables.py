"""The check executables: where a check's forked run and the worker's hand-over meet.

``kachecks-http``, ``kachecks-tcp``, ``kachecks-ldap`` and ``kachecks-vrrp``
(pyproject.toml's console scripts, which a test keeps equal to the registry)
enter here, and so
does ``kachecks check NAME``. The check layer (kachecks.checks) never imports
the worker, which runs the checks; this module, above both, gives
``contract.run`` the hand-over to ``kachecks worker``, and imports it only for
a run worth handing over (a plain check never loads kachecks.worker).

The entry points catch the terminating signals (kachecks.interrupt) before the
check's own modules load, so a SIGTERM in the first milliseconds still ends in
exit 1 and one line, not death by the signal.
"""

from kachecks import interrupt
from kachecks.checks import registry


def run(name, argv=None, prog=None):
    """The exit code of check ``name`` run as a forked executable (UsageError if unknown)."""
    interrupt.install()
    check = registry.forked(name)
    from kachecks.checks.contract import run as run_check  # loaded with the check

    return run_check(check, argv, prog, handover=handover)


def handover(executable, prog, argv, codes, within, deadline, notes):
    """``contract.run``'s hand-over: kachecks.worker.client.delegate, loaded on first use."""
    from kachecks.worker import client

    return client.delegate(executable, prog, argv, codes, within, deadline, notes)


def http():
    """``kachecks-http``."""
    return run("http")


def tcp():
    """``kachecks-tcp``."""
    return run("tcp")


def ldap():
    """``kachecks-ldap``."""
    return run("ldap")


def vrrp():
    """``kachecks-vrrp``."""
    return run("vrrp")
