"""The configuration file: the shipped example, durations, command-line overrides."""

from pathlib import Path

import pytest

from harness.peers import cli
from kachecks import configfile
from kachecks.notify import config

SHIPPED = Path(__file__).resolve().parents[2] / "packaging" / "kachecks.toml"


def test_shipped_example_config_loads_and_states_the_defaults():
    cfg = config.load(str(SHIPPED))
    defaults = config.parse({})
    for section in config.SCHEMA:
        assert getattr(cfg, section) == defaults[section], section
    assert cfg.spool_dir == "/var/spool/kachecks"
    assert cfg.channels() == ["mail"]


@pytest.mark.parametrize("text, seconds", [("3d", 259200), ("12h", 43200), ("90m", 5400), ("30s", 30),
                                           ("45", 45), (7, 7), ("500ms", 0.5), ("1w", 604800),
                                           (" 2.5 s ", 2.5), (0.25, 0.25)])
def test_every_time_value_is_seconds_or_a_number_with_a_unit(text, seconds):
    data = {key: {"timeout": text} for key in ("smtp", "webhook")}
    data["spool"] = {key: text for key in ("expire", "batch_window", "retry_for")}
    data["notify"] = {"heartbeat": text}
    if seconds > 3600:  # beyond what a timeout or a batch window may be
        data = {"spool": {"expire": text, "retry_for": text}, "notify": {"heartbeat": text}}
    parsed = config.parse(data)
    values = [parsed[table][key] for table, keys in data.items() for key in keys]
    assert values == [seconds] * len(values)


def test_command_line_options_override_the_file(notifier, relay):
    notifier.configure(mail={"to": ["nobody@example.org"]})  # port 9: nothing listens
    result = notifier.notify("--smtp-port", relay.port, "--to", "ops@example.org", "--to", "oncall@example.org",
                             "INSTANCE", "VI_1", "MASTER", "100")
    assert result.returncode == 0
    relay.wait_for(1)
    assert relay.envelopes[0][1] == ["ops@example.org", "oncall@example.org"]


def test_a_test_run_reads_no_configuration_of_the_machine():
    """What an executable reads when a test names no kachecks.toml: an empty file of the
    test run, not /etc/kachecks/kachecks.toml (it may exist on the machine running the tests)."""
    path, explicit = configfile.location()
    assert path != configfile.DEFAULT_PATH and explicit
    assert configfile.read() == (path, {})
    checked = cli.run("kachecks", "agent", "--check-config")
    assert (checked.returncode, checked.stdout) == (0, f"{path}: OK, 0 checks\n")


def test_missing_default_config_means_builtin_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("KACHECKS_CONFIG", raising=False)
    monkeypatch.setattr(configfile, "DEFAULT_PATH", str(tmp_path / "absent.toml"))
    assert config.load().smtp["host"] == "localhost"


def test_reconcile_after_is_10_s_by_default_0_is_off_and_a_bad_one_is_named():
    assert config.parse({})["notify"]["reconcile_after"] == 10
    assert config.parse({"notify": {"reconcile_after": 0}})["notify"]["reconcile_after"] == 0
    assert config.parse({"notify": {"reconcile_after": "1m"}})["notify"]["reconcile_after"] == 60
    for bad, why in (("soon", "must be a duration"), ("2d", "at most 86400 seconds"), (-1, "0 or more")):
        with pytest.raises(config.ConfigError,
                           match=r"kachecks.toml: \[notify\] reconcile_after: .*" + why):
            config.parse({"notify": {"reconcile_after": bad}}, "kachecks.toml")


def test_the_heartbeat_is_off_by_default_and_a_bad_period_is_named():
    assert config.parse({})["notify"]["heartbeat"] == 0
    for bad, why in (("-1h", "must be a duration"), ("367d", "must be 0 or more and at most 31622400 seconds"), (True, "must be")):
        with pytest.raises(config.ConfigError, match=r"kachecks.toml: \[notify\] heartbeat: " + why):
            config.parse({"notify": {"heartbeat": bad}}, "kachecks.toml")
