"""The last state of each check, so only transitions reach syslog.

keepalived runs a check every few seconds; logging every run would bury the
one line that matters. One tiny file per check (no locking between the many
checks that run at once), replaced atomically, in the first trusted
directory of: ``$KACHECKS_STATE_DIR`` (else /run/kachecks),
``$XDG_RUNTIME_DIR/kachecks``, ``$TMPDIR/kachecks-<uid>`` (TMPDIR defaults to
/tmp), and — when another user squatted that name — a private
``$TMPDIR/kachecks-<uid>-<random>`` found again by its owner and mode.

Trusted means: a real directory (not a symlink) owned by this user and
writable by nobody else (kachecks.files.PRIVATE), reached only through
directories and links of root's or ours, none writable by others unless
sticky (as /tmp is): a KACHECKS_STATE_DIR through another user's link or
directory is theirs to redirect, whoever owns its last part. Directories
are created with their mode set explicitly (keepalived runs scripts under
umask 0177); files inside are read and replaced (mode 0600) through
kachecks.files, relative to the directory, without following links or
blocking, with a bound: what another user or an accident leaves there (a link to a root-owned
file, /dev/zero, a FIFO) changes at worst whether one line is logged.
"""

import _md5  # built into every CPython; hashlib would load OpenSSL for a file name
import os

from kachecks import files

SYSTEM_DIR = "/run/kachecks"
MAX_STATE = 64  # bytes; "UP WARNING" is the longest state
# File names keep ASCII letters, digits and "-_."; every other byte becomes "_".
_UNSAFE = bytes(range(45)) + b"/:;<=>?@[\\]^`{|}~\x7f"
_READABLE = bytes.maketrans(_UNSAFE, b"_" * len(_UNSAFE))


def _trusted_dir(path, mode):
    """An fd on directory ``path`` (created with ``mode`` if missing), or None if not
    trusted (files.PRIVATE: ours, and nobody else may write in it; the way to it as
    files.untrusted_path judges it with ``ancestors``)."""
    try:
        return files.open_dir(path, files.PRIVATE, create=mode, follow=False, ancestors=True)
    except OSError:
        return None


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
        data = files.read_regular(name, "state file", MAX_STATE, follow=False,
                                  dir_fd=directory)
    except files.UnusableFile:
        return None
    return data.decode("utf-8", "replace").strip() or None


def _write(name, directory, new_state):
    try:
        files.replace(name, (new_state + "\n").encode("utf-8"), 0o600, dir_fd=directory)
    except OSError:
        pass  # the state is a convenience: at worst one transition is not logged
