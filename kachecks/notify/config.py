"""``/etc/kachecks/kachecks.toml``: defaults, types, and one clear line per mistake.

Unknown keys are errors, not ignored: a misspelt ``to`` would otherwise mean
mails silently going nowhere, which is exactly what this tool exists to stop.
"""

import os
import re
import tomllib

from kachecks.errors import UsageError

DEFAULT_PATH = "/etc/kachecks/kachecks.toml"
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

# section -> key -> (types, default)
SCHEMA = {
    "smtp": {
        "host": (str, "localhost"),
        "port": (int, None),  # None: 465 for security = "tls", else 25
        "security": (str, "starttls"),
        "username": (str, ""),
        "password_file": (str, ""),
        "timeout": ((int, float), 30),
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
        "timeout": ((int, float), 10),
        "cafile": (str, ""),
        "verify": (bool, True),
    },
    "spool": {
        "dir": (str, DEFAULT_SPOOL),
        "expire": ((str, int), "3d"),
        "batch_window": ((int, float), 2),
        "retry_for": ((str, int), "10m"),
    },
}
CHOICES = {("smtp", "security"): ("starttls", "tls", "none"), ("webhook", "format"): ("json", "slack")}
DURATIONS = ("expire", "retry_for")
DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ConfigError(UsageError):
    """One line for people, naming the file and the key."""


def duration(value, where):
    """``3d``, ``12h``, ``90m``, ``30s`` or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    match = DURATION.fullmatch(str(value).strip())
    if not match:
        raise ConfigError(f"{where}: invalid duration {value!r} (examples: 3d, 12h, 90m, 30s)")
    return float(match.group(1)) * UNITS[match.group(2)]


def template_error(template):
    """None if ``template`` renders with the event fields, else why not."""
    from kachecks.notify import event

    known = event.fields(event.sample())
    try:
        template.format(**known)
    except KeyError as exc:
        return f"unknown field {{{exc.args[0]}}} (known: {', '.join(known)})"
    except (ValueError, IndexError) as exc:
        return f"invalid template: {exc}"
    return None


class Config:
    """Plain attribute access to the validated settings: ``cfg.smtp['host']``."""

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
        if self.mail["enabled"] and self.mail["to"]:
            names.append("mail")
        if self.webhook["url"]:
            names.append("webhook")
        return names


def _check(section, key, value, where):
    types, _ = SCHEMA[section][key]
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types)
    if not ok:
        names = " or ".join({int: "an integer", float: "a number", str: "a string", list: "a list",
                             bool: "true or false"}[t] for t in types)
        raise ConfigError(f"{where}: {section}.{key} must be {names}, not {value!r}")
    choices = CHOICES.get((section, key))
    if choices and value not in choices:
        raise ConfigError(f"{where}: {section}.{key} must be one of {', '.join(choices)}, not {value!r}")
    if key == "to":
        items = [value] if isinstance(value, str) else value
        if not all(isinstance(i, str) and "@" in i for i in items):
            raise ConfigError(f"{where}: mail.to must be addresses like \"admin@example.org\", not {value!r}")
        return list(items)
    if section == "mail" and key in ("subject", "body"):
        problem = template_error(value)
        if problem:
            raise ConfigError(f"{where}: mail.{key}: {problem}")
    if section == "spool" and key in DURATIONS:
        return duration(value, f"{where}: spool.{key}")
    if key == "port" and not 0 < value < 65536:
        raise ConfigError(f"{where}: smtp.port must be 1-65535, not {value}")
    return value


def parse(data, where="configuration"):
    """Validate a parsed TOML dict (missing keys get defaults)."""
    out = {}
    for section, value in data.items():
        if section not in SCHEMA:
            raise ConfigError(f"{where}: unknown section [{section}] (known: {', '.join(SCHEMA)})")
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {section} must be a [{section}] table")
    for section, keys in SCHEMA.items():
        given = data.get(section, {})
        for key in given:
            if key not in keys:
                raise ConfigError(f"{where}: unknown key {section}.{key} (known: {', '.join(keys)})")
        values = {}
        for key, (_, default) in keys.items():
            if key in given:
                values[key] = _check(section, key, given[key], where)
            else:
                values[key] = duration(default, key) if key in DURATIONS else default
        out[section] = values
    if out["spool"]["expire"] == 0:
        raise ConfigError(f"{where}: spool.expire must be more than 0")
    if out["spool"]["batch_window"] < 0:
        raise ConfigError(f"{where}: spool.batch_window must be 0 or more seconds")
    return out


def load(path=None, overrides=None):
    """Read the file (``--config``, ``$KACHECKS_CONFIG`` or the default) and apply overrides.

    A missing file is an error only when it was asked for explicitly; the
    default path missing means built-in defaults (local relay, root@localhost).
    """
    explicit = path or os.environ.get("KACHECKS_CONFIG")
    path = explicit or DEFAULT_PATH
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{path}: configuration file not found") from None
        data = {}
    except PermissionError:
        raise ConfigError(f"{path}: cannot read configuration file (permission denied)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: configuration file is a directory") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file: {exc.strerror}") from None
    for dotted, value in (overrides or {}).items():
        if value is None or value == ():
            continue
        section, key = dotted.split(".")
        if isinstance(data.setdefault(section, {}), dict):  # else parse() names the problem
            data[section][key] = list(value) if isinstance(value, tuple) else value
    return Config(parse(data, path), path)
