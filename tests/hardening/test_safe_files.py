"""kachecks.files, the one safe-file module: atomic replace, trusted directories, bounded reads.

Every file kachecks writes that something else believes (track files, the agent's status
document, a check's state, the spool) and every directory it trusts goes through it, so
its promises are pinned here on their own: the target holds the old bytes or the new,
never part, and no temporary file is left on any failure; a name someone else made is
never opened; the mode is exactly the one asked for whatever the umask; a write through
a directory descriptor lands in that directory even after it was renamed away.
"""

import os
import resource
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kachecks import files

REPO = Path(__file__).resolve().parents[2]


def leftovers(directory):
    return sorted(p.name for p in Path(directory).iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def umask():
    """Set the umask for one test (keepalived runs scripts with 0177); restored after."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask", [0o177, 0o000, 0o077], ids=oct)
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o600], ids=oct)
def test_replace_gives_exactly_the_mode_asked_for_whatever_the_umask(tmp_path, umask, mask,
                                                                     mode):
    umask(mask)
    target = tmp_path / "web1"
    files.replace(str(target), b"1\n", mode)
    assert target.read_bytes() == b"1\n"
    assert stat.S_IMODE(target.stat().st_mode) == mode
    files.replace(str(target), b"0\n", mode)  # replacing keeps it exact too
    assert (target.read_bytes(), stat.S_IMODE(target.stat().st_mode)) == (b"0\n", mode)
    assert leftovers(tmp_path) == []


def test_a_failed_rename_leaves_the_target_and_no_temporary_file(tmp_path):
    target = tmp_path / "web1"
    target.mkdir()
    (target / "inside").write_text("keep")  # a non-empty directory cannot be renamed over
    with pytest.raises(OSError):
        files.replace(str(target), b"1\n", 0o644)
    assert (target / "inside").read_text() == "keep"
    assert leftovers(tmp_path) == []


def test_a_failure_while_writing_leaves_the_old_bytes_and_no_temporary_file(tmp_path):
    """A write cut short (here by the file-size limit: EFBIG), in a process of its own."""
    target = tmp_path / "status.json"
    target.write_bytes(b"old")
    code = ("import sys\nfrom kachecks import files\n"
            "try:\n    files.replace(sys.argv[1], b'x' * 100000, 0o644)\n"
            "except OSError as exc:\n    print(exc.strerror)\n")

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    done = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True,
                          text=True, timeout=30, preexec_fn=limit,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.stdout.strip() == "File too large", done.stderr
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_an_exception_inside_replace_removes_the_temporary_file(tmp_path):
    target = tmp_path / "web1"
    with pytest.raises(TypeError):
        files.replace(str(target), "text, not bytes", 0o644)
    assert not target.exists() and leftovers(tmp_path) == []


def test_a_link_planted_at_the_temporary_name_is_stepped_around_never_followed(
        tmp_path, monkeypatch):
    victim = tmp_path / "victim"
    victim.write_text("a root-owned file\n")
    track = tmp_path / "track"
    track.mkdir()
    names = iter([b"\x00" * 4, b"\x00" * 4, b"\x01" * 4])  # the first two collide
    monkeypatch.setattr(files.os, "urandom", lambda n: next(names))
    planted = track / f".web1.{os.getpid()}-00000000.tmp"
    planted.symlink_to(victim)
    files.replace(str(track / "web1"), b"1\n", 0o644)
    assert (track / "web1").read_bytes() == b"1\n"
    assert victim.read_text() == "a root-owned file\n"
    assert planted.is_symlink()  # not ours: neither followed nor removed
    assert leftovers(track) == [planted.name]


def test_temporary_names_taken_every_time_fail_without_touching_anything(tmp_path, monkeypatch):
    victim = tmp_path / "victim"
    victim.write_text("secret\n")
    monkeypatch.setattr(files.os, "urandom", lambda n: b"\x00" * n)
    (tmp_path / f".web1.{os.getpid()}-00000000.tmp").symlink_to(victim)
    with pytest.raises(FileExistsError):
        files.replace(str(tmp_path / "web1"), b"1\n", 0o644)
    assert victim.read_text() == "secret\n" and not (tmp_path / "web1").exists()


def test_a_write_through_a_directory_descriptor_follows_the_directory_not_its_name(tmp_path):
    """The agent's track directory, opened once: renamed away and replaced by another
    one (a user who owns a parent), its files still land in the directory it opened."""
    track = tmp_path / "track"
    track.mkdir()
    fd = files.open_dir(str(track))
    try:
        track.rename(tmp_path / "moved")
        track.mkdir()  # the impostor
        files.replace("web1", b"0\n", 0o644, dir_fd=fd)
        assert (tmp_path / "moved" / "web1").read_bytes() == b"0\n"
        assert not (track / "web1").exists()
        assert leftovers(tmp_path / "moved") == []
    finally:
        os.close(fd)


def test_staging_writes_in_another_directory_and_renames_into_place(tmp_path):
    """The spool: written in tmp/ (no queue ever sees half an event), then durable."""
    (tmp_path / "tmp").mkdir()
    (tmp_path / "incoming").mkdir()
    staging = os.open(tmp_path / "tmp", os.O_RDONLY | os.O_DIRECTORY)
    dest = os.open(tmp_path / "incoming", os.O_RDONLY | os.O_DIRECTORY)
    try:
        files.replace("1.json", b"{}", 0o640, dest, durable=True, staging=(staging, "incoming."))
    finally:
        os.close(staging)
        os.close(dest)
    assert (tmp_path / "incoming" / "1.json").read_bytes() == b"{}"
    assert os.listdir(tmp_path / "tmp") == []


def test_concurrent_writers_of_one_file_never_leave_a_torn_or_temporary_file(tmp_path):
    target = tmp_path / "web1"
    errors = []

    def writer(value):
        try:
            for _ in range(200):
                files.replace(str(target), value * 1000, 0o644)
        except Exception as exc:  # noqa: BLE001 — reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(v,)) for v in (b"a", b"b", b"c")]
    for thread in threads:
        thread.start()
    seen = set()
    while any(t.is_alive() for t in threads):
        seen.add(target.read_bytes() if target.exists() else None)
    for thread in threads:
        thread.join()
    assert errors == []
    assert seen - {None} <= {b"a" * 1000, b"b" * 1000, b"c" * 1000}
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------- trusting


def owned_by(path, uid, mode):
    os.chown(path, uid, uid)
    os.chmod(path, mode)
    return str(path)


@pytest.mark.parametrize("trust, uid, mode, problem", [
    (files.ROOT_OR_ME, 0, 0o755, None),
    (files.ROOT_OR_ME, 0, 0o775, "is writable by group or others (mode 0775; chmod go-w"),
    (files.ROOT_OR_ME, 0, 0o757, "is writable by group or others (mode 0757; chmod go-w"),
    (files.ROOT_OR_ME, 65534, 0o755, "belongs to uid 65534"),
    (files.SHARED_WITH_GROUP, 0, 0o2770, None),
    (files.SHARED_WITH_GROUP, 0, 0o777, "is writable by others (mode 0777; chmod o-w"),
    (files.PRIVATE, 0, 0o700, None),  # we are root here: root's is ours
    (files.PRIVATE, 65534, 0o700, "belongs to uid 65534"),
])
def test_each_trust_policy_names_what_makes_a_directory_untrusted(tmp_path, trust, uid, mode,
                                                                   problem):
    if os.geteuid() != 0:
        pytest.fail("handing a directory to another user needs root")
    (tmp_path / "d").mkdir()
    directory = owned_by(tmp_path / "d", uid, mode)
    found = files.untrusted_path(directory, trust)
    if problem is None:
        assert found is None
    else:
        assert found.startswith(f"{directory} {problem}")


def test_ancestors_must_be_ours_and_open_only_when_sticky(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("handing a directory to another user needs root")
    top = tmp_path / "top"
    (top / "run").mkdir(parents=True)
    inner = str(top / "run")
    os.chmod(top, 0o1777)  # like /tmp: others may add, not rename ours away
    assert files.untrusted_path(inner, ancestors=True) is None
    assert files.untrusted_path(inner) is None
    os.chmod(top, 0o777)
    assert files.untrusted_path(inner, ancestors=True).startswith(
        f"{top} is writable by group or others (mode 0777")
    assert files.untrusted_path(inner) is None  # only the directory itself
    os.chmod(top, 0o755)
    os.chown(top, 65534, 65534)
    assert files.untrusted_path(inner, ancestors=True) == f"{top} belongs to uid 65534"


def test_open_dir_with_ancestors_judges_the_way_before_it_makes_anything(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("handing a link to another user needs root")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    theirs = tmp_path / "theirs"
    theirs.symlink_to(private)
    os.lchown(theirs, 65534, 65534)
    with pytest.raises(files.UntrustedDirectory,
                       match=f"^{theirs} is a symbolic link of uid 65534$"):
        files.open_dir(str(theirs / "state"), files.PRIVATE, create=0o700, ancestors=True)
    assert os.listdir(private) == []  # nothing made where their link points
    os.close(files.open_dir(str(theirs / "state"), files.PRIVATE, create=0o700))  # (without)
    os.rmdir(private / "state")
    ours = tmp_path / "ours"
    ours.symlink_to(private)
    os.close(files.open_dir(str(ours / "state"), files.PRIVATE, create=0o700, ancestors=True))
    assert os.listdir(private) == ["state"]


@pytest.mark.parametrize("mask", [0o177, 0o000], ids=oct)
def test_open_dir_makes_a_directory_with_exactly_its_mode_and_refuses_an_untrusted_one(
        tmp_path, umask, mask):
    umask(mask)
    made = tmp_path / "a" / "b" / "spool"
    os.close(files.open_dir(str(made), create=0o750, parents=True))
    assert stat.S_IMODE(made.stat().st_mode) == 0o750
    assert stat.S_IMODE(made.parent.stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o755
    with pytest.raises(FileNotFoundError):
        files.open_dir(str(tmp_path / "x" / "y"), create=0o700)  # no parents unless asked
    os.chmod(made, 0o777)
    with pytest.raises(files.UntrustedDirectory, match="is writable by group or others"):
        files.open_dir(str(made))
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "a")
    with pytest.raises(OSError):
        files.open_dir(str(link), follow=False)


# ---------------------------------------------------------------- reading


@pytest.mark.parametrize("kind, reason", [("fifo", "type"), ("dir", "type"), ("big", "size"),
                                          ("link", "link"), ("missing", "missing"),
                                          ("device", "type")])
def test_a_bounded_read_refuses_what_is_no_small_regular_file_at_once(tmp_path, kind, reason):
    path = tmp_path / "f"
    if kind == "fifo":
        os.mkfifo(path)  # nobody writes to it: opening must not block
    elif kind == "dir":
        path.mkdir()
    elif kind == "big":
        with open(path, "wb") as handle:
            handle.truncate(1 << 30)  # sparse: claims a gigabyte
    elif kind == "link":
        (tmp_path / "real").write_text("1\n")
        path.symlink_to(tmp_path / "real")
    elif kind == "device":
        path = Path("/dev/zero")
    with pytest.raises(files.UnusableFile) as caught:
        files.read_regular(str(path), "state file", 64, follow=False)
    assert caught.value.reason == reason
    assert str(caught.value).count("\n") == 0 and str(path) in str(caught.value)
