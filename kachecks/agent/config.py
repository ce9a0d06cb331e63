"""``[agent]``, ``[[check]]`` and ``[vrrp]`` of kachecks.toml, validated into immutable values.

Each ``command`` is a ``misc_path`` line, parsed by the check's own option
parser: a command the forked executable would reject is rejected here, with
the check's own message. Every mistake is one line naming the file, the check
and the key, and every mistake of the file is said at once (an unknown key
with the closest known one), so ``kachecks agent --check-config`` and a
SIGHUP reload can say exactly what to fix.

``director = true`` marks a check as this director's own (its uplink, its
gateway) rather than a real server's: only such checks are tracked in a
vrrp_instance (``kachecks agent conf``), each with ``vrrp_weight``. A real
server is checked by both directors, so its failure must never cost a
director more than its peer.
"""

from __future__ import annotations

import os
import re

from kachecks import configfile
from kachecks.checks import registry
from kachecks.configfile import ConfigError
from kachecks.errors import UsageError
from kachecks.notify import config as notify_config

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any

DEFAULT_TRACK_DIR = "/run/kachecks/track"
DEFAULT_METRICS = "127.0.0.1:9662"
STATUS_FILE = ".kachecks-agent.json"  # in track_dir; never a check's name (no leading dot)
# in track_dir: 1 while the agent runs, 0 once it stopped (by itself, or `agent zero` after a
# crash); a vrrp_instance tracks it (weight 0 reverse) to fail over when the agent stops,
# where vrrp_track_process cannot run (keepalived in a network namespace of its own)
ALIVE_FILE = ".kachecks-agent.running"

# [agent] defaults of every [[check]]; a [[check]] may set its own
DEFAULTS = {"interval": 5.0, "timeout": 3.0, "rise": 1, "fall": 1}
AGENT_KEYS = ("track_dir", "metrics", *DEFAULTS)
CHECK_KEYS = ("name", "command", "file", *DEFAULTS, "director", "vrrp_weight")
VRRP_KEYS = ("keepalived_conf", "instances", "hold", "ignore_vrids", "config_id")
DEFAULT_KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
MAX_HOLD = 3600.0
# what a director check's "up" adds to the priority by default (kachecks agent conf)
DEFAULT_VRRP_WEIGHT = 20
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
MAX_COUNT = 1000  # rise/fall beyond this are typos, not policies
MAX_INTERVAL = 86400.0


class CheckSpec:
    """One configured check: what to run, how often, where its state goes."""

    __slots__ = ("name", "argv", "check", "target", "interval", "timeout", "rise", "fall", "file",
                 "director", "vrrp_weight")
    name: str
    argv: tuple[str, ...]
    check: Any  # the registry's check (kachecks.checks.contract.Check)
    target: Any  # that check's target (an HttpTarget, TcpTarget, LdapTarget)
    interval: float
    timeout: float
    rise: int
    fall: int
    file: str
    director: bool
    vrrp_weight: int

    def __init__(self, name, argv, check, target, interval, rise, fall, file, director=False,
                 vrrp_weight=DEFAULT_VRRP_WEIGHT):
        values = {"name": name, "argv": tuple(argv), "check": check, "target": target,
                  "interval": interval, "timeout": target.timeout, "rise": rise, "fall": fall,
                  "file": file, "director": director, "vrrp_weight": vrrp_weight}
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def __setattr__(self, name, value):
        raise AttributeError("CheckSpec is immutable")

    @property
    def identity(self):
        """What must be equal for a reload to keep this check's state."""
        return (self.name, self.argv, self.file)

    @property
    def dynamic(self):
        return bool(self.target.dynamic)


class VrrpSettings:
    """``[vrrp]``: what the agent watches on the wire (kachecks.agent.pair). keepalived.conf
    itself is read when the watch starts, not here: a keepalived.conf the watch cannot use
    never keeps the checks from running. ``reconcile_after`` is ``[notify]
    reconcile_after`` (kachecks.agent.reconcile; 0: off)."""

    __slots__ = ("keepalived_conf", "instances", "hold", "ignore_vrids", "config_id",
                 "reconcile_after")
    keepalived_conf: str
    instances: tuple[str, ...]
    hold: float
    ignore_vrids: tuple[int, ...]
    config_id: str | None
    reconcile_after: float

    def __init__(self, keepalived_conf, instances, hold, ignore_vrids, config_id,
                 reconcile_after):
        values = {"keepalived_conf": keepalived_conf, "instances": tuple(instances),
                  "hold": hold, "ignore_vrids": tuple(ignore_vrids), "config_id": config_id,
                  "reconcile_after": reconcile_after}
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def __setattr__(self, name, value):
        raise AttributeError("VrrpSettings is immutable")


class AgentConfig:
    __slots__ = ("path", "track_dir", "metrics", "checks", "vrrp")
    path: str
    track_dir: str
    metrics: tuple[str, int] | None
    checks: tuple[CheckSpec, ...]
    vrrp: VrrpSettings | None

    def __init__(self, path, track_dir, metrics, checks, vrrp=None):
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "track_dir", track_dir)
        object.__setattr__(self, "metrics", metrics)  # (host, port) or None
        object.__setattr__(self, "checks", tuple(checks))
        object.__setattr__(self, "vrrp", vrrp)  # VrrpSettings, or None: no [vrrp] table

    def __setattr__(self, name, value):
        raise AttributeError("AgentConfig is immutable")

    @property
    def status_file(self):
        return os.path.join(self.track_dir, STATUS_FILE)

    @property
    def alive_file(self):
        return os.path.join(self.track_dir, ALIVE_FILE)

    @property
    def files(self):
        """Every check's track file."""
        return [spec.file for spec in self.checks]


def load(path=None):
    """The validated configuration, or ConfigError (every mistake, one line each)."""
    path, data = configfile.read(path)
    return parse(data, path)


def parse(data, path):
    problems = configfile.Problems()
    configfile.unknown_tables(data, path, problems)
    agent = data.get("agent", {})
    if not isinstance(agent, dict):
        problems.add(f"{path}: agent must be an [agent] table")
        agent = {}
    where = f"{path}: [agent]"
    configfile.unknown_keys(agent, AGENT_KEYS, where, problems)
    defaults = {}
    for key, default in DEFAULTS.items():
        with problems.catch():
            defaults[key] = _number(key, agent.get(key, default), where)
    track_dir = None
    with problems.catch():
        track_dir = _text("track_dir", agent.get("track_dir", DEFAULT_TRACK_DIR), where)
        configfile.one_line(track_dir, f"{where} track_dir")
        if not os.path.isabs(track_dir):
            raise ConfigError(f"{where} track_dir: must be an absolute path, not"
                              f" {_show(track_dir)}")
    metrics = None
    with problems.catch():
        metrics = _address(agent.get("metrics", DEFAULT_METRICS), where)
    tables = data.get("check", [])
    if isinstance(tables, dict) or not isinstance(tables, list):
        problems.add(f"{path}: check must be [[check]] tables (one per check), not [check]")
        tables = []
    checks: list[CheckSpec] = []
    names: dict[str, int] = {}
    files: dict[str, int] = {}
    for number, table in enumerate(tables, start=1):
        # a check whose defaults or track directory are wrong is still checked for its own
        # mistakes: with the built-in defaults and a stand-in directory
        spec = _check(table, number, {**DEFAULTS, **defaults}, track_dir or DEFAULT_TRACK_DIR,
                      path, problems)
        if spec is None:
            continue
        for seen, key, value in ((names, "name", spec.name), (files, "file", spec.file)):
            if value in seen:
                problems.add(f"{path}: check {spec.name!r}: {key}: {value!r} is already"
                             f" used by check {seen[value]!r}")
                break  # a name used twice is a file used twice: said once
            seen[value] = spec.name
        checks.append(spec)
    reconcile_after = None
    with problems.catch():  # the [notify] key the agent uses, whatever the rest of [notify]
        reconcile_after = notify_config.setting(data, path, "notify", "reconcile_after")
    vrrp = _vrrp(data, path, problems, reconcile_after)
    problems.check()
    return AgentConfig(path, os.path.normpath(track_dir), metrics, checks, vrrp)


def _vrrp(data, path, problems, reconcile_after):
    """The ``[vrrp]`` table as VrrpSettings (None without one), its mistakes added to
    ``problems``."""
    table = data.get("vrrp")
    if table is None:
        return None
    if not isinstance(table, dict):
        problems.add(f"{path}: vrrp must be a [vrrp] table")
        return None
    where = f"{path}: [vrrp]"
    before = len(problems.lines)
    configfile.unknown_keys(table, VRRP_KEYS, where, problems)
    conf = names = hold = vrids = config_id = None
    with problems.catch():
        conf = _text("keepalived_conf", table.get("keepalived_conf", DEFAULT_KEEPALIVED_CONF),
                     where)
        configfile.one_line(conf, f"{where} keepalived_conf")
        if not os.path.isabs(conf):
            raise ConfigError(f"{where} keepalived_conf: must be an absolute path, not"
                              f" {_show(conf)}")
    with problems.catch():
        names = table.get("instances", [])
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f'{where} instances: must be a list of vrrp_instance names'
                              f' (["VI_1"]), not {_show(names)}')
        for name in names:
            configfile.one_line(name, f"{where} instances")
    with problems.catch():
        hold = table.get("hold")
        if hold is not None:
            hold = configfile.duration(hold, f"{where} hold", high=MAX_HOLD)
    with problems.catch():
        vrids = table.get("ignore_vrids", [])
        if not isinstance(vrids, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 255 for v in vrids):
            raise ConfigError(f"{where} ignore_vrids: must be a list of virtual_router_ids from"
                              f" 1 to 255 ([51]), not {_show(vrids)}")
    with problems.catch():
        config_id = table.get("config_id")
        if config_id is not None:
            configfile.one_line(_text("config_id", config_id, where), f"{where} config_id")
    if len(problems.lines) > before:
        return None
    return VrrpSettings(conf, names, hold, vrids, config_id, reconcile_after)


def _check(table, number, defaults, track_dir, path, problems):
    """The CheckSpec of one [[check]], or None after adding its every mistake to ``problems``."""
    if not isinstance(table, dict):
        problems.add(f"{path}: check #{number}: must be a table")
        return None
    before = len(problems.lines)
    name = table.get("name")
    label = f"check {name!r}" if isinstance(name, str) and name else f"check #{number}"
    where = f"{path}: {label}"
    configfile.unknown_keys(table, CHECK_KEYS, f"{where}:", problems)
    named = isinstance(name, str) and NAME.match(name)
    if name is None:
        problems.add(f"{where}: name: missing (the track file's name and the metric label)")
    elif not named:
        problems.add(f"{where}: name: {_show(name)} must be 1-64 letters, digits, '.', '_' or"
                     " '-', starting with a letter or digit")
    values = {}
    for key in DEFAULTS:
        with problems.catch():
            values[key] = _number(key, table.get(key, defaults[key]), where, colon=True)
    director = None
    with problems.catch():
        director = _director(table, where)
    command = target = None
    with problems.catch():
        command, target = _command(table.get("command"), where,
                                   values.get("timeout", DEFAULTS["timeout"]))
        if director is not None and director[0] and target.dynamic:
            raise ConfigError(f"{where}: director: a --dynamic check's value is a real server's"
                              " weight, not this director's health: track it in a FILE_CHECK")
    if target is not None and "interval" in values and "timeout" in values \
            and not target.timeout < values["interval"]:
        problems.add(f"{where}: timeout: {target.timeout:g} s must be less than the"
                     f" interval ({values['interval']:g} s): a check never overlaps itself")
    file = None
    with problems.catch():
        if "file" not in table and not named:
            return None  # its default is the name, already said to be wrong
        file = table.get("file", name)
        if not isinstance(file, str) or not file or file.endswith("/"):
            raise ConfigError(f"{where}: file: must be a file name or path, not {_show(file)}")
        configfile.one_line(file, f"{where}: file")
        file = os.path.normpath(os.path.join(track_dir, file))
        if os.path.basename(file).startswith("."):
            raise ConfigError(f"{where}: file: {os.path.basename(file)} is the agent's own: a"
                              f" name starting with '.' ({STATUS_FILE}, {ALIVE_FILE}, its lock,"
                              " temporary files)")
    if len(problems.lines) > before:
        return None
    return CheckSpec(name, command.argv, command.check, target, values["interval"],
                     values["rise"], values["fall"], file, *director)


def _director(table, where):
    """(director, vrrp_weight) of a [[check]]: is it this director's own, and how much its
    being up adds to the priority (0: FAULT while it is down)."""
    director = table.get("director", False)
    if not isinstance(director, bool):
        raise ConfigError(f"{where}: director: must be true (this director's own check: its"
                          " uplink, its gateway) or false (a real server's), not"
                          f" {_show(director)}")
    weight = table.get("vrrp_weight")
    if weight is None:
        return director, DEFAULT_VRRP_WEIGHT
    if not director:
        raise ConfigError(f"{where}: vrrp_weight: only for a check with director = true (a"
                          " real server's check is never tracked in a vrrp_instance)")
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 253:
        raise ConfigError(f"{where}: vrrp_weight: must be a whole number from 0 (FAULT while"
                          f" the check is down) to 253, not {_show(weight)}")
    return director, weight


def _seconds(value):
    return f"{value:g}"


_show = configfile.show


def _number(key, value, where, colon=False):
    sep = ":" if colon else ""
    if key in ("rise", "fall"):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
            raise ConfigError(f"{where}{sep} {key}: must be a whole number of results from 1 to"
                              f" {MAX_COUNT}, not {_show(value)}")
        return value
    return configfile.duration(value, f"{where}{sep} {key}", high=MAX_INTERVAL)


def _text(key, value, where):
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} {key}: must be a non-empty string, not {_show(value)}")
    return value


def _command(value, where, timeout):
    """(CheckCommand, Target) of the [[check]]'s ``command``, a misc_path line (or its
    words), parsed by the check registry as keepalived would split it; what can never run
    as a check is refused, and kachecks-vrrp (a listening probe: the [vrrp] table's job)
    before anything reads keepalived.conf."""
    if value is None:
        raise ConfigError(f'{where}: command: missing (a misc_path line, e.g. "kachecks-http'
                          ' --url http://192.168.8.101/service.txt --digest …")')
    if not (isinstance(value, str)
            or (isinstance(value, list) and all(isinstance(word, str) for word in value))):
        raise ConfigError(f"{where}: command: must be a string or a list of strings, not {_show(value)}")
    if isinstance(value, str):
        configfile.one_line(value, f"{where}: command", tab=True)  # keepalived splits at tabs
    else:
        for word in value:
            configfile.one_line(word, f"{where}: command")
    # [agent]/[[check]] timeout is a default: the command's own --timeout wins, as in misc_path
    command = registry.parse_command(value, defaults=["--timeout", _seconds(timeout)],
                                     build=False)
    if command.check is not None and command.check.prog == registry.executable("vrrp"):
        raise ConfigError(f"{where}: command: kachecks-vrrp listens for seconds on every run:"
                          " the agent watches the pair all the time with a [vrrp] table instead"
                          " (docs/agent.md)")
    refused = command.error or command.refusal
    if refused:
        raise ConfigError(f"{where}: command: {refused}")
    try:
        return command, command.build()
    except UsageError as exc:
        raise ConfigError(f"{where}: command: {exc}") from None


def _address(value, where):
    """``"HOST:PORT"`` or ``"[V6]:PORT"`` -> (host, port); ``""`` -> None (no endpoint)."""
    if not isinstance(value, str):
        raise ConfigError(f"{where} metrics: must be \"HOST:PORT\" or \"\", not {_show(value)}")
    configfile.one_line(value, f"{where} metrics")
    if value == "":
        return None
    host, colon, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # a bare IPv6 address: ambiguous without brackets
    if not colon or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"{where} metrics: must be \"HOST:PORT\" (\"[::1]:PORT\" for IPv6)"
                          f" or \"\" for none, not {_show(value)}")
    return host, int(port)
