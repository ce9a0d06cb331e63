"""The check seam: parse a command line into a frozen target, probe it without argv,
from any thread, within its deadline; find a check from a misc_path command line."""

import hashlib
import os
import socket
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness.peers.rawhttp import RawHTTPServer, http_response
from kachecks.checks import registry
from kachecks.checks.contract import evaluate, status_line, syslog_message
from kachecks.checks.verdict import judge
from kachecks.deadline import Deadline
from kachecks.errors import DeadlineExceeded, UsageError
from kachecks.status import ExitCode

PAGE = b"hello from Server 1\n"
PAGE_MD5 = hashlib.md5(PAGE).hexdigest()

ROOT = Path(__file__).resolve().parents[2]
SLACK = 1.0  # seconds past the deadline a loaded machine may need to report


@pytest.fixture
def silent_port():
    """A port whose backlog accepts connections and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def test_registry_knows_each_check_by_executable_name_wherever_installed():
    for argv in (["/usr/bin/kachecks-http", "--url", "http://192.168.8.101/service.txt"],
                 ["/opt/kachecks/bin/kachecks-http", "--url", "http://192.168.8.101/service.txt"],
                 ["kachecks", "check", "http", "--url", "http://192.168.8.101/service.txt"]):
        command = registry.parse_command(argv)
        assert command.check is registry.load("http") and command.check.prog == "kachecks-http"
        assert command.args == ("--url", "http://192.168.8.101/service.txt")
        assert command.target.identity == "[192.168.8.101]:80"
    command = registry.parse_command(["/usr/bin/kachecks-tcp", "192.168.8.102:80"])
    assert command.check.name == "TCP" and command.args == ("192.168.8.102:80",)


@pytest.mark.parametrize("argv", [[], ["/bin/true"], ["/usr/bin/kachecks-htp", "x"],
                                  ["kachecks", "genhash"],
                                  ["/usr/bin/genhash", "-s", "192.168.8.101"]])
def test_registry_refuses_other_command_lines(argv):
    command = registry.parse_command(argv)
    assert (command.name, command.check, command.target) == (None, None, None)
    assert command.error == (f"not a kachecks check command: {argv[0]}" if argv
                             else "empty command line")


def test_an_unknown_check_of_kachecks_check_is_named_with_the_error():
    command = registry.parse_command(["kachecks", "check", "smtp", "--host", "192.168.8.101"])
    assert (command.name, command.check) == ("kachecks check smtp", None)
    assert command.error.startswith("no check 'smtp'")


def test_registry_matches_the_console_scripts_and_each_check_names_itself():
    with open(ROOT / "pyproject.toml", "rb") as handle:
        scripts = tomllib.load(handle)["project"]["scripts"]
    executables = {name: target for name, target in scripts.items() if name != "kachecks"}
    # each through kachecks.executables, which catches signals before the check loads
    assert executables == {registry.executable(name): f"kachecks.executables:{name}"
                           for name in registry.CHECKS}
    assert set(registry.SUMMARIES) == set(registry.CHECKS)
    for name in registry.CHECKS:
        assert registry.load(name).prog == registry.executable(name)


def test_parse_returns_a_frozen_target_with_the_common_options():
    check = registry.load("http")
    target = check.parse(["--url", "http://192.168.8.101/service.txt", "--digest", PAGE_MD5,
                          "--timeout", "3", "--dynamic", "--weight", "10"])
    assert type(target).__name__ == "HttpTarget"
    assert target.identity == "[192.168.8.101]:80"
    assert (target.host, target.port, target.path) == ("192.168.8.101", 80, "/service.txt")
    assert (target.timeout, target.dynamic, target.weight, target.nagios) == (3.0, True, 10, False)
    with pytest.raises(AttributeError):
        target.timeout = 9
    assert target.timeout == 3.0


def test_a_target_never_shows_its_password(monkeypatch):
    monkeypatch.setenv("KACHECKS_LDAP_PASSWORD", "s3cret-pw")
    target = registry.load("ldap").parse(["--uri", "ldap://192.168.8.111",
                                          "--bind-dn", "cn=monitor,dc=mysite,dc=mydmn,dc=org"])
    assert target.password == "s3cret-pw"
    assert "s3cret" not in repr(target) and "s3cret" not in str(target)


@pytest.mark.parametrize("name, args", [
    ("http", ["--url", "ftp://192.168.8.101/"]),
    ("tcp", ["192.168.8.101"]),
    ("ldap", ["--uri", "ldap://192.168.8.111", "--starttls", "--uri", "ldaps://x"]),
    ("http", ["--url", "http://192.168.8.101/", "--dynamic", "--nagios"]),
])
def test_parse_raises_usage_errors_and_prints_nothing(capsys, name, args):
    with pytest.raises(UsageError):
        registry.load(name).parse(args)
    assert capsys.readouterr() == ("", "")


def test_evaluate_judge_and_summarise_without_a_process():
    check = registry.load("http")
    with RawHTTPServer(http_response(PAGE)) as srv:
        target = check.parse(["--url", f"http://{srv.address}/service.txt",
                              "--digest", PAGE_MD5, "--dynamic", "--weight", "10"])
        result = evaluate(check, target)
    verdict = judge(result, target)
    assert result.ok and verdict.code == ExitCode.DYNAMIC_BASE + 10
    assert status_line(check, target, result, verdict).startswith("HTTP OK - 200 OK, md5 5f2b")
    assert syslog_message(check, target, result, verdict).startswith(f"{target.identity} UP: 200")


def test_evaluate_turns_a_refused_connection_into_a_failed_result(unused_port):
    check = registry.load("tcp")
    target = check.parse([f"127.0.0.1:{unused_port}", "--nagios"])
    result = evaluate(check, target)
    verdict = judge(result, target)
    assert not result.ok and "connection refused" in result.reason
    assert verdict.code == ExitCode.NAGIOS_CRITICAL
    assert syslog_message(check, target, result, verdict) == (
        f"[127.0.0.1]:{unused_port} DOWN: connection refused")


@pytest.mark.parametrize("name", ["http", "tcp"])
def test_probe_off_the_main_thread_is_bounded_by_its_deadline(silent_port, in_thread, name):
    check = registry.load(name)
    args = ([f"--url=http://127.0.0.1:{silent_port}/"] if name == "http"
            else [f"127.0.0.1:{silent_port}", "--expect", "never"])
    target = check.parse(args + ["--timeout", "0.5"])
    outcome, took = in_thread(lambda: check.probe(target, Deadline(target.timeout)))
    assert isinstance(outcome, DeadlineExceeded), outcome
    assert outcome.phase in ("wait", "read") and "timeout after 0.5 s" in str(outcome)
    assert 0.5 <= took < 0.5 + SLACK


def test_many_threads_share_one_target():
    """One frozen target, probed from eight threads at once: eight correct results."""
    check = registry.load("http")
    with RawHTTPServer(http_response(PAGE + b"weight=7;\n")) as srv:
        target = check.parse(["--url", f"http://{srv.address}/", "--regex", "Server 1",
                              "--weight-regex", r"weight=(\d+);", "--dynamic"])
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: evaluate(check, target), range(8), timeout=30))
    assert len(results) == 8 and all(r.ok and r.weight == 7 for r in results), results


def test_drain_file_is_honoured_by_evaluate(tmp_path, unused_port):
    check = registry.load("tcp")
    drain = tmp_path / "drain"
    drain.touch()
    target = check.parse([f"127.0.0.1:{unused_port}", "--drain-file", str(drain), "--dynamic"])
    result = evaluate(check, target)
    assert result.drain and judge(result, target).code == ExitCode.DYNAMIC_BASE
    os.unlink(drain)
    assert not evaluate(check, target).ok
