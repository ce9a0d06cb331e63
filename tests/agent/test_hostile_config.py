"""A kachecks.toml that attacks its reader: every failure to read it is a configuration error.

Nesting deep enough to exhaust the parser's recursion, NUL and control characters in
paths and values, bytes that are not UTF-8, a directory, FIFO or device instead of a
file: `--check-config` says so in one line and exits 1, and a running agent sent
SIGHUP keeps the configuration it runs (fail-closed is not "exit and zero everything").
"""

import os
import signal
import time

import pytest

from harness.peers.agent import http_check, run_agent_cli
from harness.checks import MD5_SERVER1, SERVER1
from harness.peers.rawhttp import RawHTTPServer, http_response

GOOD = f"kachecks-http --url http://192.168.8.101/service.txt --digest {MD5_SERVER1}"
DEEP_ARRAYS = "x = " + "[" * 2000 + "]" * 2000 + "\n"
DEEP_TABLES = "x = " + "{a = " * 2000 + "1" + "}" * 2000 + "\n"


def check_table(**keys):
    """One [[check]] in TOML text, values given as TOML (escapes stay escapes)."""
    keys = {"name": '"web1"', "command": f'"{GOOD}"', **keys}
    return "[[check]]\n" + "".join(f"{key} = {value}\n" for key, value in keys.items())


def agent_table(track_dir, **keys):
    keys = {"track_dir": f'"{track_dir}"', "metrics": '""', **keys}
    return "[agent]\n" + "".join(f"{key} = {value}\n" for key, value in keys.items())


def one_config_error(proc, path):
    """The one line a configuration error is: exit 1, names the file, no internal error."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"kachecks agent: {path}: "), proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    return proc.stderr


@pytest.mark.parametrize("text, words", [
    (DEEP_ARRAYS, "nested too deeply"),
    (DEEP_TABLES, "nested too deeply"),
    ("[agent]\ninterval = " + "[" * 300 + "]" * 300 + "\n", "nested too deeply"),
    ('[agent]\ntrack_dir = "/run/kachecks/x\\u0000y"\n', "[agent] track_dir: holds a control"),
    ('[agent]\ntrack_dir = "/run/kachecks/\\u001b[2Jx"\n', "[agent] track_dir: holds a control"),
    ('[agent]\nmetrics = "127.0.0.1\\u0000:9662"\n', "[agent] metrics: holds a control"),
    ('[agent]\n"x\\ny" = 1\n', "holds a control character"),
    ("TRACK" + check_table(file='"web\\u0000"'), "check 'web1': file: holds a control"),
    ("TRACK" + check_table(file='"web1\\n}\\ntrack_file evil {"'),
     "check 'web1': file: holds a control"),
    ("TRACK" + check_table(file='"web\\u009b1"'), "check 'web1': file: holds a control"),
    ("TRACK" + check_table(command='"kachecks-http\\u0000 --url http://192.168.8.101/"'),
     "check 'web1': command: holds a control"),
])
def test_check_config_refuses_what_the_reader_cannot_take_in_one_line(tmp_path, text, words):
    path = tmp_path / "kachecks.toml"
    path.write_text(text.replace("TRACK", agent_table(tmp_path / "track")))
    stderr = one_config_error(run_agent_cli("--check-config", "--config", path), path)
    assert words in stderr


def test_bytes_that_are_not_utf8_are_a_configuration_error(tmp_path):
    path = tmp_path / "kachecks.toml"
    path.write_bytes(b'[agent]\ntrack_dir = "/run/kachecks/\xe9t\xe9"\n')
    assert "not UTF-8 text" in one_config_error(
        run_agent_cli("--check-config", "--config", path), path)


def test_a_file_too_big_is_a_configuration_error(tmp_path):
    path = tmp_path / "kachecks.toml"
    path.write_text("# " + "x" * (5 << 20) + "\n")
    assert "bytes, more than the" in one_config_error(
        run_agent_cli("--check-config", "--config", path), path)


@pytest.mark.parametrize("kind, words", [("directory", "is not a regular file (a directory)"),
                                         ("fifo", "is not a regular file (a FIFO)"),
                                         ("device", "is not a regular file (a character device)")])
def test_a_config_path_that_is_no_file_is_a_configuration_error(tmp_path, kind, words):
    if kind == "directory":
        path = tmp_path
    elif kind == "fifo":
        path = tmp_path / "kachecks.toml"
        os.mkfifo(path)  # nobody writes to it: opening must not block
    else:
        path = "/dev/zero"
    stderr = one_config_error(run_agent_cli("--check-config", "--config", path, timeout=10), path)
    assert words in stderr


def test_conf_says_the_configuration_error_too(tmp_path):
    path = tmp_path / "kachecks.toml"
    path.write_text(DEEP_ARRAYS)
    proc = run_agent_cli("conf", "--config", path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"kachecks agent conf: {path}: ") and "nested too deeply" \
        in proc.stderr and proc.stderr.count("\n") == 1


@pytest.fixture
def web():
    with RawHTTPServer(http_response(SERVER1)) as server:
        yield server


def reload_failures(syslog_socket, lines, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        lines += syslog_socket()
        failed = [m for m in lines if "reload failed" in m]
        if failed:
            return failed
        time.sleep(0.05)
    raise AssertionError(f"no 'reload failed' in syslog: {lines}")


@pytest.mark.parametrize("text", [
    DEEP_ARRAYS,
    'TRACK[[check]]\nname = "web1"\ncommand = "COMMAND"\nfile = "web\\u0000"\n',
    '[agent]\ntrack_dir = "/run/kachecks/x\\u0000y"\nmetrics = ""\n',
], ids=["2000-levels", "nul-in-file", "nul-in-track-dir"])
def test_a_running_agent_keeps_its_configuration_when_sighup_brings_a_hostile_file(
        agent_factory, web, syslog_socket, text):
    agent = agent_factory([http_check("web1", web)], interval=0.3, timeout=0.2)
    with agent:
        agent.wait_value("web1", "1\n")
        command = http_check("web1", web)["command"]
        agent.config.write_text(text.replace("TRACK", agent_table(agent.track, interval=0.3,
                                                                  timeout=0.2))
                                .replace("COMMAND", command))
        agent.send(signal.SIGHUP)
        failed = reload_failures(syslog_socket, [])
        assert "running configuration kept" in failed[0] and str(agent.config) in failed[0]
        agent.assert_running()
        runs = agent.check("web1")["runs"]
        agent.wait_status(lambda d: d["checks"][0]["runs"] > runs + 2)  # still checking
        assert agent.value("web1") == "1\n"
        agent.rewrite([http_check("web1", web), http_check("web2", web)], interval=0.3,
                      timeout=0.2)
        agent.send(signal.SIGHUP)  # and a good file after it is taken
        agent.wait_value("web2", "1\n")
        assert agent.stop() == 0
        assert agent.value("web1") == "0\n"

