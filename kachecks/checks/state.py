"""The last state of each check identity, so only transitions reach syslog.

keepalived runs a check every few seconds; logging every run would bury the
one line that matters. One tiny file per identity (no locking between the
many checks that run at once), replaced atomically, under ``/run/kachecks``,
falling back to a per-user runtime directory when that is not writable
(``$KACHECKS_STATE_DIR`` overrides both).
"""

import os

SYSTEM_DIR = "/run/kachecks"


def _usable(path):
    try:
        os.makedirs(path, mode=0o755 if os.geteuid() == 0 else 0o700, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def _private_dir(path):
    """A directory only we own, or None (refuse one another user planted)."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError:
        return None
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        return None
    return path


def state_dir():
    override = os.environ.get("KACHECKS_STATE_DIR")
    if override:
        return override if _usable(override) else None
    if _usable(SYSTEM_DIR):
        return SYSTEM_DIR
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        found = _private_dir(os.path.join(runtime, "kachecks"))
        if found:
            return found
    return _private_dir(f"/tmp/kachecks-{os.geteuid()}")


def _file_name(identity):
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in identity)
    if len(safe) > 120:
        import binascii

        safe = f"{safe[:100]}-{binascii.crc32(identity.encode()):08x}"
    return safe + ".state"


def swap(identity, new_state):
    """Record ``new_state``; return the previous one (None if unknown or unrecordable)."""
    directory = state_dir()
    if directory is None:
        return None
    path = os.path.join(directory, _file_name(identity))
    try:
        with open(path, encoding="utf-8") as handle:
            previous = handle.read().strip() or None
    except OSError:
        previous = None
    if previous != new_state:
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(new_state + "\n")
            os.replace(tmp, path)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return previous
