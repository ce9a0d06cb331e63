"""Where the agent writes: a track path others could bend, or a file that is not a track file,
is refused by --check-config, by the agent and by `kachecks agent zero` alike.

The attacks: a user's symbolic link to a root directory; a user who owns a directory
above the track file (and can swap what is below it); ``file = "/etc/passwd"`` (a copy
in a directory made like /etc: root's, 0755); a status document listing files that are
not the agent's. Nothing outside the test's own directory is touched.
"""

import json
import os
import shutil
import signal
import time

import pytest

from harness.agentattacks import NOBODY
from harness.checks import SERVER1
from harness.peers.agent import AgentProcess, http_check, run_agent_cli
from harness.peers.rawhttp import RawHTTPServer, http_response


@pytest.fixture
def web():
    with RawHTTPServer(http_response(SERVER1)) as server:
        yield server


def refused_everywhere(agent, words):
    """--check-config and the agent itself refuse the configuration, saying ``words``."""
    check = run_agent_cli("--check-config", "--config", agent.config)
    assert check.returncode == 1 and words in check.stderr, check.stderr
    assert check.stderr.count("\n") == 1 and "Traceback" not in check.stderr
    agent.start()
    assert agent.proc.wait(20) == 1
    assert words in agent.output(), agent.output()


def test_a_users_symbolic_link_to_a_root_directory_is_refused(agent_factory, web, tmp_path):
    shared = tmp_path / "shared"  # like /tmp: root's, sticky, anybody writes
    shared.mkdir()
    os.chmod(shared, 0o1777)
    rootdir = tmp_path / "rootdir"
    rootdir.mkdir(mode=0o755)
    victim = rootdir / "web1"
    victim.write_text("1\n")  # a root-owned file the user would have the agent replace
    link = shared / "link"
    os.symlink(rootdir, link)
    os.lchown(link, NOBODY, NOBODY)
    agent = agent_factory([http_check("web1", web, file=f"{link}/web1")], interval=0.3,
                          timeout=0.2)
    refused_everywhere(agent, f"{link} is a symbolic link of uid {NOBODY}")
    assert victim.read_text() == "1\n"
    os.lchown(link, 0, 0)  # the same link made by root is root's decision: accepted
    assert run_agent_cli("--check-config", "--config", agent.config).returncode == 0


def test_a_directory_a_user_owns_above_the_track_file_is_refused(agent_factory, web, tmp_path):
    parent = tmp_path / "userparent"
    (parent / "sub").mkdir(parents=True, mode=0o755)
    os.chown(parent, NOBODY, NOBODY)  # they could rename sub/ away and put their own there
    agent = agent_factory([http_check("web1", web, file=f"{parent}/sub/web1")], interval=0.3,
                          timeout=0.2)
    refused_everywhere(agent, f"{parent} belongs to uid {NOBODY}")
    assert not (parent / "sub" / "web1").exists()


def test_a_group_writable_track_directory_is_refused(agent_factory, web, tmp_path):
    agent = agent_factory([http_check("web1", web)], interval=0.3, timeout=0.2)
    agent.track.mkdir(mode=0o755)
    os.chmod(agent.track, 0o775)
    refused_everywhere(agent, f"{agent.track} is writable by group or others")


def test_a_file_naming_etc_passwd_is_a_configuration_error_and_never_written(
        agent_factory, web, tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir(mode=0o755)
    passwd = etc / "passwd"
    shutil.copyfile("/etc/passwd", passwd)  # a copy: the real one is never touched
    before = passwd.read_bytes()
    agent = agent_factory([http_check("web1", web, file=str(passwd))], interval=0.3, timeout=0.2)
    refused_everywhere(agent, f"{passwd} holds something else than a number: not a track file")
    zero = run_agent_cli("zero", "--config", agent.config)
    assert zero.returncode == 1 and f"could not set {passwd} to 0" in zero.stderr
    assert passwd.read_bytes() == before


def test_a_directory_swapped_while_the_agent_runs_does_not_redirect_its_writes(
        agent_factory, web):
    agent = agent_factory([http_check("web1", web)], interval=0.3, timeout=0.2)
    with agent:
        agent.wait_value("web1", "1\n")
        moved = agent.dir / "track.moved"
        os.rename(agent.track, moved)
        agent.track.mkdir()  # root's own doing here; others cannot, the directory is trusted
        (moved / "web1").write_text("0\n")
        end = time.monotonic() + 5
        while (moved / "web1").read_text() != "1\n" and time.monotonic() < end:
            time.sleep(0.01)
        assert (moved / "web1").read_text() == "1\n"  # still written where it was opened
        assert not (agent.track / "web1").exists()
        assert agent.stop() == 0
    assert (moved / "web1").read_text() == "0\n"  # and zeroed there


def test_zero_never_creates_nor_overwrites_files_that_are_not_track_files(agent_factory, web,
                                                                          tmp_path):
    agent = agent_factory([http_check("web1", web)], interval=0.3, timeout=0.2)
    with agent:
        agent.wait_value("web1", "1\n")
        agent.stop(signal.SIGKILL)
    etc = tmp_path / "etc"
    etc.mkdir(mode=0o755)
    passwd = etc / "passwd"
    shutil.copyfile("/etc/passwd", passwd)
    before = passwd.read_bytes()
    absent = etc / "shadow-new"
    userdir = tmp_path / "userdir"
    userdir.mkdir()
    os.chown(userdir, NOBODY, NOBODY)
    planted = userdir / "web9"
    planted.write_text("1\n")  # a number, but in a directory the user owns
    link = agent.track / "web-link"
    os.symlink(passwd, link)
    document = agent.status()
    document["files"] += [str(passwd), str(absent), str(planted), str(link),
                          str(agent.track / ".kachecks-agent.json")]
    (agent.track / ".kachecks-agent.json").write_text(json.dumps(document))
    zero = run_agent_cli("zero", "--config", agent.config)
    assert (zero.returncode, zero.stderr) == (0, "")
    assert agent.value("web1") == "0\n"
    assert passwd.read_bytes() == before
    assert not absent.exists()
    assert planted.read_text() == "1\n"
    assert os.path.islink(link) and passwd.read_bytes() == before
    assert json.loads((agent.track / ".kachecks-agent.json").read_text())["state"] == "stopped"


@pytest.mark.parametrize("file, words", [
    (".kachecks-agent.json", "file: .kachecks-agent.json is the agent's own: a name starting"),
    ("sub/.web1", "file: .web1 is the agent's own: a name starting with '.'"),
    ("web1\n}\ntrack_file evil {", "file: holds a control character"),
    ("web1\x1b[2J", "file: holds a control character"),
])
def test_the_status_document_and_control_characters_are_never_a_track_file(tmp_path, file,
                                                                           words):
    agent = AgentProcess(tmp_path, [{"name": "web1", "file": file,
                                     "command": "kachecks-tcp 192.168.8.101:80"}])
    for args in (["--check-config"], ["conf"]):
        proc = run_agent_cli(*args, "--config", agent.config)
        assert proc.returncode == 1 and words in proc.stderr, proc.stderr
        assert proc.stdout == "" and proc.stderr.count("\n") == 1
