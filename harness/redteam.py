"""Red-team attacks on the check executables: what the tests run, and the trials' figures.

``spawn`` runs an executable as keepalived would (a fresh process, the real
console script; ``KACHECKS_BIN_DIR=/usr/bin`` for the installed package) and
says how it ended; ``assert_clean`` is what every attack must leave: no
traceback, no interpreter complaint.

``python -m harness.redteam`` repeats the trials and prints counts, since
random timings give no pass/fail that holds on a loaded machine:

  signals   N checks, each sent SIGTERM, SIGINT or SIGHUP at a random time in
            the first WINDOW ms after exec; counts exit codes, deaths by
            signal and tracebacks; and how often a bare interpreter whose first
            line catches the signals still dies (the part no Python code covers).
  files     FIFO, /dev/zero and an 8 GiB sparse file as --password-file /
            --ca-file: time to exit.
  state     world-writable state directory with planted *.state.<pid>.tmp
            links, *.state -> /dev/zero, a squatted /tmp/kachecks-<uid>.

Options: --bin DIR (executables; default as harness.peers.cli finds them),
--trials N (200), --window MS (50), --block (start each check through
``env --block-signal=HUP,INT,TERM``, as a wrapper could, to see what that buys).
"""

import argparse
import collections
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.peers import cli
from harness.peers.hostile import Mute
from harness.peers.syslog import SyslogSink

NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT", signal.SIGHUP: "SIGHUP"}
TRACEBACK_MARKS = ("Traceback", "Fatal Python error", "Exception ignored")


class Finished:
    """How a spawned executable ended: code, text output, wall time."""

    def __init__(self, returncode, stdout, stderr, elapsed):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed

    @property
    def output(self):
        return self.stdout + self.stderr

    def __repr__(self):
        return (f"Finished(rc={self.returncode}, {self.elapsed:.2f} s, stdout={self.stdout!r},"
                f" stderr={self.stderr!r})")


def spawn(name, *args, env=None, stdout=subprocess.PIPE, preexec_fn=None, timeout=20):
    """Run executable ``name`` to the end and say how it ended; AssertionError if it
    is still running after ``timeout`` seconds (it is killed).

    ``env`` adds to this process's environment; a value of None removes that variable.
    """
    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = str(value)
    started = time.monotonic()
    proc = subprocess.Popen(cli.command(name) + [str(a) for a in args], stdin=subprocess.DEVNULL,
                            stdout=stdout, stderr=subprocess.PIPE, env=full_env,
                            preexec_fn=preexec_fn)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"{name} {' '.join(map(str, args))} still running after"
                             f" {timeout} s") from None
    return Finished(proc.returncode, (out or b"").decode("utf-8", "replace"),
                    err.decode("utf-8", "replace"), time.monotonic() - started)


def assert_clean(finished):
    """No traceback, no interpreter complaint: at most plain one-line messages."""
    for mark in TRACEBACK_MARKS:
        assert mark not in finished.output, finished


def single_line(text):
    """The one line of ``text``, asserting there is exactly one."""
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


# -- the trials ---------------------------------------------------------------------

def _env(state):
    env = dict(os.environ)
    env.update(KACHECKS_STATE_DIR=state, KACHECKS_SYSLOG_SOCKET="/nonexistent",
               KACHECKS_WORKER_SOCKET="/nonexistent")
    return env


BLOCK = ["/usr/bin/env", "--block-signal=HUP,INT,TERM"]


def signals(bin_dir, trials, window, env, mute, block=False):
    port = mute.port
    outcomes = collections.Counter()
    command = [*(BLOCK if block else []), str(bin_dir / "kachecks-tcp"), f"127.0.0.1:{port}",
               "--expect", "never", "--timeout", "10"]
    for _ in range(trials):
        signum = random.choice(list(NAMES))
        delay = random.uniform(0, window / 1000)
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        time.sleep(delay)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
        text = (out + err).decode("utf-8", "replace")
        if proc.returncode < 0:
            outcome = f"died by {signal.Signals(-proc.returncode).name}"
        else:
            outcome = f"exit {proc.returncode}"
        if "Traceback" in text or "Fatal Python error" in text:
            outcome += " with traceback"
        outcomes[(NAMES[signum], outcome)] += 1
    print(f"signals: {trials} trials, random time in the first {window} ms after exec"
          + (" (started through env --block-signal)" if block else ""))
    for (name, outcome), count in sorted(outcomes.items()):
        print(f"  {name:8} {outcome:30} {count}")
    python = _interpreter(bin_dir / "kachecks-tcp")
    bare = _bare_interpreter_window([*(BLOCK if block else []), python], trials, window, env)
    print(f"  a bare interpreter whose first line catches the signals dies in {bare} of"
          f" {trials} such trials ({python}): the part no Python code can cover")


def _interpreter(script):
    """The interpreter a script's ``#!`` line names (the same start-up as the check's)."""
    with open(script) as handle:
        return handle.readline()[2:].split()[0]


def _bare_interpreter_window(interpreter, trials, window, env):
    code = ("import _signal\nfor s in (1, 2, 15): _signal.signal(s, lambda *a: None)\n"
            "_signal.pthread_sigmask(_signal.SIG_UNBLOCK, (1, 2, 15))\n"
            "import time\ntime.sleep(0.2)\n")
    deaths = 0
    for _ in range(trials):
        proc = subprocess.Popen([*interpreter, "-c", code], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(random.uniform(0, window / 1000))
        proc.send_signal(random.choice(list(NAMES)))
        deaths += proc.wait(timeout=10) < 0
    return deaths


def files(bin_dir, env, scratch, mute):
    port = mute.port
    fifo = scratch / "fifo"
    os.mkfifo(fifo, 0o600)
    sparse = scratch / "sparse"
    with open(sparse, "wb") as handle:
        handle.truncate(8 << 30)
    os.chmod(sparse, 0o600)
    print("files: --timeout 1; seconds to exit, exit code")
    for label, path in (("FIFO", fifo), ("/dev/zero", "/dev/zero"), ("8 GiB sparse", sparse)):
        for option, extra in (("--password-file", ["--user", "monitor"]), ("--ca-file", [])):
            url = f"http{'s' if option == '--ca-file' else ''}://127.0.0.1:{port}/"
            started = time.monotonic()
            try:
                proc = subprocess.run([str(bin_dir / "kachecks-http"), "--url", url, *extra, option,
                                       str(path), "--timeout", "1"], capture_output=True,
                                      env=env, timeout=30)
                code = proc.returncode
            except subprocess.TimeoutExpired:
                code = "still running after 30 s"
            print(f"  {label:13} {option:16} {time.monotonic() - started:6.2f} s  {code}")


def state(bin_dir, env, scratch):
    # A port that refuses until we listen on it: the same command goes DOWN, then UP.
    flip = socket.socket()
    flip.bind(("127.0.0.1", 0))
    check = [str(bin_dir / "kachecks-tcp"), f"127.0.0.1:{flip.getsockname()[1]}",
             "--timeout", "1", "--quiet"]
    shared = scratch / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    victim = scratch / "victim"
    victim.write_text("a root-owned file\n")
    run_env = dict(env, KACHECKS_STATE_DIR=str(shared), TMPDIR=str(scratch / "tmp"))
    os.mkdir(scratch / "tmp", 0o700)
    subprocess.run(check, env=run_env, capture_output=True)  # DOWN
    created = sorted(os.listdir(shared))
    last = int(Path("/proc/sys/kernel/ns_last_pid").read_text())
    planted = 0
    for name in created:  # the attacker's links at the next pids' temporary names
        for pid in range(last + 1, last + 300):
            os.symlink(victim, shared / f"{name}.{pid}.tmp")
            planted += 1
    flip.listen(8)
    subprocess.run(check, env=run_env, capture_output=True)  # UP: the state file is rewritten
    flip.close()
    print(f"state: world-writable dir: files the check created there: {created or 'none'};"
          f" {planted} links planted; victim now {victim.read_text()!r}")
    own = scratch / "own"
    own.mkdir(mode=0o700)
    run_env = dict(env, KACHECKS_STATE_DIR=str(own))
    subprocess.run(check, env=run_env, capture_output=True)
    for name in os.listdir(own):
        os.unlink(own / name)
        os.symlink("/dev/zero", own / name)
    started = time.monotonic()
    proc = subprocess.run(check, env=run_env, capture_output=True)
    print(f"state: *.state -> /dev/zero (peer down): exit {proc.returncode} in"
          f" {time.monotonic() - started:.2f} s")
    squatted = scratch / "tmp2"
    squatted.mkdir(mode=0o700)
    (squatted / f"kachecks-{os.geteuid()}").mkdir(mode=0o777)
    os.chmod(squatted / f"kachecks-{os.geteuid()}", 0o777)
    with SyslogSink(scratch / "log.sock") as log:
        run_env = dict(env, KACHECKS_STATE_DIR=str(victim), TMPDIR=str(squatted),
                       KACHECKS_SYSLOG_SOCKET=log.path)
        run_env.pop("XDG_RUNTIME_DIR", None)
        for _ in range(5):
            subprocess.run(check[:-1], env=run_env, capture_output=True)  # refused: DOWN each time
        lines = len(log.messages())
    print(f"state: squatted /tmp/kachecks-<uid>: 5 failing runs logged {lines} DOWN line(s)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", type=Path,
                        default=cli.bin_dir())
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--window", type=float, default=50)
    parser.add_argument("--block", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        state_dir = scratch / "state"
        state_dir.mkdir()
        env = _env(str(state_dir))
        with Mute() as mute:
            signals(args.bin, args.trials, args.window, env, mute, args.block)
            files(args.bin, env, scratch, mute)
        state(args.bin, env, scratch)


if __name__ == "__main__":
    main()
