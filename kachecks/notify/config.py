"""``/etc/kachecks/kachecks.toml``: defaults, types, and one clear line per mistake.

Unknown keys are errors, not ignored: a misspelt ``to`` would otherwise mean
mails silently going nowhere, which is exactly what this tool exists to stop.
"""

import math
import os
import re
import stat
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
    "notify": {
        "heartbeat": ((str, int), 0),  # 0: off; else a heartbeat through every channel this often
    },
}
CHOICES = {("smtp", "security"): ("starttls", "tls", "none"), ("webhook", "format"): ("json", "slack")}
DURATIONS = ("expire", "retry_for", "heartbeat")
DURATION = re.compile(r"(\d{1,12}(?:\.\d{1,9})?)\s*([smhdw]?)")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Seconds: (lowest, highest, lowest allowed?). NaN and infinity never pass.
RANGES = {
    ("smtp", "timeout"): (0, 3600, False),
    ("webhook", "timeout"): (0, 3600, False),
    ("spool", "batch_window"): (0, 3600, True),
    ("spool", "expire"): (0, 366 * 86400, False),
    ("spool", "retry_for"): (0, 366 * 86400, True),
    ("notify", "heartbeat"): (0, 366 * 86400, True),
}
MAX_WIDTH = 1000  # in a template's format spec: {name:>20} yes, {name:>99999999999} no
MAX_FILE = 1 << 20
ADDRESS = r"[^\s@<>,;\"]+@[^\s@<>,;\"]+"
TO = re.compile(ADDRESS)
FROM = re.compile(rf"{ADDRESS}|[^<>\"\x00-\x1f\x7f]*<{ADDRESS}>")
URL = re.compile(r"https?://[^\s\x00-\x1f\x7f]+", re.I)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
BODY_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # a body may have lines and tabs


# Tables of the same file that `kachecks agent` owns and validates ([agent], [[check]]).
AGENT_SECTIONS = ("agent", "check")


class ConfigError(UsageError, ValueError):
    """One line for people, naming the file and the key."""


def duration(value, where):
    """``3d``, ``12h``, ``90m``, ``30s`` or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)  # the range check says what is wrong with -1, nan or inf
    match = DURATION.fullmatch(str(value).strip())
    if not match:
        raise ConfigError(f"{where}: invalid duration {value!r} (examples: 3d, 12h, 90m, 30s)")
    return float(match.group(1)) * UNITS[match.group(2)]


def in_range(section, key, value, where):
    """``value`` if it lies in RANGES, else ConfigError saying the range."""
    low, high, low_ok = RANGES[(section, key)]
    if math.isfinite(value) and (low <= value if low_ok else low < value) and value <= high:
        return value
    lowest = f"{low} or more" if low_ok else f"more than {low}"
    raise ConfigError(f"{where}: {section}.{key} must be {lowest} and at most {high} seconds, not {value:g}")


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
    for _, field, spec, conversion in parts:
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
    if isinstance(value, str) and (BODY_CONTROL if key == "body" else CONTROL).search(value):
        raise ConfigError(f"{where}: {section}.{key} holds a control character: {value!r}")
    if key == "to":
        items = [value] if isinstance(value, str) else value
        if not all(isinstance(i, str) and TO.fullmatch(i) for i in items):
            raise ConfigError(f"{where}: mail.to must be addresses like \"admin@example.org\", not {value!r}")
        return list(items)
    if (section, key) == ("mail", "from") and value and not FROM.fullmatch(value):
        raise ConfigError(f"{where}: mail.from must be an address like \"kachecks@lvs1.example.org\" "
                          f"or \"LVS lvs1 <kachecks@lvs1.example.org>\", not {value!r}")
    if (section, key) == ("webhook", "url") and value and not URL.fullmatch(value):
        raise ConfigError(f"{where}: webhook.url must be an http:// or https:// URL, not {value!r}")
    if key in ("host", "helo") and (" " in value or (key == "host" and not value)):
        raise ConfigError(f"{where}: {section}.{key} must be one host name, not {value!r}")
    if section == "mail" and key in ("subject", "body"):
        problem = template_error(value)
        if problem:
            raise ConfigError(f"{where}: mail.{key}: {problem}")
    if key in DURATIONS:
        value = duration(value, f"{where}: {section}.{key}")
    if (section, key) in RANGES:
        return in_range(section, key, float(value), where)
    if key == "port" and not 0 < value < 65536:
        raise ConfigError(f"{where}: smtp.port must be 1-65535, not {value}")
    return value


def parse(data, where="configuration"):
    """Validate a parsed TOML dict (missing keys get defaults)."""
    out = {}
    for section, value in data.items():
        if section in AGENT_SECTIONS:
            continue
        if section not in SCHEMA:
            known = ", ".join((*SCHEMA, *AGENT_SECTIONS))
            raise ConfigError(f"{where}: unknown section [{section}] (known: {known})")
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
    if out["mail"]["enabled"] and not out["mail"]["to"]:
        raise ConfigError(f"{where}: mail.to is empty: name at least one address, "
                          "or set mail.enabled = false")
    if not out["spool"]["dir"]:
        raise ConfigError(f"{where}: spool.dir is empty")
    return out


def read(path=None):
    """(path, parsed TOML) of ``--config``, ``$KACHECKS_CONFIG`` or the default file.

    A missing file is an error only when it was asked for explicitly; the
    default path missing reads as an empty file (built-in defaults).
    """
    explicit = path or os.environ.get("KACHECKS_CONFIG")
    path = explicit or DEFAULT_PATH
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not hang us
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{path}: configuration file not found") from None
        return path, {}
    except PermissionError:
        raise ConfigError(f"{path}: cannot read configuration file (permission denied)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError(f"{path}: configuration file is a directory")
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE:
            raise ConfigError(f"{path}: not a regular file of at most {MAX_FILE} bytes")
        data = os.read(fd, MAX_FILE)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file: {exc.strerror}") from None
    finally:
        os.close(fd)
    try:
        return path, tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def spool_dir(path=None):
    """``[spool] dir`` from a file that may be broken anywhere else.

    All `kachecks spool list` and `purge` need, and where `kachecks notify`
    keeps an event while the configuration is broken. ConfigError if the file
    cannot be read as TOML at all, or ``[spool] dir`` itself is wrong.
    """
    where, data = read(path)
    section = data.get("spool", {})
    value = section.get("dir", DEFAULT_SPOOL) if isinstance(section, dict) else None
    if not (isinstance(value, str) and value and not CONTROL.search(value)):
        raise ConfigError(f"{where}: spool.dir must be a directory name, not {value!r}")
    return value


def load(path=None, overrides=None):
    """Read the file (see ``read``) and apply overrides: the validated Config.

    Without a file, the defaults: local relay, root@localhost.
    """
    path, data = read(path)
    for dotted, value in (overrides or {}).items():
        if value is None or value == ():
            continue
        section, key = dotted.split(".")
        if isinstance(data.setdefault(section, {}), dict):  # else parse() names the problem
            data[section][key] = list(value) if isinstance(value, tuple) else value
    return Config(parse(data, path), path)
