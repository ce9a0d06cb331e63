"""The one table of exit codes.

keepalived reads nothing but a script's exit code, so every number a
kachecks program can return is named here; a check's is picked by the verdict
(kachecks.checks.verdict) alone, any command's failure by the guard
(kachecks.runtime); commands return OK, FAILURE or NOT_RUNNING by name.

Plain int constants, not an IntEnum: ``enum`` costs a few milliseconds per
forked check, and nothing else on the plain HTTP/TCP path imports it.
"""


class ExitCode:
    """Exit codes by meaning; several names share a number on purpose."""

    OK = 0
    FAILURE = 1  # unhealthy, drained (plain mode), usage or internal error
    # --dynamic: keepalived's misc_dynamic reads 2 + weight (2..255) as
    # "healthy with this weight"; 2 alone is "healthy, weight 0" (drained).
    DYNAMIC_BASE = 2
    DYNAMIC_MAX = 255
    # --nagios: the plugin convention.
    NAGIOS_OK = 0
    NAGIOS_WARNING = 1
    NAGIOS_CRITICAL = 2
    NAGIOS_UNKNOWN = 3
    # `kachecks agent status`: no agent runs (LSB init scripts' "program is not running").
    NOT_RUNNING = 3
