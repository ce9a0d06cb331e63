"""kachecks.toml, the one configuration file: where it is, reading it, its conventions.

Two parts of kachecks read it, each validating its own tables:
kachecks/notify/config.py ([smtp], [mail], [webhook], [spool], [notify]) and
kachecks/agent/config.py ([agent], [[check]], [vrrp]). What they share lives here:

- **Reading** (``read``): a regular file of at most MAX_FILE bytes, opened
  without blocking (kachecks.files), UTF-8, TOML. Whatever the file holds,
  a failure to read it is a ConfigError: one line naming the file — a
  parser out of stack on deep nesting, an integer of 5,000 digits, a FIFO,
  /dev/zero, Latin-1 bytes. So ``kachecks agent --check-config`` says what
  is wrong, a SIGHUP keeps the running configuration and ``kachecks
  notify`` still spools its event.
- **Shape**: nothing nested deeper than MAX_DEPTH, no control character in
  a key; the tables are TABLES, an unknown one is an error.
- **Every mistake at once** (``Problems``): a table's validation goes on
  past a bad key, so one ``--check-config`` lists every mistake of the
  file, one line each, an unknown name with the closest known one ("did
  you mean 'interval'?"). A file that cannot be read at all is one error.
- **Values**: one spelling of a time (``duration``: seconds, or a number with
  a unit, everywhere), one rule for text that must be one line (``one_line``),
  and one way to name a key in a message: ``FILE: [table] key: problem``.
"""

import math
import os
import re

from kachecks.errors import UsageError

DEFAULT_PATH = "/etc/kachecks/kachecks.toml"
MAX_FILE = 4 << 20  # bytes: 10,000 [[check]] tables take about 1.5 MB
MAX_DEPTH = 8  # tables and arrays: [[check]] command = [...] is 3 deep
# Every table of the file, in the order messages list them.
TABLES = ("smtp", "mail", "webhook", "spool", "notify", "agent", "check", "vrrp")
# C0 controls, DEL and C1 controls: never in a name, a path, an address, a command.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION = re.compile(r"\s*(\d{1,12}(?:\.\d{1,9})?)\s*(ms|s|m|h|d|w)?\s*")
DURATION_HELP = "a number of seconds, or a number with a unit: 500ms, 30s, 5m, 12h, 3d, 1w"


class ConfigError(UsageError, ValueError):
    """One line for people, naming the file, the table and the key.

    ``denied``: the file is there but this user may not read it (the doctor,
    run as another user, then says its audit is incomplete, not wrong).
    ``lines``: every mistake found, one line each (the guard prints them all);
    the message itself is the first, saying how many more there are.
    """

    def __init__(self, message, denied=False, lines=None):
        self.every = tuple(lines) if lines else (message,)
        if len(self.every) > 1:
            message = f"{self.every[0]} (and {len(self.every) - 1} more)"
        super().__init__(message)
        self.denied = denied

    @property
    def lines(self):
        return self.every


class Problems:
    """Every mistake of a file, collected: validate each part inside ``catch()``
    (a ConfigError there is kept and the validation goes on), then ``check()``.

        problems = Problems()
        with problems.catch():
            value = duration(table["interval"], where)
        problems.check()   # ConfigError with every line, if any
    """

    def __init__(self):
        self.lines = []

    def add(self, message):
        self.lines.append(message)

    def catch(self):
        return _Catch(self)

    def __bool__(self):
        return bool(self.lines)

    def check(self):
        if self.lines:
            raise ConfigError(self.lines[0], lines=self.lines)


class _Catch:
    __slots__ = ("problems", "failed")

    def __init__(self, problems):
        self.problems = problems
        self.failed = False

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is not None and issubclass(kind, ConfigError):
            self.problems.lines.extend(exc.every)
            self.failed = True
            return True
        return False


def did_you_mean(name, known):
    """``; did you mean 'interval'?`` for the known name closest to a misspelt one (the
    doctor's words for keepalived's keywords), else `` (known: …)``: what an unknown key
    or table's message ends with."""
    import difflib

    close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f" (known: {', '.join(known)})"


def unknown_keys(table, known, where, problems):
    """One problem per key of ``table`` not in ``known``: ``{where} KEY: unknown key; did
    you mean '…'?``; ``where`` ends as the key's name should follow it."""
    for key in table:
        if key not in known:
            problems.add(f"{where} {show(key, quote=False)}: unknown key{did_you_mean(key, known)}")


def location(path=None):
    """``(path, explicit)``: ``--config``, else ``$KACHECKS_CONFIG``, else DEFAULT_PATH."""
    explicit = path or os.environ.get("KACHECKS_CONFIG")
    return explicit or DEFAULT_PATH, bool(explicit)


def read(path=None):
    """``(path, data)``: the parsed file (see ``location``), or ConfigError.

    A missing file is an error only when it was asked for explicitly; the
    default path missing reads as an empty file (built-in defaults).
    """
    from kachecks import files

    path, explicit = location(path)
    try:
        raw = files.read_regular(path, "", MAX_FILE)
    except files.UnusableFile as exc:
        if exc.reason == "missing":
            if explicit:
                raise ConfigError(f"{path}: configuration file not found") from None
            return path, {}
        if exc.reason in ("denied", "error"):
            raise ConfigError(f"{path}: cannot read configuration file: {exc.detail}",
                              denied=exc.reason == "denied") from None
        raise ConfigError(f"{path}: configuration file is {exc.detail}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    data = _parse(text, path)
    _vet(data, path)
    return path, data


def _parse(text, path):
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply (at most {MAX_DEPTH} levels of tables"
                          " and arrays)") from None
    except Exception as exc:  # e.g. ValueError: an integer of more than 4,300 digits
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _vet(data, path):
    """Refuse nesting deeper than MAX_DEPTH and control characters in keys, walking the
    parsed file without recursion (what later code does with a value must not fail)."""
    stack = [(data, 1, "")]
    while stack:
        value, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(f"{path}: nested too deeply at {where or 'the top'} (at most"
                              f" {MAX_DEPTH} levels of tables and arrays)")
        if isinstance(value, dict):
            for key, item in value.items():
                name = f"{where}.{key}" if where else key
                if CONTROL.search(key):
                    raise ConfigError(f"{path}: {show(name)}: a key holds a control character")
                if isinstance(item, (dict, list)):
                    stack.append((item, depth + 1, name))
        else:
            stack.extend((item, depth + 1, f"{where}[{index}]")
                         for index, item in enumerate(value) if isinstance(item, (dict, list)))


def unknown_tables(data, path, problems=None):
    """Every table of ``data`` that is not one of TABLES, as problems (or a ConfigError
    naming them all when no ``problems`` is given)."""
    mine = Problems() if problems is None else problems
    for table in data:
        if table not in TABLES:
            mine.add(f"{path}: unknown section [{show(table, quote=False)}]"
                     f"{did_you_mean(table, TABLES)}")
    if problems is None:
        mine.check()


def show(value, quote=True, limit=80):
    """``value`` as TOML spells it (true, "5s", 3), one printable line of at most ``limit``
    characters, for messages: what a file holds never splits or forges a line."""
    import json

    from kachecks.runtime import one_line

    if isinstance(value, float) or (isinstance(value, str) and not quote):
        text = str(value)  # nan, inf, 2.5 as TOML spells them
    else:
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            text = repr(value)
    text = one_line(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def one_line(value, name, tab=False):
    """``value`` if it holds no control character (``tab``: but tabs), else ConfigError
    naming ``name`` ("FILE: [table] key"): paths, addresses, names and commands are one
    line."""
    if CONTROL.search(value.replace("\t", " ") if tab else value):
        raise ConfigError(f"{name}: holds a control character: {show(value)}")
    return value


def duration(value, name, low=0.0, high=366 * 86400.0, low_ok=False):
    """Seconds from a number or a string with a unit (``500ms``, ``30s``, ``5m``, ``12h``,
    ``3d``, ``1w``; no unit: seconds), in ``low`` (allowed if ``low_ok``) .. ``high``;
    else ConfigError naming ``name`` ("FILE: [table] key"; None: a command-line option's
    value, which its parser names)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = DURATION.fullmatch(value) if isinstance(value, str) else None
        if not match:
            raise ConfigError(f"{_named(name)}must be a duration ({DURATION_HELP}), not"
                              f" {show(value)}")
        seconds = float(match.group(1)) * UNITS[match.group(2) or "s"]
    if math.isfinite(seconds) and (low <= seconds if low_ok else low < seconds) \
            and seconds <= high:
        return seconds
    lowest = f"{low:.15g} or more" if low_ok else f"more than {low:.15g}"
    raise ConfigError(f"{_named(name)}must be {lowest} and at most {high:.15g} seconds, not"
                      f" {show(value)}")


def _named(name):
    return f"{name}: " if name else ""
