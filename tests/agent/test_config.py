"""kachecks.toml's [agent], [[check]] and [vrrp]: one parser for misc_path lines, one line per
mistake."""

import pytest

from harness.checks import MD5_SERVER1
from harness.peers.agent import agent_toml, run_agent_cli
from kachecks.agent import config
from kachecks.notify import config as notify_config

URL = "http://192.168.8.101/service.txt"
GOOD = f"kachecks-http --url {URL} --digest {MD5_SERVER1}"


def write(tmp_path, checks, **agent):
    path = tmp_path / "kachecks.toml"
    path.write_text(agent_toml(checks, tmp_path / "track", **agent))
    return path


def test_check_config_lists_every_check_and_exits_0(tmp_path):
    path = write(tmp_path, [
        {"name": "web1", "command": GOOD, "fall": 2},
        {"name": "ldap1", "command": ["/usr/bin/kachecks", "check", "tcp", "192.168.8.111:389"],
         "interval": 10, "timeout": 4},
    ], interval=2, timeout=1)
    proc = run_agent_cli("--check-config", "--config", path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == (f"web1: kachecks-http [192.168.8.101]:80 every 2 s, timeout 1 s, rise 1,"
                        f" fall 2 -> {tmp_path}/track/web1")
    assert lines[1] == (f"ldap1: kachecks [192.168.8.111]:389 every 10 s, timeout 4 s, rise 1,"
                        f" fall 1 -> {tmp_path}/track/ldap1")
    assert lines[-1] == f"{path}: OK, 2 checks"


def test_a_command_behind_env_block_signal_is_the_same_check(tmp_path):
    env = "/usr/bin/env --block-signal=HUP,INT,TERM /usr/bin/"
    cfg = config.load(write(tmp_path, [{"name": "web1", "command": env + GOOD},
                                       {"name": "web2", "command": GOOD}]))
    wrapped, bare = cfg.checks
    assert wrapped.check is bare.check and wrapped.target.identity == bare.target.identity
    assert wrapped.argv[:2] == ("/usr/bin/env", "--block-signal=HUP,INT,TERM")


def test_every_time_is_seconds_or_a_number_with_a_unit(tmp_path):
    cfg = config.load(write(tmp_path, [
        {"name": "a", "command": GOOD, "interval": "1s", "timeout": "500ms"},
        {"name": "b", "command": GOOD, "interval": "2m", "timeout": 1.5},
        {"name": "c", "command": GOOD},
    ], interval="1h", timeout="3s"))
    assert [(s.interval, s.timeout) for s in cfg.checks] == [(1.0, 0.5), (120.0, 1.5),
                                                             (3600.0, 3.0)]


def test_the_commands_own_timeout_wins_over_the_tables(tmp_path):
    cfg = config.load(write(tmp_path, [
        {"name": "a", "command": GOOD + " --timeout 0.5", "timeout": 4},
        {"name": "b", "command": GOOD, "timeout": 4},
        {"name": "c", "command": GOOD},
    ], timeout=2))
    assert [s.timeout for s in cfg.checks] == [0.5, 4.0, 2.0]


@pytest.mark.parametrize("check, agent, message", [
    ({"command": GOOD}, {}, "check #1: name: missing"),
    ({"name": "web 1", "command": GOOD}, {}, 'check \'web 1\': name: "web 1" must be 1-64 letters'),
    ({"name": ".status", "command": GOOD}, {}, 'check \'.status\': name: ".status" must be'),
    ({"name": "web1"}, {}, "check 'web1': command: missing"),
    ({"name": "web1", "command": ""}, {}, "check 'web1': command: empty"),
    ({"name": "web1", "command": 7}, {}, "check 'web1': command: must be a string or a list"),
    ({"name": "web1", "command": "/bin/true"}, {},
     "check 'web1': command: not a kachecks check command: /bin/true"),
    ({"name": "web1", "command": "kachecks-http --url"}, {},
     "check 'web1': command: Missing parameter for option --url"),
    ({"name": "web1", "command": "kachecks-http --digest 123 --url " + URL}, {},
     "check 'web1': command: --digest: '123' is not an md5"),
    ({"name": "web1", "command": "kachecks-http -s 192.168.8.101 --nagios"}, {},
     "check 'web1': command: --nagios gives Icinga/Nagios exit codes (1 WARNING, 2 CRITICAL,"
     " 3 UNKNOWN)"),
    ({"name": "web1", "command": "kachecks-http --help"}, {},
     "check 'web1': command: --help prints the usage and exits 0 without checking anything:"
     " keepalived would see exit 0 (healthy) at every run"),
    ({"name": "web1", "command": "/usr/bin/env --block-signal=TERM kachecks-http --version"}, {},
     "check 'web1': command: --version prints the version and exits 0"),
    ({"name": "web1", "command": "/usr/bin/env --block-signal=TERM kachecks-http -s x --bogus"},
     {}, "check 'web1': command: Unknown option --bogus"),
    ({"name": "web1", "command": "kachecks-http 'unterminated"}, {},
     "check 'web1': command: missing terminating ' in"),
    ({"name": "web1", "command": GOOD, "interval": "soon"}, {},
     "check 'web1': interval: must be a duration (a number of seconds, or a number with a unit:"
     ' 500ms, 30s, 5m, 12h, 3d, 1w), not "soon"'),
    ({"name": "web1", "command": GOOD, "interval": 0}, {},
     "check 'web1': interval: must be more than 0 and at most 86400 seconds, not 0"),
    ({"name": "web1", "command": GOOD, "timeout": "2d"}, {},
     "check 'web1': timeout: must be more than 0 and at most 86400 seconds, not \"2d\""),
    ({"name": "web1", "command": GOOD, "rise": 0}, {},
     "check 'web1': rise: must be a whole number of results from 1 to 1000, not 0"),
    ({"name": "web1", "command": GOOD, "fall": 1.5}, {}, "check 'web1': fall: must be a whole"),
    ({"name": "web1", "command": GOOD, "fall": True}, {},
     "check 'web1': fall: must be a whole number of results from 1 to 1000, not true"),
    ({"name": "web1", "command": GOOD, "interval": 3}, {},
     "check 'web1': timeout: 3 s must be less than the interval (3 s)"),
    ({"name": "web1", "command": GOOD + " --timeout 9"}, {},
     "check 'web1': timeout: 9 s must be less than the interval (5 s)"),
    ({"name": "web1", "command": GOOD, "intervall": 3}, {},
     "check 'web1': intervall: unknown key; did you mean 'interval'?"),
    ({"name": "web1", "command": GOOD, "colour": "red"}, {},
     "check 'web1': colour: unknown key (known: name, command, file, interval, timeout, rise,"
     " fall, director, vrrp_weight)"),
    ({"name": "web1", "command": GOOD, "file": "sub/"}, {}, "check 'web1': file: must be a file"),
    ({"name": "web1", "command": GOOD}, {"interval": -1}, "[agent] interval: must be more than 0"),
    ({"name": "web1", "command": GOOD}, {"metrics": "localhost"},
     '[agent] metrics: must be "HOST:PORT"'),
    ({"name": "web1", "command": GOOD}, {"metrics": "::1:9662"}, "[agent] metrics: must be"),
    ({"name": "web1", "command": GOOD}, {"trackdir": "/x"},
     "[agent] trackdir: unknown key; did you mean 'track_dir'?"),
    ({"name": "web1", "command": GOOD}, {"track_dir": "track"},
     "[agent] track_dir: must be an absolute path"),
    ({"name": "web1", "command": GOOD, "director": "yes"}, {},
     "check 'web1': director: must be true (this director's own check: its uplink, its"
     ' gateway) or false (a real server\'s), not "yes"'),
    ({"name": "web1", "command": GOOD, "vrrp_weight": 20}, {},
     "check 'web1': vrrp_weight: only for a check with director = true"),
    ({"name": "web1", "command": GOOD, "director": True, "vrrp_weight": 254}, {},
     "check 'web1': vrrp_weight: must be a whole number from 0 (FAULT while the check is"
     " down) to 253, not 254"),
    ({"name": "web1", "command": GOOD, "director": True, "vrrp_weight": 2.5}, {},
     "check 'web1': vrrp_weight: must be a whole number from 0"),
    ({"name": "web1", "command": GOOD + " --dynamic", "director": True}, {},
     "check 'web1': director: a --dynamic check's value is a real server's weight"),
    ({"name": "web1", "command": GOOD, "file": ".kachecks-agent.running"}, {},
     "check 'web1': file: .kachecks-agent.running is the agent's own"),
    ({"name": "pair", "command": "kachecks-vrrp --instance VI_1"}, {},
     "check 'pair': command: kachecks-vrrp listens for seconds on every run: the agent watches"
     " the pair all the time with a [vrrp] table instead (docs/agent.md)"),
    ({"name": "pair", "command": "/usr/bin/kachecks check vrrp"}, {},
     "check 'pair': command: kachecks-vrrp listens for seconds on every run"),
])
def test_every_config_error_names_file_check_and_key_in_one_line(tmp_path, check, agent, message):
    path = tmp_path / "kachecks.toml"
    agent = dict(agent)
    path.write_text(agent_toml([check], agent.pop("track_dir", tmp_path / "track"), **agent))
    proc = run_agent_cli("--check-config", "--config", path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == f"kachecks agent: {path}: {message}" + proc.stderr.split(message, 1)[1]
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_every_mistake_of_the_file_is_said_at_once_with_the_closest_known_name(tmp_path):
    path = tmp_path / "kachecks.toml"
    path.write_text(agent_toml([
        {"name": "web1", "command": "kachecks-http --url " + URL + " --digest 5f2b", "fal": 2},
        {"name": "web2", "command": GOOD, "interval": "soon", "directr": True},
        {"name": "web3", "command": GOOD},  # nothing wrong with it
        {"name": "web4", "command": GOOD, "interval": 2, "timeout": 2},
    ], tmp_path / "track", intervall=3) + '\n[smpt]\nhost = "relay"\n')
    proc = run_agent_cli("--check-config", "--config", path)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.splitlines() == [f"kachecks agent: {path}: {line}" for line in (
        "unknown section [smpt]; did you mean 'smtp'?",
        "[agent] intervall: unknown key; did you mean 'interval'?",
        "check 'web1': fal: unknown key; did you mean 'fall'?",
        "check 'web1': command: --digest: '5f2b' is not an md5, sha1 or sha256 hex digest"
        " (32/40/64 hex digits)",
        "check 'web2': directr: unknown key; did you mean 'director'?",
        "check 'web2': interval: must be a duration (a number of seconds, or a number with a"
        ' unit: 500ms, 30s, 5m, 12h, 3d, 1w), not "soon"',
        "check 'web4': timeout: 2 s must be less than the interval (2 s): a check never"
        " overlaps itself",
    )]


def test_a_configuration_error_s_message_counts_the_others(tmp_path):
    """One line where one line is all there is room for (a doctor finding, notify's error)."""
    path = tmp_path / "kachecks.toml"
    path.write_text(agent_toml([{"name": "web1", "command": GOOD, "fal": 2, "rise": 0}],
                               tmp_path / "track"))
    with pytest.raises(config.ConfigError) as caught:
        config.load(str(path))
    assert str(caught.value) == (f"{path}: check 'web1': fal: unknown key; did you mean 'fall'?"
                                 " (and 1 more)")
    assert len(caught.value.lines) == 2 and "\n" not in str(caught.value)


def test_director_checks_carry_their_weight(tmp_path):
    cfg = config.load(str(write(tmp_path, [
        {"name": "web1", "command": GOOD},
        {"name": "uplink", "command": "kachecks-tcp 192.168.8.25:25", "director": True},
        {"name": "gateway", "command": "kachecks-tcp 192.168.8.25:53", "director": True,
         "vrrp_weight": 0},
    ])))
    assert [(s.name, s.director, s.vrrp_weight) for s in cfg.checks] == [
        ("web1", False, 20), ("uplink", True, 20), ("gateway", True, 0)]
    assert cfg.alive_file == f"{tmp_path}/track/.kachecks-agent.running"


def test_duplicate_names_and_files_are_refused(tmp_path):
    path = write(tmp_path, [{"name": "web1", "command": GOOD}, {"name": "web1", "command": GOOD}])
    proc = run_agent_cli("--check-config", "--config", path)
    assert proc.stderr == (f"kachecks agent: {path}: check 'web1': name: 'web1' is already used"
                           " by check 'web1'\n")
    path = write(tmp_path, [{"name": "web1", "command": GOOD},
                            {"name": "web2", "command": GOOD, "file": "web1"}])
    proc = run_agent_cli("--check-config", "--config", path)
    assert proc.returncode == 1
    assert f"check 'web2': file: '{tmp_path}/track/web1' is already used by check 'web1'" \
        in proc.stderr


@pytest.mark.parametrize("text, message", [
    ("[agent\n", "invalid TOML"),
    ("[agentt]\n", "unknown section [agentt]; did you mean 'agent'?"),
    ("[smpt]\n", "unknown section [smpt]; did you mean 'smtp'?"),
    ("[log]\n", "unknown section [log] (known: smtp, mail, webhook, spool, notify, agent, check,"
                " vrrp)"),
    ("[check]\nname = 'x'\n", "check must be [[check]] tables"),
    ("agent = 3\n", "agent must be an [agent] table"),
])
def test_file_level_mistakes_are_one_line(tmp_path, text, message):
    path = tmp_path / "kachecks.toml"
    path.write_text(text)
    proc = run_agent_cli("--check-config", "--config", path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"kachecks agent: {path}: ") and message in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_a_missing_explicit_config_is_an_error(tmp_path):
    proc = run_agent_cli("--check-config", "--config", tmp_path / "nope.toml")
    assert (proc.returncode, proc.stderr) == (
        1, f"kachecks agent: {tmp_path}/nope.toml: configuration file not found\n")


def test_usage_mistakes_exit_1_in_one_line():
    for args, words in ((["--no-such-option"], "--no-such-option"), (["stauts"], "'stauts'"),
                        (["conf", "--x"], "--x")):
        proc = run_agent_cli(*args)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith("kachecks agent") and words in proc.stderr
        assert proc.stderr.endswith(" --help)\n") and proc.stderr.count("\n") == 1


def test_notify_reads_a_file_that_also_configures_the_agent(tmp_path):
    path = write(tmp_path, [{"name": "web1", "command": GOOD}])
    with open(path, "a") as handle:
        handle.write('\n[mail]\nto = ["admin@mysite.mydmn.org"]\n')
    cfg = notify_config.load(str(path))
    assert cfg.mail["to"] == ["admin@mysite.mydmn.org"]
    assert config.load(str(path)).checks[0].name == "web1"


HOST = "192.168.8.101:6379"


@pytest.mark.parametrize("line, argv", [
    ("/usr/bin/kachecks-http --url http://192.168.8.101/ --regex 'hello from'",
     ["/usr/bin/kachecks-http", "--url", "http://192.168.8.101/", "--regex", "hello from"]),
    (f'kachecks-tcp --send "PING\\r\\n" --expect PONG {HOST}',
     ["kachecks-tcp", "--send", "PING\r\n", "--expect", "PONG", HOST]),
    (f"kachecks-tcp {HOST} --send 'b\\tc' --expect d\\ e",  # escapes even inside '…'
     ["kachecks-tcp", HOST, "--send", "b\tc", "--expect", "d e"]),
    (f"kachecks-tcp {HOST} --send a\\x41\\101\\cA\\E\\q",  # hex, octal, control, ESC, other
     ["kachecks-tcp", HOST, "--send", "aAA\x01\x1bq"]),
    (f"kachecks-tcp {HOST} --send a\\xg", ["kachecks-tcp", HOST, "--send", "axg"]),
    (f"  kachecks-tcp   {HOST}\t", ["kachecks-tcp", HOST]),
    (f"kachecks-tcp {HOST} --send x''y", ["kachecks-tcp", HOST, "--send", "xy"]),
])
def test_command_strings_split_like_keepalived_splits_misc_path(tmp_path, line, argv):
    cfg = config.load(str(write(tmp_path, [{"name": "c", "command": line}])))
    assert list(cfg.checks[0].argv) == argv


@pytest.mark.parametrize("line, message", [
    (f"kachecks-tcp '{HOST}", "missing terminating '"),
    (f'kachecks-tcp "{HOST}', 'missing terminating "'),
    (f"kachecks-tcp {HOST} \\", "missing escape character at the end"),
])
def test_command_strings_keepalived_would_refuse_are_refused(tmp_path, line, message):
    path = write(tmp_path, [{"name": "c", "command": line}])
    proc = run_agent_cli("--check-config", "--config", path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"kachecks agent: {path}: check 'c': command: {message}")


def test_conf_asks_for_the_address_of_a_real_server_named_by_host_name(tmp_path):
    path = write(tmp_path, [{"name": "web1", "command": "kachecks-http --url"
                             " http://web1.mysite.mydmn.org/service.txt"},
                            {"name": "web1-tcp", "command": "kachecks-tcp web1.mysite.mydmn.org:80"}])
    proc = run_agent_cli("conf", "--config", path)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "#    real_server for web1.mysite.mydmn.org port 80: write its IP address here\n" \
           "    real_server ADDRESS 80 {\n        weight 1\n        FILE_CHECK {\n" \
           "            track_file web1\n        }\n        FILE_CHECK {\n" \
           "            track_file web1-tcp\n        }\n    }\n" in text
    assert f"track_file web1 {{\n    file {tmp_path}/track/web1\n    weight 0 reverse\n" \
           "    init_file 0\n}\n" in text


def test_the_vrrp_table_is_read_with_keepalived_confs_defaults(tmp_path):
    path = tmp_path / "kachecks.toml"
    path.write_text(agent_toml([], tmp_path / "track", tables={"vrrp": {}}))
    settings = config.load(path).vrrp
    assert settings.keepalived_conf == "/etc/keepalived/keepalived.conf"
    assert (settings.instances, settings.hold, settings.ignore_vrids, settings.config_id) == \
        ((), None, (), None)
    path.write_text(agent_toml([], tmp_path / "track", tables={"vrrp": {
        "keepalived_conf": "/etc/keepalived/lvs.conf", "instances": ["VI_1", "VI_2"],
        "hold": "5s", "ignore_vrids": [51, 52], "config_id": "lvs1"}}))
    settings = config.load(path).vrrp
    assert (settings.keepalived_conf, settings.instances, settings.hold, settings.ignore_vrids,
            settings.config_id) == ("/etc/keepalived/lvs.conf", ("VI_1", "VI_2"), 5.0, (51, 52),
                                    "lvs1")
    path.write_text(agent_toml([], tmp_path / "track"))
    assert config.load(path).vrrp is None  # no table: nothing watched


@pytest.mark.parametrize("table, message", [
    ({"keepalived_conf": "keepalived.conf"},
     '[vrrp] keepalived_conf: must be an absolute path, not "keepalived.conf"'),
    ({"keepalived_conf": ""}, '[vrrp] keepalived_conf: must be a non-empty string, not ""'),
    ({"keepalived_conf": "/etc/k\nx.conf"}, "[vrrp] keepalived_conf: holds a control character"),
    ({"instances": "VI_1"},
     '[vrrp] instances: must be a list of vrrp_instance names (["VI_1"]), not "VI_1"'),
    ({"instances": ["VI_1", 2]}, "[vrrp] instances: must be a list of vrrp_instance names"),
    ({"hold": 0}, "[vrrp] hold: must be more than 0 and at most 3600 seconds, not 0"),
    ({"hold": "soon"}, "[vrrp] hold: must be a duration (a number of seconds"),
    ({"ignore_vrids": [51, 256]},
     "[vrrp] ignore_vrids: must be a list of virtual_router_ids from 1 to 255 ([51]), not [51, 256]"),
    ({"ignore_vrids": 51}, "[vrrp] ignore_vrids: must be a list of virtual_router_ids"),
    ({"config_id": 1}, "[vrrp] config_id: must be a non-empty string, not 1"),
    ({"instance": ["VI_1"]}, "[vrrp] instance: unknown key; did you mean 'instances'?"),
    ({"notify": True}, "[vrrp] notify: unknown key (known: keepalived_conf, instances, hold,"
                       " ignore_vrids, config_id)"),
])
def test_every_vrrp_table_error_names_file_table_and_key_in_one_line(tmp_path, table, message):
    path = tmp_path / "kachecks.toml"
    path.write_text(agent_toml([], tmp_path / "track", tables={"vrrp": table}))
    proc = run_agent_cli("--check-config", "--config", path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"kachecks agent: {path}: {message}"), proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_vrrp_must_be_a_table(tmp_path):
    path = tmp_path / "kachecks.toml"
    path.write_text("vrrp = 1\n")
    proc = run_agent_cli("--check-config", "--config", path)
    assert proc.returncode == 1
    assert proc.stderr == f"kachecks agent: {path}: vrrp must be a [vrrp] table\n"


@pytest.mark.parametrize("value, line", [
    (None, "vrrp: a state keepalived's notify never said is mailed after 10 s"
           " ([notify] reconcile_after)"),
    ("1m", "vrrp: a state keepalived's notify never said is mailed after 60 s"
           " ([notify] reconcile_after)"),
    (0, "vrrp: missed notifications are not reconciled ([notify] reconcile_after = 0)"),
])
def test_check_config_says_when_a_missed_notification_is_reconciled(tmp_path, value, line):
    notify = {} if value is None else {"notify": {"reconcile_after": value}}
    path = tmp_path / "kachecks.toml"
    path.write_text(agent_toml([], tmp_path / "track", tables={
        "vrrp": {"keepalived_conf": str(tmp_path / "keepalived.conf")}, **notify}))
    proc = run_agent_cli("--check-config", "--config", path)
    assert proc.returncode == 0, proc.stderr
    assert line in proc.stdout.splitlines(), proc.stdout
    assert config.load(path).vrrp.reconcile_after == (10 if value is None else 60 if value else 0)


def test_a_bad_reconcile_after_is_an_agent_config_error_naming_the_key(tmp_path):
    path = tmp_path / "kachecks.toml"
    path.write_text(agent_toml([], tmp_path / "track", tables={
        "vrrp": {}, "notify": {"reconcile_after": "soon"}, "smtp": {"port": "not checked here"}}))
    proc = run_agent_cli("--check-config", "--config", path)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (f"kachecks agent: {path}: [notify] reconcile_after: must be a"
                           " duration (a number of seconds, or a number with a unit: 500ms,"
                           ' 30s, 5m, 12h, 3d, 1w), not "soon"\n')
