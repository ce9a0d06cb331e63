"""The last state of each check, so only transitions reach syslog.

keepalived runs a check every few seconds; logging every run would bury the
one line that matters. One tiny file per check (no locking between the many
checks that run at once), replaced atomically, in the first trusted
directory of: ``$KACHECKS_STATE_DIR`` (else /run/kachecks),
``$XDG_RUNTIME_DIR/kachecks``, ``$TMPDIR/kachecks-<uid>`` (TMPDIR defaults to
/tmp), and — when another user squatted that name — a private
``$TMPDIR/kachecks-<uid>-<random>`` found again by its owner and mode.

Trusted means: a real directory (not a symlink) owned by this user and
writable by nobody else. Directories are created with their mode set
explicitly (keepalived runs scripts under umask 0177), files inside are
opened relative to the directory without following links, never block and
are read with a bound: what another user or an accident leaves there
(a link to a root-owned file, /dev/zero, a FIFO) changes at worst whether
one line is logged.
"""

import _md5  # built into every CPython; hashlib would load OpenSSL for a file name
import os

from kachecks.files import UnusableFile, open_regular, read_bounded

SYSTEM_DIR = "/run/kachecks"
MAX_STATE = 64  # bytes; "UP WARNING" is the longest state
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# File names keep ASCII letters, digits and "-_."; every other byte becomes "_".
_UNSAFE = bytes(range(45)) + b"/:;<=>?@[\\]^`{|}~\x7f"
_READABLE = bytes.maketrans(_UNSAFE, b"_" * len(_UNSAFE))


def _trusted_dir(path, mode):
    """An fd on directory ``path`` (created with ``mode`` if missing), or None if not trusted."""
    try:
        os.mkdir(path, mode)
        created = True
    except FileExistsError:
        created = False
    except OSError:
        return None
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if info.st_uid != os.geteuid() or info.st_mode & 0o022:
            raise PermissionError  # another user's, or others may plant files in it
        if created or info.st_mode & 0o700 != 0o700:
            os.fchmod(fd, mode)  # the umask cut it (an older version left 0600 behind)
    except OSError:
        os.close(fd)
        return None
    return fd


def _candidates():
    uid = os.geteuid()
    private = 0o700
    yield os.environ.get("KACHECKS_STATE_DIR") or SYSTEM_DIR, 0o750 if uid == 0 else private
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        yield os.path.join(runtime, "kachecks"), private
    yield os.path.join(_tmp(), f"kachecks-{uid}"), private


def _tmp():
    tmp = os.environ.get("TMPDIR") or "/tmp"
    return tmp if os.path.isabs(tmp) else "/tmp"


def _squat_proof_dir():
    """``$TMPDIR/kachecks-<uid>-<random>``: ours found again, else a new one.

    Another user can create any name in /tmp first, but not one owned by us
    with mode 0700; only a squatted ``kachecks-<uid>`` ever costs this scan.
    """
    tmp = _tmp()
    prefix = f"kachecks-{os.geteuid()}-"
    try:
        with os.scandir(tmp) as entries:
            ours = sorted(e.name for e in entries if e.name.startswith(prefix))
    except OSError:
        return None
    for name in ours:
        fd = _trusted_dir(os.path.join(tmp, name), 0o700)
        if fd is not None:
            return fd
    for _ in range(3):
        path = os.path.join(tmp, prefix + os.urandom(6).hex())
        if not os.path.lexists(path):
            fd = _trusted_dir(path, 0o700)
            if fd is not None:
                return fd
    return None


def open_state_dir():
    """An fd on the first trusted state directory (the caller closes it), or None."""
    for path, mode in _candidates():
        fd = _trusted_dir(path, mode)
        if fd is not None:
            return fd
    return _squat_proof_dir()


def file_name(identity):
    """A file name for ``identity`` (a check's program and arguments): readable, and
    different for every identity (a digest of the exact words)."""
    words = [identity] if isinstance(identity, str) else list(identity)
    exact = "\0".join(words).encode("utf-8", "surrogateescape")
    # one byte per character, non-ASCII as "?", so one "_" each
    readable = " ".join(words)[:80].encode("ascii", "replace").translate(_READABLE).decode()
    return f"{readable}-{_md5.md5(exact).hexdigest()}.state"


def swap(identity, new_state):
    """Record ``new_state``; return the previous one (None if unknown or unrecordable)."""
    directory = open_state_dir()
    if directory is None:
        return None
    try:
        name = file_name(identity)
        previous = _read(name, directory)
        if previous != new_state:
            _write(name, directory, new_state)
        return previous
    finally:
        os.close(directory)


def _read(name, directory):
    try:
        fd, _info = open_regular(name, "state file", MAX_STATE, follow=False, dir_fd=directory)
    except UnusableFile:
        return None
    try:
        data = read_bounded(fd, MAX_STATE, name)
    except UnusableFile:
        return None
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace").strip() or None


def _write(name, directory, new_state):
    tmp = f"{name}.{os.getpid()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _attempt in range(2):
        try:
            fd = os.open(tmp, flags, 0o644, dir_fd=directory)
            break
        except FileExistsError:  # left by a killed run that had our pid
            _unlink(tmp, directory)
        except OSError:
            return
    else:
        return
    try:
        os.write(fd, (new_state + "\n").encode("utf-8"))
        os.close(fd)
        fd = None
        os.replace(tmp, name, src_dir_fd=directory, dst_dir_fd=directory)
    except OSError:
        if fd is not None:
            os.close(fd)
        _unlink(tmp, directory)


def _unlink(name, directory):
    try:
        os.unlink(name, dir_fd=directory)
    except OSError:
        pass
