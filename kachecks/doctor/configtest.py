"""``keepalived -t``: keepalived's own verdict on the file, merged into ours.

``keepalived --config-test -f FILE`` parses and validates in the foreground,
writes its complaints to stderr and exits (0 OK, 4 file/interface errors, 5
other errors, 6 scripts without script security). It neither forks, nor
writes pid files, nor looks at a running keepalived, so a director's live
keepalived is untouched. It runs in its own session, so nothing it does
with signals reaches us.

Messages look like ``(FILE: Line N) text`` or ``(Line N) text``, or carry no
place at all; the wording differs between releases, so only that frame is
relied on, and the code of each message is guessed from a few stable words.
"""

import os
import re
import select
import shutil
import signal
import subprocess
import time

from kachecks.doctor.findings import ERROR, WARNING, Finding

TIMEOUT = 60.0
# keepalived -t output read at most: a configuration keepalived cannot finish
# reading can make it print the same complaint for ever (2.2.7, ${NAME}s left
# half-substituted), gigabytes within TIMEOUT
MAX_OUTPUT = 1 << 20
_PLACE = re.compile(r"^\((?:(?P<file>.*): )?Line (?P<line>\d+)\) (?P<message>.*)$")
_VERSION = re.compile(r"Keepalived v(\d+)\.(\d+)\.(\d+)")
_UNKNOWN = re.compile(r"Unknown keyword '([^']*)'")
_NOT_EXECUTABLE = re.compile(r"not executable|cannot be accessed|not found/accessible|could not find script"
                             r"|Cannot find script|Unable to access script", re.I)
_INCLUDE = re.compile(r"config files? (missing|matched)|Some config files missing", re.I)
_SECURITY = re.compile(r"SECURITY VIOLATION|Unsafe permissions|insecure|script_security|keepalived_script")


def find(explicit=None):
    """The keepalived binary to run: ``explicit``, else on PATH or in /usr/sbin; or None."""
    if explicit:
        return explicit
    found = shutil.which("keepalived")
    if found:
        return found
    return "/usr/sbin/keepalived" if os.access("/usr/sbin/keepalived", os.X_OK) else None


def version(binary):
    """(major, minor, patch) of ``binary``, or None."""
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10,
                              errors="replace", start_new_session=True)
    except (OSError, subprocess.SubprocessError):
        return None
    m = _VERSION.search(done.stderr + done.stdout)
    return tuple(int(x) for x in m.groups()) if m else None


class Outcome:
    """What ``keepalived -t`` said: exit status (negative: killed by that signal) and lines."""

    __slots__ = ("binary", "version", "status", "lines", "failure")

    def __init__(self, binary, version, status, lines, failure=None):
        self.binary = binary
        self.version = version
        self.status = status
        self.lines = lines
        self.failure = failure  # why it could not be run at all

    @property
    def version_text(self):
        return ".".join(map(str, self.version)) if self.version else "?"


def run(binary, path, config_id=None, keepalived_version=None, timeout=TIMEOUT):
    """Run ``keepalived -t -f path`` (and ``-i config_id``); an Outcome."""
    argv = [binary, "--config-test", "-f", path]
    if config_id is not None:
        argv += ["-i", config_id]
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        return Outcome(binary, keepalived_version, None, [], f"cannot run {binary}: {exc.strerror}")
    with proc.stdout:  # type: ignore[union-attr]  # stdout=PIPE
        out, failure = _collect(proc, timeout)
    if failure is not None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return Outcome(binary, keepalived_version, None, [],
                       f"{os.path.basename(binary)} -t {failure}")
    lines = [line.strip() for line in out.decode("utf-8", "replace").splitlines() if line.strip()]
    return Outcome(binary, keepalived_version, proc.returncode, lines)


def _collect(proc, timeout):
    """(output, None) once ``proc`` has exited, or (None, why not) past ``timeout``
    or MAX_OUTPUT bytes."""
    deadline = time.monotonic() + timeout
    late = f"did not finish within {timeout:g} s"
    fd = proc.stdout.fileno()
    chunks, size = [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, late
        if not select.select([fd], [], [], left)[0]:
            continue
        data = os.read(fd, 65536)
        if not data:
            break
        size += len(data)
        if size > MAX_OUTPUT:
            return None, f"wrote more than {MAX_OUTPUT >> 20} MiB of messages"
        chunks.append(data)
    try:
        proc.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return None, late
    return b"".join(chunks), None


def findings(outcome, config, ours, known=None, shadows=()):
    """Findings for what keepalived -t said that ours do not already say.

    ``known``: a function keyword -> release that added it (or None), to
    explain an unknown keyword the installed keepalived is too old for.
    ``shadows``: places where keepalived's complaints only follow from a
    typo already reported (syntax.Shadow).
    """
    main = config.path
    name = f"keepalived {outcome.version_text} -t"
    if outcome.failure:
        return [Finding(main, None, WARNING, "syntax", f"{outcome.failure}: keepalived's own check"
                                                       " was not run")]
    seen_at = {(f.file, f.line, f.code) for f in ours}
    # keepalived names no line for scripts it refuses: ours say which and why
    seen_codes = {f.code for f in ours} & {"not-executable", "script-security"}
    out = []
    for line in outcome.lines:
        m = _PLACE.match(line)
        if m is not None:
            file = _our_name(m.group("file"), config) if m.group("file") else main
            number, message = int(m.group("line")), m.group("message")
        else:
            file, number, message = main, None, line
        code, severity = _classify(message)
        if (file, number, code) in seen_at or (number is None and code in seen_codes):
            continue
        if code == "syntax" and any(shadow.covers(file, number) for shadow in shadows):
            continue
        unknown = _UNKNOWN.search(message)
        if unknown and known is not None:
            since = known(unknown.group(1))
            if since:
                message += f" (added in keepalived {since}; this director runs {outcome.version_text})"
        finding = Finding(file, number, severity, code, f"{name}: {message}")
        if finding not in out:
            out.append(finding)
    if outcome.status == -signal.SIGTERM or outcome.status == 128 + signal.SIGTERM:
        out.append(Finding(main, None, WARNING, "syntax",
                           f"{name} was killed by SIGTERM before it finished (keepalived 2.2.7 does"
                           " this when a script runs as a non-root user; fixed in 2.2.8): its own"
                           " checks are incomplete"))
    elif outcome.status not in (0, None) and not out and not ours:
        out.append(Finding(main, None, ERROR, "syntax", f"{name} exited {outcome.status} without"
                                                        " saying why"))
    return out


def _classify(message):
    if _SECURITY.search(message):
        return "script-security", ERROR if "disabling" in message.lower() else WARNING
    if _NOT_EXECUTABLE.search(message) and "script" in message.lower():
        return "not-executable", ERROR
    if message.startswith("WARNING") or _INCLUDE.search(message):
        return "syntax", WARNING
    return "syntax", ERROR


def _our_name(name, config):
    """Our name for a file keepalived names as the glob matched it."""
    if name in config.names:
        return config.names[name]
    for shown in config.files:
        if shown.endswith("/" + name) or os.path.basename(shown) == name:
            return shown
    return name
