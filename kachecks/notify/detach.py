"""The deliverer as a process of its own, out of keepalived's reach.

``kachecks notify`` must return at once, and keepalived SIGKILLs the process
group of a STOP notify after 1 s: delivery runs in a detached grandchild that
takes the spool lock. ``spool flush`` and ``purge`` ask a deliverer that is
backing off to hand the lock over (SIGUSR1).

A process with threads (the agent) must not fork into Python: the child
would inherit every lock another thread held at that instant. It starts the
deliverer with ``launch`` instead: ``python3 -m kachecks.notify.detach FILE``,
a fresh interpreter that does what ``kick`` does and exits.
"""

import os
import signal
import subprocess
import sys

from kachecks.notify import deliver, spool
from kachecks.notify.log import LOG_ERR, LOG_WARNING, log
from kachecks.status import ExitCode


def hand_over(root):
    """Ask a lingering deliverer to stop backing off and release the lock."""
    with spool.Spool(root) as opened:
        pid = opened.lock().holder()
    if pid and pid != os.getpid():
        try:
            os.kill(pid, signal.SIGUSR1)
        except OSError:
            pass


def kick(opened, cfg):
    """Start a detached deliverer unless one is running (it will see our event).

    SpoolError if the lock cannot be used (the events stay in the spool).
    """
    if not opened.lock().busy():
        spawn(cfg)


def launch(opened, cfg):
    """``kick`` for a process with threads: the Popen of a fresh interpreter that starts the
    deliverer and exits at once (the caller reaps it), or None when one runs already."""
    if opened.lock().busy():
        return None
    try:
        return subprocess.Popen([sys.executable, "-m", __name__, cfg.path],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True, cwd="/")
    except OSError as exc:
        log(f"cannot start delivery ({exc.strerror or exc}); events stay in the spool",
            LOG_WARNING)
        return None


def spawn(cfg):
    """Deliver in a detached grandchild (own session and process group).

    keepalived SIGKILLs the process group of a STOP notify after 1 s; the
    grandchild is not in it, and is not waited for by anybody.
    """
    try:
        pid = os.fork()
    except OSError as exc:
        log(f"cannot start delivery ({exc.strerror}); events stay in the spool", LOG_WARNING)
        return
    if pid:
        os.waitpid(pid, 0)
        return
    code = ExitCode.OK
    try:
        os.setsid()
        if os.fork():
            os._exit(ExitCode.OK)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, 4096)
        os.chdir("/")
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        deliver.run(cfg, linger=True)
    except BaseException as exc:  # a detached process has nobody to report to but syslog
        log(f"delivery process failed: {type(exc).__name__}: {exc}", LOG_ERR)
        code = ExitCode.FAILURE
    finally:
        os._exit(code)


def main(argv):
    """``python3 -m kachecks.notify.detach FILE``: ``kick`` with FILE's configuration."""
    from kachecks.notify import config as configuration
    from kachecks.runtime import guarded

    def run(path):
        cfg = configuration.load(path)
        with spool.Spool(cfg.spool_dir) as opened:
            kick(opened, cfg)
        return ExitCode.OK

    def report(line):
        log(line, LOG_ERR)

    if len(argv) != 2:
        report("usage: python3 -m kachecks.notify.detach KACHECKS.TOML")
        return ExitCode.FAILURE
    return guarded(run, argv[1], prog="kachecks deliverer", report=report)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
