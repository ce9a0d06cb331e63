"""``[smtp]``, ``[mail]``, ``[webhook]``, ``[spool]`` and ``[notify]`` of kachecks.toml: defaults, types,
and one clear line per mistake (the file itself is read by kachecks.configfile).

Unknown keys are errors, not ignored: a misspelt ``to`` would otherwise mean
mails silently going nowhere, which is exactly what this tool exists to stop.
"""

import re

from kachecks import configfile
from kachecks.configfile import ConfigError, show

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any

DEFAULT_SPOOL = "/var/spool/kachecks"

DEFAULT_SUBJECT = "[{host}] {name}: {previous} -> {state}{prio}"
DEFAULT_BODY = """\
keepalived state change on {host}

Host:           {host}
Time:           {time}
Object:         {type} {name}{vs}
Previous state: {previous}
New state:      {state}
Priority:       {priority}
Raw event:      {raw}
"""

DURATION = (int, float, str)  # seconds, or "500ms", "30s", "10m", "3d" (configfile.duration)
# section -> key -> (types, default)
SCHEMA: "dict[str, dict[str, tuple[Any, Any]]]" = {
    "smtp": {
        "host": (str, "localhost"),
        "port": (int, None),  # None: 465 for security = "tls", else 25
        "security": (str, "starttls"),
        "username": (str, ""),
        "password_file": (str, ""),
        "timeout": (DURATION, 30),
        "cafile": (str, ""),
        "verify": (bool, True),
        "helo": (str, ""),
    },
    "mail": {
        "enabled": (bool, True),
        "from": (str, ""),  # "" -> kachecks@<hostname>
        "to": ((list, str), ["root@localhost"]),
        "subject": (str, DEFAULT_SUBJECT),
        "body": (str, DEFAULT_BODY),
    },
    "webhook": {
        "url": (str, ""),
        "format": (str, "json"),
        "timeout": (DURATION, 10),
        "cafile": (str, ""),
        "verify": (bool, True),
    },
    "spool": {
        "dir": (str, DEFAULT_SPOOL),
        "expire": (DURATION, "3d"),
        "batch_window": (DURATION, 2),
        "retry_for": (DURATION, "10m"),
    },
    "notify": {
        "heartbeat": (DURATION, 0),  # 0: off; else a heartbeat through every channel this often
        # the agent's [vrrp]: a holder of an instance's addresses that disagrees this long with
        # the last state notified is spooled as the missed event (kachecks.agent.reconcile); 0: off
        "reconcile_after": (DURATION, 10),
    },
}
CHOICES = {("smtp", "security"): ("starttls", "tls", "none"), ("webhook", "format"): ("json", "slack")}
# Durations (kachecks.configfile.duration): (lowest, highest, lowest allowed?) in seconds.
DURATIONS = {
    ("smtp", "timeout"): (0, 3600, False),
    ("webhook", "timeout"): (0, 3600, False),
    ("spool", "batch_window"): (0, 3600, True),
    ("spool", "expire"): (0, 366 * 86400, False),
    ("spool", "retry_for"): (0, 366 * 86400, True),
    ("notify", "heartbeat"): (0, 366 * 86400, True),
    ("notify", "reconcile_after"): (0, 86400, True),
}
MAX_WIDTH = 1000  # in a template's format spec: {name:>20} yes, {name:>99999999999} no
ADDRESS = r"[^\s@<>,;\"]+@[^\s@<>,;\"]+"
TO = re.compile(ADDRESS)
FROM = re.compile(rf"{ADDRESS}|[^<>\"\x00-\x1f\x7f]*<{ADDRESS}>")
URL = re.compile(r"https?://[^\s\x00-\x1f\x7f]+", re.I)
BODY_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # a body may have lines and tabs


def template_error(template):
    """None if ``template`` is safe to render with the event fields, else why not.

    Only plain field names (no attributes, indexes or positions) and format
    specs of sane width: a template renders every event, in the deliverer.
    """
    import string

    from kachecks.notify import event

    known = event.fields(event.sample())
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"invalid template: {exc}"
    for _, field, spec, _conversion in parts:
        if field is None:
            continue
        if field not in known:
            return f"unknown field {{{field}}} (known: {', '.join(known)})"
        if "{" in (spec or ""):
            return f"{{{field}:{spec}}}: a format spec cannot hold fields"
        if any(int(number) > MAX_WIDTH for number in re.findall(r"\d+", spec or "")):
            return f"{{{field}:{spec}}}: width or precision over {MAX_WIDTH}"
    try:
        template.format(**known)
    except (ValueError, IndexError, KeyError) as exc:
        return f"invalid template: {exc}"
    return None


class Config:
    """Plain attribute access to the validated settings: ``cfg.smtp['host']``."""

    smtp: "dict[str, Any]"  # one attribute per table of SCHEMA
    mail: "dict[str, Any]"
    webhook: "dict[str, Any]"
    spool: "dict[str, Any]"
    notify: "dict[str, Any]"

    def __init__(self, data, path):
        self.path = path
        for section in SCHEMA:
            setattr(self, section, data[section])

    @property
    def spool_dir(self):
        return self.spool["dir"]

    def channels(self):
        """Names of the configured delivery channels, in delivery order."""
        names = []
        if self.mail["enabled"]:
            names.append("mail")
        if self.webhook["url"]:
            names.append("webhook")
        return names


def _check(section, key, value, where):
    name = f"{where}: [{section}] {key}"
    if (section, key) in DURATIONS:
        low, high, low_ok = DURATIONS[(section, key)]
        return configfile.duration(value, name, low, high, low_ok)
    types, _ = SCHEMA[section][key]
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types)
    if not ok:
        names = " or ".join({int: "an integer", float: "a number", str: "a string", list: "a list",
                             bool: "true or false"}[t] for t in types)
        raise ConfigError(f"{name}: must be {names}, not {show(value)}")
    choices = CHOICES.get((section, key))
    if choices and value not in choices:
        raise ConfigError(f"{name}: must be one of {', '.join(choices)}, not {show(value)}")
    if isinstance(value, str):
        if key == "body":
            if BODY_CONTROL.search(value):
                raise ConfigError(f"{name}: holds a control character other than a line end"
                                  f" or a tab: {show(value)}")
        else:
            configfile.one_line(value, name)
    if key == "to":
        items = [value] if isinstance(value, str) else value
        if not all(isinstance(i, str) and TO.fullmatch(i) for i in items):
            raise ConfigError(f'{name}: must be addresses like "admin@example.org", not {show(value)}')
        for item in items:
            configfile.one_line(item, name)
        return list(items)
    if (section, key) == ("mail", "from") and value and not FROM.fullmatch(value):
        raise ConfigError(f'{name}: must be an address like "kachecks@lvs1.example.org" '
                          f'or "LVS lvs1 <kachecks@lvs1.example.org>", not {show(value)}')
    if (section, key) == ("webhook", "url") and value and not URL.fullmatch(value):
        raise ConfigError(f"{name}: must be an http:// or https:// URL, not {show(value)}")
    if key in ("host", "helo") and (" " in value or (key == "host" and not value)):
        raise ConfigError(f"{name}: must be one host name, not {show(value)}")
    if section == "mail" and key in ("subject", "body"):
        problem = template_error(value)
        if problem:
            raise ConfigError(f"{name}: {problem}")
    if key == "port" and not 0 < value < 65536:
        raise ConfigError(f"{name}: must be 1-65535, not {show(value)}")
    return value


def parse(data, where="configuration"):
    """Validate a parsed TOML dict (missing keys get defaults); ConfigError with every
    mistake, one line each."""
    problems = configfile.Problems()
    configfile.unknown_tables(data, where, problems)
    out = {}
    for section, keys in SCHEMA.items():
        given = data.get(section, {})
        if not isinstance(given, dict):
            problems.add(f"{where}: {section} must be a [{section}] table")
            given = {}
        configfile.unknown_keys(given, keys, f"{where}: [{section}]", problems)
        values = {}
        for key, (_, default) in keys.items():
            if key in given:
                with problems.catch():
                    values[key] = _check(section, key, given[key], where)
            elif (section, key) in DURATIONS:
                values[key] = configfile.duration(default, f"{section}.{key}", *DURATIONS[(section, key)])
            else:
                values[key] = default
        out[section] = values
    if "to" in out["mail"] and out["mail"]["enabled"] and not out["mail"]["to"]:
        problems.add(f"{where}: [mail] to: is empty: name at least one address, "
                     "or set enabled = false")
    if "dir" in out["spool"] and not out["spool"]["dir"]:
        problems.add(f"{where}: [spool] dir: is empty")
    problems.check()
    return out


def setting(data, where, section, key):
    """One key of a parsed file (``data``), validated as ``parse`` validates it, or its
    default when absent: for a reader of one key that must not depend on the rest of these
    tables (the agent's [vrrp] reads ``[notify] reconcile_after``; a broken ``[smtp]`` never
    stops its checks). ConfigError naming the key."""
    table = data.get(section, {})
    if isinstance(table, dict) and key in table:
        return _check(section, key, table[key], where)
    default = SCHEMA[section][key][1]
    if (section, key) in DURATIONS:
        return configfile.duration(default, f"{section}.{key}", *DURATIONS[(section, key)])
    return default


def spool_dir(path=None):
    """``[spool] dir`` from a file that may be broken anywhere else.

    All `kachecks spool list` and `purge` need, and where `kachecks notify`
    keeps an event while the configuration is broken. ConfigError if the file
    cannot be read as TOML at all, or ``[spool] dir`` itself is wrong.
    """
    where, data = configfile.read(path)
    section = data.get("spool", {})
    value = section.get("dir", DEFAULT_SPOOL) if isinstance(section, dict) else None
    name = f"{where}: [spool] dir"
    if not (isinstance(value, str) and value):
        raise ConfigError(f"{name}: must be a directory name, not {show(value)}")
    return configfile.one_line(value, name)


def load(path=None, overrides=None):
    """Read the file (kachecks.configfile.read) and apply overrides: the validated Config.

    Without a file, the defaults: local relay, root@localhost.
    """
    path, data = configfile.read(path)
    for dotted, value in (overrides or {}).items():
        if value is None or value == ():
            continue
        section, key = dotted.split(".")
        if isinstance(data.setdefault(section, {}), dict):  # else parse() names the problem
            data[section][key] = list(value) if isinstance(value, tuple) else value
    return Config(parse(data, path), path)
