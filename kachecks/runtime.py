"""The one guard every entry point runs through.

keepalived (and systemd, and an administrator's shell) acts on the exit
code, so whatever escapes a command — a usage error, a bug, Ctrl-C, a
closed stdout — ends here as one line on stderr and a defined code, never a
traceback. Entry points return their code; only ``__main__``-level code
(the console-script wrappers, ``python -m kachecks``) calls ``sys.exit``.
"""

import os
import sys

from kachecks import interrupt
from kachecks.errors import KachecksError, OutputLost, UsageError, os_error_text
from kachecks.status import ExitCode


def one_line(text):
    """``text`` with every character that is not printable (CR, LF, ESC, NEL, …)
    escaped as repr() escapes it: a check's Result repeats what a peer sent (a reason
    phrase, a diagnostic message), an event what keepalived was configured with;
    neither may split a status, syslog or mail header line, forge a second one,
    or drive the reader's terminal."""
    if not text or text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def guarded(func, *args, prog, error_code=ExitCode.FAILURE, bare_usage=False, report=None,
            stoppable=False, **kwargs):
    """``func(*args, **kwargs)``'s exit code, or ``error_code`` after one line on stderr.

    ``bare_usage``: a UsageError prints its message alone (genhash speaks
    keepalived's words); otherwise lines start with ``prog: ``. ``report``
    also receives each error line (e.g. to copy it to syslog).
    ``stoppable``: a terminating signal (kachecks.interrupt, installed by the
    entry point) raises ``interrupt.Stop`` inside ``func``, which may report
    it; one that escapes is ``prog: terminated by SIGTERM``.
    """
    try:
        try:
            if stoppable:
                interrupt.arm()
            code = func(*args, **kwargs)
        finally:
            if stoppable:
                interrupt.disarm()
        code = ExitCode.OK if code is None else code
    except interrupt.Stop as exc:
        _say(f"{prog}: {exc}", report)
        code = error_code
    except SystemExit as exc:  # a library (click) that exits on its own
        code = exc.code
        if code is None:
            code = ExitCode.OK
        elif not isinstance(code, int):
            _say(f"{prog}: {code}", report)
            code = error_code
    except UsageError as exc:
        for line in exc.lines:
            _say(line if bare_usage else f"{prog}: {line}", report)
        code = error_code
    except KachecksError as exc:
        for line in exc.lines:
            _say(f"{prog}: {line}", report)
        code = error_code
    except KeyboardInterrupt:
        _say(f"{prog}: interrupted", report)
        code = error_code
    except BrokenPipeError:
        _detach_stdout()
        _say(f"{prog}: write error: output closed", report)
        code = error_code
    except Exception as exc:  # a bug still ends as a defined code
        _say(f"{prog}: internal error: {type(exc).__name__}: {exc}", report)
        code = error_code
    return _flushed(code, prog, error_code, report)


def _flushed(code, prog, error_code, report):
    """Flush stdout here, so lost output is one line and a code, not a message
    at interpreter exit. Output lost after a success is a failure (as in
    coreutils); after a failure, that failure was already said."""
    if sys.stdout is None:  # started with stdout closed
        return code
    try:
        sys.stdout.flush()
    except (OSError, ValueError) as exc:
        _detach_stdout()
        if code != ExitCode.OK:
            return code
        _say(f"{prog}: write error: {os_error_text(exc)}", report)
        return error_code
    return code


def _detach_stdout():
    _detach(sys.stdout)


def _detach(stream):
    # Python flushes sys.stdout/stderr again at exit; point the descriptor at
    # /dev/null so that flush cannot print "Exception ignored ... BrokenPipeError".
    if stream is None:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def show(text, stream=None):
    """Write ``text`` for a person on ``stream`` (default stdout), best effort.

    False when it could not be written (closed, full disk, broken pipe): the
    stream is then pointed at /dev/null. What a command decides (a check's
    exit code) never depends on it.
    """
    stream = sys.stdout if stream is None else stream
    if stream is None:  # the process was started with it closed
        return False
    try:
        stream.write(text)
        stream.flush()
        return True
    except (OSError, ValueError):
        _detach(stream)
        return False


class StrictOutput:
    """Binary stdout for a command whose output is its product (genhash's digest):
    a failed write or flush raises OutputLost, which the guard reports."""

    def __init__(self):
        if sys.stdout is None:
            raise OutputLost("write error: standard output is closed")
        self._stream = sys.stdout.buffer

    def write(self, data):
        try:
            return self._stream.write(data)
        except (OSError, ValueError) as exc:
            raise OutputLost(f"write error: {os_error_text(exc)}") from None

    def flush(self):
        try:
            self._stream.flush()
        except (OSError, ValueError) as exc:
            raise OutputLost(f"write error: {os_error_text(exc)}") from None


def _say(line, report):
    show(line.rstrip("\n") + "\n", sys.stderr)
    if report is not None:
        try:
            report(line)
        except Exception:
            pass
