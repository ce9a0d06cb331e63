"""The notifier's syslog lines: ident ``kachecks-notify``, facility daemon."""

from kachecks import syslogger
from kachecks.syslogger import LOG_ERR, LOG_INFO, LOG_NOTICE, LOG_WARNING  # noqa: F401 (re-exported)


def log(message, priority=LOG_INFO):
    """Every event, delivery, failure, expiry and purge ends up here."""
    syslogger.send("kachecks-notify", message, priority)
