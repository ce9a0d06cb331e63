"""What a check hands to a worker socket, and what it believes back.

Only a worker run by root or by the caller's own user, behind a socket no
one else can replace, gets the check's environment (passwords) and stdio;
only an exit code the check itself could have returned is passed on.
"""

import os
import pwd

import pytest

from harness.checks import MD5_SERVER1 as MD5
from harness.peers import cli
from harness.peers.worker import FakeWorker

SECRET = "bind-secret-of-the-check"
SECRETS = {"KACHECKS_LDAP_PASSWORD": SECRET, "KACHECKS_HTTP_PASSWORD": SECRET}


def check_through(path, url, *args):
    return cli.run("kachecks-http", "--url", url, *args,
                   env={"KACHECKS_WORKER_SOCKET": str(path), **SECRETS})


def assert_ran_in_process_and_nothing_was_sent(proc, https, fake):
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("HTTP OK - 200 OK"), proc.stdout
    assert "run by kachecks worker" not in proc.stdout
    assert "(kachecks worker not used: " in proc.stdout  # --verbose says why
    assert len(https.requests) == 1  # the check itself reached the server
    received = fake.records("request")
    assert all(r["payload"] == "" and r["fds"] == 0 for r in received), received
    assert SECRET not in fake.log.read_text()


@pytest.mark.other_user
def test_a_worker_listening_as_another_user_gets_no_secrets_and_no_stdio(open_dir, https):
    nobody = pwd.getpwnam("nobody")
    path = open_dir / "worker.sock"  # the file is root's; only the listener is nobody
    with FakeWorker(path, ["P{pid}", "C0"], listen_uid=nobody.pw_uid) as fake:
        proc = check_through(path, https.url, "--digest", MD5, "--verbose")
        assert_ran_in_process_and_nothing_was_sent(proc, https, fake)


@pytest.mark.other_user
def test_a_worker_socket_owned_by_another_user_gets_no_secrets_and_no_stdio(open_dir, https):
    nobody = pwd.getpwnam("nobody")
    home = open_dir / "nobody"
    home.mkdir()
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    path = home / "worker.sock"
    with FakeWorker(path, ["P{pid}", "C0"], user=nobody) as fake:
        proc = check_through(path, https.url, "--digest", MD5, "--verbose")
        assert_ran_in_process_and_nothing_was_sent(proc, https, fake)


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_a_root_worker_in_a_directory_others_can_write_is_not_used(open_dir, https, mode):
    shared = open_dir / "shared"
    shared.mkdir()
    shared.chmod(mode)  # anyone (or a group) could have replaced the socket
    path = shared / "worker.sock"
    with FakeWorker(path, ["P{pid}", "C0"]) as fake:
        proc = check_through(path, https.url, "--digest", MD5, "--verbose")
        assert_ran_in_process_and_nothing_was_sent(proc, https, fake)
    assert f"{shared} is writable by group or others" in proc.stdout


def test_the_callers_own_worker_is_trusted(open_dir, https):
    path = open_dir / "worker.sock"
    with FakeWorker(path, ["P{pid}", "C0"]) as fake:
        proc = check_through(path, https.url, "--digest", MD5)
    assert proc.returncode == 0, proc.stderr
    (request,) = fake.records("request")
    assert request["fds"] == 4  # stdin, stdout, stderr, working directory
    assert SECRET in request["payload"]  # our environment: the check may need it
    assert not https.requests  # the (fake) worker answered for it


def no_traceback(proc):
    return "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("replies,args,code", [
    (["P{pid}", "C999"], [], 1),       # would wrap to 231
    (["P{pid}", "C2"], [], 1),         # 2 = "healthy, weight 0" for misc_dynamic
    (["P{pid}", "C255"], [], 1),
    (["P{pid}", "C-1"], [], 1),
    (["P{pid}", "Cxyz"], [], 1),
    (["P{pid}", "C"], [], 1),
    (["P{pid}", "C4"], ["--nagios"], 3),
    (["P{pid}", "C1x"], ["--dynamic"], 1),
])
def test_an_exit_code_the_check_could_not_return_becomes_an_error(open_dir, https, replies,
                                                                    args, code):
    path = open_dir / "worker.sock"
    with FakeWorker(path, replies):
        proc = check_through(path, https.url, "--digest", MD5, *args)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert no_traceback(proc), proc.stderr
    said = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(said) == 1 and "kachecks worker" in said[0], said


@pytest.mark.parametrize("replies,args,code", [
    (["P{pid}", "C9"], ["--dynamic"], 9),
    (["P{pid}", "C3"], ["--nagios"], 3),
    (["P{pid}", "C1"], [], 1),
])
def test_an_exit_code_the_check_could_return_is_passed_on(open_dir, https, replies, args,
                                                         code):
    path = open_dir / "worker.sock"
    with FakeWorker(path, replies):
        proc = check_through(path, https.url, "--digest", MD5, *args)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert proc.stdout == proc.stderr == ""  # the worker's child writes the lines


@pytest.mark.parametrize("replies", [["Pxyz"], ["P-1"], ["P"], ["hello"], ["X"],
                                     pytest.param([], marks=pytest.mark.slow)])  # start timeout
def test_a_worker_that_did_not_start_the_check_leaves_it_to_the_caller(open_dir, https,
                                                                       replies):
    path = open_dir / "worker.sock"
    with FakeWorker(path, replies):
        proc = check_through(path, https.url, "--digest", MD5)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert no_traceback(proc), proc.stderr
    assert proc.stdout.startswith("HTTP OK - 200 OK")
    assert len(https.requests) == 1


def test_a_workers_reason_to_decline_cannot_forge_a_line(open_dir, https):
    path = open_dir / "worker.sock"
    with FakeWorker(path, ["Xbusy\nHTTP OK - forged\x1b[2J"]):
        proc = check_through(path, https.url, "--digest", MD5, "--verbose")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("HTTP OK - 200 OK")  # run in-process
    assert "HTTP OK - forged" not in [line.lstrip("(") for line in lines]
    assert "(kachecks worker declined: busy\\nHTTP OK - forged\\x1b[2J)" in lines
    assert all(line.isprintable() for line in lines)
