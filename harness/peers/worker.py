"""`kachecks worker` on a socket of its own, for tests and the bench: started, awaited, stopped.

    with Worker(cli.command("kachecks"), directory / "worker.sock") as worker:
        ... KACHECKS_WORKER_SOCKET=worker.socket ... worker.pid ...

``launch`` wraps the command line (the bench moves the worker into a cgroup first).
"""

import signal
import subprocess
import time
from pathlib import Path


class WorkerError(RuntimeError):
    """The worker exited or did not listen in time (carries its stderr)."""


class Worker:
    def __init__(self, command, socket, env=None, launch=None, start_timeout=15.0):
        self.command = list(command)  # how to run `kachecks` (its console script, or python + it)
        self.socket = Path(socket)
        self.env = env
        self.launch = launch or (lambda argv: argv)
        self.start_timeout = start_timeout
        self.log = self.socket.with_name(self.socket.name + ".log")
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        argv = self.launch([*map(str, self.command), "worker", "--socket", str(self.socket)])
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + self.start_timeout
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise WorkerError(f"kachecks worker did not listen on {self.socket} within"
                                  f" {self.start_timeout:g} s: {self.stderr()[-300:]}")
            time.sleep(0.05)
        return self

    def stderr(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout=10):
        """SIGTERM and wait: the exit status; WorkerError (after SIGKILL) if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise WorkerError(f"kachecks worker ignored SIGTERM for {timeout} s") from None
