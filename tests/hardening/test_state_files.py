"""The state directory: what a check trusts there, and that "log once per change" survives.

A check remembers its last state in a tiny file so that only transitions
reach syslog. The directory it keeps them in must be one nobody else can
write to; a file planted there must never make a check follow it, hang on
it or read it without bound; and whatever the umask or a squatter did, a
down server is logged once, not on every run.
"""

import os
import resource
import stat

import pytest

from harness.peers.syslog import SyslogSink
from harness.redteam import assert_clean, spawn

NOBODY = 65534


def down_check(port):
    """A check that fails fast and the same way every run: nothing listens on ``port``."""
    return ("kachecks-tcp", f"127.0.0.1:{port}", "--timeout", "2")


def run_times(times, check, **kw):
    results = [spawn(*check, **kw) for _ in range(times)]
    for finished in results:
        assert finished.returncode == 1, finished
        assert_clean(finished)
    return results


def downs(messages):
    return [m for m in messages if " DOWN: " in m]


@pytest.fixture
def fallback(tmp_path, monkeypatch):
    """A private temporary directory standing in for /tmp, and no XDG runtime dir."""
    tmp = tmp_path / "tmp"
    tmp.mkdir(mode=0o700)
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    return tmp


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o775, 0o757], ids=oct)
def test_a_state_directory_others_can_write_is_not_used(tmp_path, monkeypatch, fallback,
                                                         syslog_socket, unused_port, mode):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, mode)
    planted = shared / "planted"
    planted.write_text("an attacker's file\n")
    monkeypatch.setenv("KACHECKS_STATE_DIR", str(shared))
    run_times(3, down_check(unused_port))
    assert sorted(os.listdir(shared)) == ["planted"]  # nothing created, nothing followed
    assert planted.read_text() == "an attacker's file\n"
    assert len(downs(syslog_socket())) == 1  # the state lives on, in a private directory


def test_a_state_directory_owned_by_another_user_is_not_used(tmp_path, monkeypatch, fallback,
                                                              syslog_socket, unused_port):
    assert os.geteuid() == 0, "needs root to hand a directory to another user"
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o755)
    os.chown(foreign, NOBODY, NOBODY)
    monkeypatch.setenv("KACHECKS_STATE_DIR", str(foreign))
    run_times(3, down_check(unused_port))
    assert os.listdir(foreign) == []
    assert len(downs(syslog_socket())) == 1


def _through(kind, tmp_path):
    """A private directory of ours reached through something another user controls:
    ``(the path a check is given, the real directory)``."""
    assert os.geteuid() == 0, "needs root to hand a link or a directory to another user"
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, NOBODY, NOBODY)
    if kind == "link_of_another_user":  # nobody may point it elsewhere at any time
        private = tmp_path / "private"
        (private / "state").mkdir(parents=True, mode=0o700)
        link = theirs / "link"
        link.symlink_to(private)
        os.lchown(link, NOBODY, NOBODY)
        return link / "state", private / "state"
    if kind == "parent_of_another_user":  # nobody may rename ours away, put theirs there
        (theirs / "state").mkdir(mode=0o700)
        return theirs / "state", theirs / "state"
    shared = tmp_path / "shared"  # parent_writable_by_others: anybody may swap it
    (shared / "state").mkdir(parents=True, mode=0o700)
    os.chmod(shared, 0o777)
    return shared / "state", shared / "state"


@pytest.mark.parametrize("kind", ["link_of_another_user", "parent_of_another_user",
                                  "parent_writable_by_others"])
def test_a_state_directory_reached_through_what_others_control_is_not_used(
        tmp_path, monkeypatch, fallback, syslog_socket, unused_port, kind):
    given, real = _through(kind, tmp_path)
    monkeypatch.setenv("KACHECKS_STATE_DIR", str(given))
    run_times(3, down_check(unused_port))
    assert os.listdir(real) == []
    assert os.listdir(fallback) == [f"kachecks-{os.geteuid()}"]  # the state lives on there
    assert len(downs(syslog_socket())) == 1


@pytest.mark.parametrize("variable", ["XDG_RUNTIME_DIR", "TMPDIR"])
def test_a_fallback_state_directory_reached_through_another_users_link_is_not_used(
        tmp_path, monkeypatch, fallback, unused_port, variable):
    given, real = _through("link_of_another_user", tmp_path)
    monkeypatch.setenv("KACHECKS_STATE_DIR", str(tmp_path / "not-a-directory"))
    (tmp_path / "not-a-directory").write_text("")
    monkeypatch.setenv(variable, str(given))
    run_times(2, down_check(unused_port))
    assert os.listdir(real) == []


def test_a_state_directory_under_a_sticky_directory_and_our_own_link_is_used(
        tmp_path, monkeypatch, syslog_socket, unused_port):
    sticky = tmp_path / "sticky"  # as /tmp is: nobody can rename what is ours in it
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    (sticky / "state").mkdir(mode=0o700)
    (tmp_path / "ours").symlink_to(sticky)
    monkeypatch.setenv("KACHECKS_STATE_DIR", str(tmp_path / "ours" / "state"))
    run_times(3, down_check(unused_port))
    assert len(os.listdir(sticky / "state")) == 1
    assert len(downs(syslog_socket())) == 1


def _state_file(directory):
    names = [n for n in os.listdir(directory) if n.endswith(".state")]
    assert len(names) == 1, names
    return directory / names[0]


def _limit_memory():
    # A check that reads without bound must fail here, not eat the test machine.
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


@pytest.mark.parametrize("plant", ["dev_zero", "fifo", "huge", "directory"])
def test_a_planted_state_file_is_neither_followed_nor_read_without_bound(tmp_path, web, plant):
    state_dir = tmp_path / "state"  # the isolated_runtime fixture's KACHECKS_STATE_DIR
    check = ("kachecks-tcp", f"127.0.0.1:{web.port}", "--quiet")
    first = spawn(*check)
    assert first.returncode == 0, first
    path = _state_file(state_dir)
    path.unlink()
    if plant == "dev_zero":
        path.symlink_to("/dev/zero")
    elif plant == "fifo":
        os.mkfifo(path, 0o600)
    elif plant == "huge":
        with open(path, "wb") as handle:
            handle.truncate(4 << 30)  # sparse: 4 GiB of zeros
    else:
        path.mkdir()
    again = spawn(*check, preexec_fn=_limit_memory, timeout=15)
    assert again.returncode == 0, again
    assert_clean(again)
    assert again.elapsed < 5, again


def test_each_check_keeps_its_own_state_even_when_only_the_regex_differs(web, syslog_socket):
    url = f"http://{web.address}/service.txt"
    matching = ("kachecks-http", "--url", url, "--regex", "Server 1")  # the body says it
    missing = ("kachecks-http", "--url", url, "--regex", "Server_1")  # it does not
    assert spawn(*matching).returncode == 0
    assert spawn(*missing).returncode == 1
    first = syslog_socket()
    assert len(first) == 2 and " UP: " in first[0] and " DOWN: " in first[1], first
    for _ in range(2):  # nothing changed for either check: nothing more to say
        assert spawn(*matching).returncode == 0
        assert spawn(*missing).returncode == 1
    assert syslog_socket() == []


@pytest.mark.parametrize("squat", ["world_writable", "other_owner"])
def test_a_squatted_per_user_temporary_directory_does_not_disable_state(
        tmp_path, monkeypatch, fallback, syslog_socket, unused_port, squat):
    unusable = tmp_path / "not-a-directory"
    unusable.write_text("")
    monkeypatch.setenv("KACHECKS_STATE_DIR", str(unusable))
    squatted = fallback / f"kachecks-{os.geteuid()}"
    squatted.mkdir()
    if squat == "world_writable":
        os.chmod(squatted, 0o777)
    else:
        assert os.geteuid() == 0, "needs root to hand a directory to another user"
        os.chown(squatted, NOBODY, NOBODY)
        os.chmod(squatted, 0o700)
    run_times(3, down_check(unused_port))
    assert os.listdir(squatted) == []
    assert len(downs(syslog_socket())) == 1


def test_a_state_directory_is_created_with_its_mode_whatever_the_umask(
        tmp_path, monkeypatch, unused_port):
    created = tmp_path / "created"
    monkeypatch.setenv("KACHECKS_STATE_DIR", str(created))
    run_times(1, down_check(unused_port), preexec_fn=lambda: os.umask(0o177))
    mode = stat.S_IMODE(os.stat(created).st_mode)
    assert mode == (0o750 if os.geteuid() == 0 else 0o700), oct(mode)


@pytest.fixture
def nobody_world(open_dir, other_user):
    """A home for state and a syslog socket that a non-root script_user can use."""
    assert os.geteuid() == 0, "needs root to run a check as another user"
    home = open_dir / "home"
    home.mkdir(mode=0o700)
    os.chown(home, NOBODY, NOBODY)
    with SyslogSink(open_dir / "log.sock", mode=0o777) as log:
        yield str(home), log.path, log.messages


def _as_nobody_with_keepalived_umask():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    os.umask(0o177)


@pytest.mark.parametrize("left_behind", [False, True])
def test_a_non_root_script_user_under_keepalived_umask_logs_a_down_server_once(
        nobody_world, unused_port, left_behind):
    home, log_path, messages = nobody_world
    state = os.path.join(home, "state")
    if left_behind:  # what an earlier version left under umask 0177: a 0600 directory
        os.mkdir(state, 0o600)
        os.chown(state, NOBODY, NOBODY)
        os.chmod(state, 0o600)
    env = {"KACHECKS_STATE_DIR": state, "KACHECKS_SYSLOG_SOCKET": log_path, "TMPDIR": home,
           "XDG_RUNTIME_DIR": None}
    run_times(3, down_check(unused_port), env=env, preexec_fn=_as_nobody_with_keepalived_umask)
    assert len(downs(messages())) == 1
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
