"""`kachecks worker` stops on SIGTERM wherever it lands, even in the middle of a fork.

os.fork() runs Python's fork hooks (logging registers some; the worker preloads it), and
an exception a signal handler raises inside a hook is printed and dropped. A SIGTERM
landing there used to leave the worker serving on, deaf to it: systemd's stop, or a
test's, then waited in vain. A sitecustomize hook on PYTHONPATH lands the SIGTERM there
on purpose, from a fork hook of its own.

Python runs a handler only in the main thread, between two bytecodes: a SIGTERM whose C
handler ran on another thread (or just before accept(2) began) used to wait for the next
client. The same hook sends one to a thread of its own while the worker waits in accept;
and to a thread of a check's own while the check waits for the worker's report on the run
it handed over, which used to wait for the run's end (its --timeout).
"""

import os
import subprocess

from harness import signalled
from harness.peers import cli
from harness.peers.worker import Worker

HOOK = '''\
import os
import signal

if os.environ.get("KACHECKS_TEST_SIGTERM_IN_FORK_HOOK"):
    _sent = []

    def _sigterm_in_the_parent():
        if not _sent:  # the first fork only: a run's child
            _sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(3):  # more bytecodes in the hook: a pending handler runs here
                pass

    os.register_at_fork(after_in_parent=_sigterm_in_the_parent)

if os.environ.get("KACHECKS_TEST_SIGTERM_ON_A_THREAD"):
    import threading
    import time

    # "HANDLER SECONDS": once the SIGTERM handler named HANDLER is in place (the worker
    # serves, or the check catches it), SECONDS later (in accept(2), or waiting for the
    # worker's report by then), a SIGTERM to this thread
    _handler, _seconds = os.environ["KACHECKS_TEST_SIGTERM_ON_A_THREAD"].split()

    def _sigterm_on_this_thread():
        while getattr(signal.getsignal(signal.SIGTERM), "__name__", "") != _handler:
            time.sleep(0.01)
        time.sleep(float(_seconds))
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    threading.Thread(target=_sigterm_on_this_thread, daemon=True).start()
'''


def hooked(tmp_path, variable, value="1"):
    """The environment of a process whose sitecustomize lands a SIGTERM as ``variable``
    (set to ``value``) says."""
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(HOOK)
    return dict(os.environ, **{variable: value},
                PYTHONPATH=os.pathsep.join([str(hook_dir),
                                            *filter(None, [os.environ.get("PYTHONPATH")])]))


def test_a_sigterm_landing_in_a_fork_hook_still_stops_the_worker(open_dir, https, tmp_path,
                                                                  monkeypatch):
    env = hooked(tmp_path, "KACHECKS_TEST_SIGTERM_IN_FORK_HOOK")
    with Worker(cli.command("kachecks"), open_dir / "worker.sock", env=env) as worker:
        monkeypatch.setenv("KACHECKS_WORKER_SOCKET", str(worker.socket))
        done = subprocess.run(cli.command("kachecks-http") + ["--url", https.url, "--verbose"],
                              capture_output=True, text=True, timeout=30)
        stopped = signalled.finish(worker.proc, 10, what="kachecks worker",
                                   sent="SIGTERM, from inside its fork hook")
    assert stopped.returncode == 0, worker.stderr()
    assert "Exception ignored" not in worker.stderr()
    # the run it had forked for still ends there, as runs under way do
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"(run by kachecks worker {worker.pid})" in done.stdout


def test_a_sigterm_handled_on_another_thread_stops_the_worker_waiting_in_accept(open_dir,
                                                                               tmp_path):
    env = hooked(tmp_path, "KACHECKS_TEST_SIGTERM_ON_A_THREAD", "_stop_serving 0.5")
    with Worker(cli.command("kachecks"), open_dir / "worker.sock", env=env) as worker:
        stopped = signalled.finish(worker.proc, 10, what="kachecks worker",
                                   sent="SIGTERM, to a thread of its own, while it waits in accept")
    assert stopped.returncode == 0, worker.stderr()


def test_a_sigterm_handled_on_another_thread_stops_a_check_waiting_for_the_workers_report(
        open_dir, hanging_https, tmp_path):
    env = hooked(tmp_path, "KACHECKS_TEST_SIGTERM_ON_A_THREAD", "_on_signal 1.0")
    with Worker(cli.command("kachecks"), open_dir / "worker.sock") as worker:
        env["KACHECKS_WORKER_SOCKET"] = str(worker.socket)
        check = subprocess.Popen(cli.command("kachecks-http") + [
            "--url", hanging_https.url, "--timeout", "30", "--verbose"], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        done = signalled.finish(check, 10, what="kachecks-http",
                                sent="SIGTERM, to a thread of its own, while the worker runs"
                                     " its check")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "SIGTERM" in done.stdout, done.stdout + done.stderr
    assert "(run by kachecks worker" in done.stdout  # handed over, not run in-process
