"""registry.parse_command: the one way a misc_path/script line becomes a check and its target.

The forked executable, the agent's [[check]] commands and the doctor all go
through it, so they agree on what a command line is (docs/checks.md's
``env --block-signal`` form included) and on what can never be a working
check where keepalived reads the exit code.
"""

import pytest

from kachecks.checks import registry

URL = "http://192.168.8.101/service.txt"
ENV = ["/usr/bin/env", "--block-signal=HUP,INT,TERM"]


def test_a_check_behind_env_block_signal_is_recognised_and_parsed():
    command = registry.parse_command([*ENV, "/usr/bin/kachecks-http", "--url", URL, "--timeout", "3"])
    assert command.check is registry.load("http")
    assert (command.program, command.name) == ("/usr/bin/kachecks-http", "kachecks-http")
    assert command.args == ("--url", URL, "--timeout", "3")
    assert command.argv[:2] == tuple(ENV)
    assert (command.target.identity, command.target.timeout) == ("[192.168.8.101]:80", 3.0)
    bare = registry.parse_command(["/usr/bin/env", "--block-signal", "/usr/bin/kachecks", "check",
                                   "tcp", "192.168.8.102:80"])
    assert (bare.name, bare.program, bare.target.identity) == (
        "kachecks check tcp", "/usr/bin/kachecks", "[192.168.8.102]:80")


@pytest.mark.parametrize("argv", [
    ["/usr/bin/env", "/usr/bin/kachecks-http", "--url", URL],
    ["/usr/bin/env", "KACHECKS_STATE_DIR=/tmp", "/usr/bin/kachecks-http"],
    ["/usr/bin/env", "--block-signal=TERM", "-i", "/usr/bin/kachecks-http"],
    ["/usr/bin/env", "--block-signal=TERM"],
    ["/usr/bin/env", "--block-signals=TERM", "/usr/bin/kachecks-http", "--url", URL],
])
def test_env_doing_anything_else_is_not_a_check_command(argv):
    command = registry.parse_command(argv)
    assert command.name is None and command.error == "not a kachecks check command: /usr/bin/env"


def test_a_string_is_split_exactly_as_keepalived_splits_misc_path():
    command = registry.parse_command(
        "/usr/bin/env --block-signal=HUP,INT,TERM /usr/bin/kachecks-tcp 192.168.8.101:80"
        " --send 'HEAD / HTTP/1.0\\r\\n\\r\\n' --expect \"^HTTP/1\\.[01] 200\"")
    assert command.args == ("192.168.8.101:80", "--send", "HEAD / HTTP/1.0\r\n\r\n",
                            "--expect", "^HTTP/1.[01] 200")
    broken = registry.parse_command("kachecks-http --url 'unterminated")
    assert broken.name is None and broken.error.startswith("missing terminating '")


def test_a_bad_option_behind_env_is_the_check_s_error_naming_the_check():
    command = registry.parse_command([*ENV, "/usr/local/bin/kachecks-http", "--url", URL, "--bogus"])
    assert (command.name, command.program, command.error) == (
        "kachecks-http", "/usr/local/bin/kachecks-http", "Unknown option --bogus")
    assert command.target is None and command.refusal is None
    unbuilt = registry.parse_command(["kachecks-http", "--timeout", "2"])  # the target is built too
    assert unbuilt.error.startswith("no target") and unbuilt.options.timeout == 2.0


def test_defaults_come_first_so_the_command_s_own_options_win():
    own = registry.parse_command(["kachecks-http", "--url", URL, "--timeout", "0.5"],
                                 defaults=["--timeout", "4"])
    default = registry.parse_command(["kachecks-http", "--url", URL], defaults=["--timeout", "4"])
    assert (own.target.timeout, default.target.timeout) == (0.5, 4.0)


@pytest.mark.parametrize("flag, says", [
    ("--help", "keepalived would see exit 0 (healthy) at every run"),
    ("--version", "keepalived would see exit 0 (healthy) at every run"),
])
def test_help_and_version_print_instead_of_checking_and_are_refused(flag, says):
    command = registry.parse_command(["/usr/bin/kachecks-http", flag])  # no --url: no target needed
    assert command.prints and command.target is None
    assert command.refusal.startswith(f"{flag} prints") and says in command.refusal


def test_nagios_runs_a_check_but_is_refused_where_keepalived_reads_the_code():
    command = registry.parse_command(["kachecks-http", "--url", URL, "--nagios"])
    assert not command.prints and command.target.nagios
    assert "1 WARNING, 2 CRITICAL, 3 UNKNOWN" in command.refusal
    assert "CRITICAL and UNKNOWN as healthy with weight 0 and 1" in command.refusal
    assert registry.parse_command(["kachecks-http", "--url", URL]).refusal is None


def test_the_forked_run_parses_its_own_arguments_without_building_yet():
    check = registry.load("tcp")
    command = registry.parse_command(["192.168.8.102:80", "--timeout", "2"], check, build=False)
    assert (command.check, command.name, command.program) == (check, "kachecks-tcp", "")
    assert command.target is None and command.options.timeout == 2.0
    assert command.build().identity == "[192.168.8.102]:80"
    with pytest.raises(AttributeError):
        command.target = command.build()
