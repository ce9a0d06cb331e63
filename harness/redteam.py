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
  state     what is left to attack in the state directory (temporary names are
            random now): a world-writable one, a link at the state file itself (to
            a file of ours, to /dev/zero), the directory swapped for a link while
            checks run, a path through another user's link, a squatted
            /tmp/kachecks-<uid>; counts files created or overwritten, runs logged.

  fuzz      kachecks-http (--digest, --regex --status, --nagios), kachecks-tcp
            (--send/--expect, --nagios, --agent --dynamic) and kachecks-ldap (the
            reference search, --bind-dn, --nagios), each run against a real peer
            (web1's page from a RawHTTPServer, with a Content-Length or chunked;
            slapd with the reference tree) through a harness.peers.mangler proxy
            that mutates the peer's reply, connection k from (seed, k); counts per
            case: exit codes, controls (untouched replies) that passed, runs without
            exactly one printable status line, tracebacks, internal errors, deaths
            by signal, hangs, runs longer than --timeout + 1 s; then every faulty
            run with its mutations, to be replayed alone with --replay.
  worker    `kachecks worker` attacked (root, network namespaces): which address a
            check started in another namespace reaches the server from; a 0640
            group-readable password file through the worker; a fake worker
            socket of another user (what it receives); malformed replies (exit
            codes, lines, tracebacks); idle connections against delegated checks'
            latency; one uid holding what slots it can with runs that never end,
            and another uid's checks meanwhile; SIGTERM/SIGINT at a random time of a
            delegated check; SIGTERM at a random time to a worker forking without pause
            (clients that connect and hang up): how many it did not act on within 5 s
            (at most 20 workers).
  agent-loris   a slow-loris of 1,020 connections (uid 65534) on an agent limited to
            1,024 descriptors, a real server stopped halfway: descriptors held, when
            its file read 0.
  agent-scrape  500 HTTP checks every 5 s: the share of runs starting within 10 ms of
            due, without and with 4 scrapers of /metrics in a loop.
  agent-body    17 checks without --digest against a peer streaming 100 MiB: agent CPU.
  agent-limits  a pids cgroup (TasksMax) under hung peers: does the agent survive; then a
            process of uid 65534 named kachecks-agent against status, zero, a new agent.

Options: --bin DIR (executables; default as harness.peers.cli finds them),
--trials N (200), --window MS (50), --block (start each check through
``env --block-signal=HUP,INT,TERM``, as a wrapper could, to see what that buys);
--only TRIAL (repeatable; default: every trial), --fuzz N (N HTTP runs, 0.3 N TCP,
0.5 N LDAP; default 1000), --seed S (11), --lanes L (runs at a time, 4),
--budget SECONDS (the fuzz trial starts no run after it; 240), --replay INDEX
(the fuzz trial runs only connection INDEX of each check and tells it in full).
"""

import argparse
import collections
import contextlib
import hashlib
import os
import random
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from harness import agentattacks, checks, otheruser, signalled
from harness.peers import certs, cli, netns
from harness.peers import slapd as ldap_peer
from harness.peers.hostile import Mute
from harness.peers.mangler import Mangler
from harness.peers.rawhttp import RawHTTPServer, http_response
from harness.peers.syslog import SyslogSink
from harness.peers.worker import FakeWorker, Worker
from harness.wait import wait_for

NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT", signal.SIGHUP: "SIGHUP"}
TRACEBACK_MARKS = ("Traceback", "Fatal Python error", "Exception ignored")


class Finished:
    """How a spawned executable ended: code, text output, wall time."""

    def __init__(self, returncode, stdout, stderr, elapsed, lingered=""):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed
        self.lingered = lingered  # signalled.diagnosis of one killed at its timeout

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
    finished = launch(cli.command(name) + [str(a) for a in args], env, timeout, stdout=stdout,
                      preexec_fn=preexec_fn)
    if finished.returncode is None:
        raise AssertionError(f"{name} {' '.join(map(str, args))} still running after"
                             f" {timeout} s; before SIGKILL:\n{finished.lingered}")
    return finished


def launch(command, env, timeout, stdout=subprocess.PIPE, preexec_fn=None):
    """Run ``command`` (stdin from /dev/null) to the end, killing it after ``timeout``
    seconds: a Finished whose ``returncode`` is None if it had to be killed.

    ``env`` adds to this process's environment; a value of None removes that variable.
    """
    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = str(value)
    started = time.monotonic()
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=subprocess.PIPE, env=full_env, preexec_fn=preexec_fn)
    try:
        out, err = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        lingered = signalled.diagnosis(proc.pid)  # what it was stuck in, before the kill
        proc.kill()
        out, err = proc.communicate()
        code = None
    else:
        lingered = ""
    return Finished(code, (out or b"").decode("utf-8", "replace"),
                    err.decode("utf-8", "replace"), time.monotonic() - started, lingered)


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
        done = signalled.stop(proc, signum, 30)
        text = (done.stdout + done.stderr).decode("utf-8", "replace")
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
        deaths += signalled.stop(proc, random.choice(list(NAMES)), 10).returncode < 0
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


class _Flip:
    """A port that refuses until ``up()`` listens on it: the same check goes DOWN, then UP
    (a transition: its state file is rewritten)."""

    def __init__(self):
        self.sock = None
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()

    def up(self):
        if self.sock is None:
            self.sock = socket.socket()
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", self.port))
            self.sock.listen(64)

    def down(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def state(bin_dir, env, scratch):
    """What is left to attack in the state directory, now that temporary names are random
    (kachecks.files.replace): a shared directory, a link at the state file itself, a
    state file that never ends, the directory swapped while checks run, a path through
    another user's link, a squatted /tmp/kachecks-<uid>. Each line counts what the
    attack got: files created or overwritten where they should not be, runs logged."""
    flip = _Flip()
    check = [str(bin_dir / "kachecks-tcp"), f"127.0.0.1:{flip.port}", "--timeout", "1",
             "--quiet"]
    victim = scratch / "victim"
    victim.write_text("a root-owned file\n")
    tmp = scratch / "tmp"
    os.mkdir(tmp, 0o700)
    base = {k: v for k, v in env.items() if k != "XDG_RUNTIME_DIR"}

    def run(state_dir, up=None, command=check, **extra):
        if up is not None:
            flip.up() if up else flip.down()
        run_env = dict(base, KACHECKS_STATE_DIR=str(state_dir), TMPDIR=str(tmp))
        return subprocess.run(command, env={**run_env, **extra}, capture_output=True)

    try:
        shared = scratch / "shared"
        shared.mkdir()
        os.chmod(shared, 0o1777)
        run(shared, up=False)
        run(shared, up=True)
        print(f"state: world-writable KACHECKS_STATE_DIR: {len(os.listdir(shared))} files"
              f" created there in 2 runs (a transition); the state went to"
              f" {sorted(os.listdir(tmp)) or 'nowhere'} under $TMPDIR")

        own = scratch / "own"
        own.mkdir(mode=0o700)
        run(own, up=False)
        [name] = os.listdir(own)
        os.unlink(own / name)
        os.symlink(victim, own / name)
        run(own, up=True)  # a transition: the state file is replaced
        followed = victim.read_text() != "a root-owned file\n"
        print(f"state: the state file a link to another file: victim"
              f" {'OVERWRITTEN' if followed else 'unchanged'}, the link"
              f" {'still there' if (own / name).is_symlink() else 'replaced by a state file'}")

        for entry in os.listdir(own):
            os.unlink(own / entry)
        run(own, up=False)
        for entry in os.listdir(own):
            os.unlink(own / entry)
            os.symlink("/dev/zero", own / entry)
        started = time.monotonic()
        proc = run(own)
        print(f"state: the state file a link to /dev/zero (peer down): exit {proc.returncode} in"
              f" {time.monotonic() - started:.2f} s")

        _swapped_directory(run, scratch)
        _through_a_link_of_another_user(run, scratch)

        squatted = scratch / "tmp2"
        squatted.mkdir(mode=0o700)
        (squatted / f"kachecks-{os.geteuid()}").mkdir(mode=0o777)
        os.chmod(squatted / f"kachecks-{os.geteuid()}", 0o777)
        with SyslogSink(scratch / "log.sock") as log:
            flip.down()
            for _ in range(5):  # refused: DOWN each time; logged once if the state is kept
                run(victim, command=check[:-1], TMPDIR=str(squatted),
                    KACHECKS_SYSLOG_SOCKET=log.path)
            lines = len(log.messages())
        print(f"state: squatted /tmp/kachecks-<uid>: 5 failing runs logged {lines} DOWN"
              f" line(s)")
    finally:
        flip.down()


def _swapped_directory(run, scratch, runs=60):
    """The state directory renamed away and a link to another directory of ours put in its
    place, over and over, while checks go DOWN and UP: what lands in that other directory."""
    parent = scratch / "swapped"
    parent.mkdir(mode=0o700)
    real, away = parent / "state", parent / "state.away"
    real.mkdir(mode=0o700)
    elsewhere = scratch / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    stop = threading.Event()
    swaps = [0]

    def swapper():
        while not stop.is_set():
            try:
                os.rename(real, away)
                os.symlink(elsewhere, real)
                time.sleep(0.001)
                os.unlink(real)
                os.rename(away, real)
                swaps[0] += 1
            except OSError:  # a check made the directory again in the gap: start over
                for path in (real, away):
                    if path.is_symlink():
                        path.unlink()
                if not real.exists() and away.exists():
                    os.rename(away, real)

    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    try:
        for i in range(runs):
            run(real, up=bool(i % 2))
    finally:
        stop.set()
        thread.join(10)
    print(f"state: the state directory swapped for a link {swaps[0]} times during {runs} runs"
          f" (each a transition): {len(os.listdir(elsewhere))} files written where the link"
          f" pointed; the real directory holds {len(os.listdir(real))} state file(s)")


def _through_a_link_of_another_user(run, scratch):
    """KACHECKS_STATE_DIR reached through a symbolic link that another user (nobody) owns
    and may point anywhere, to a private directory of ours: files created there (the way
    to a state directory is judged, not only its last component: none expected)."""
    import pwd

    nobody = pwd.getpwnam("nobody")
    theirs = scratch / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, nobody.pw_uid, nobody.pw_gid)
    private = scratch / "private"
    (private / "state").mkdir(parents=True, mode=0o700)
    os.chmod(private, 0o700)
    link = theirs / "link"
    os.symlink(private, link)
    os.lchown(link, nobody.pw_uid, nobody.pw_gid)
    run(link / "state", up=False)
    run(link / "state", up=True)
    print(f"state: KACHECKS_STATE_DIR through nobody's link to a private directory of ours:"
          f" {len(os.listdir(private / 'state'))} files created there")


# -- fuzz: real peers' replies, mangled --------------------------------------------

FUZZ_SEED = 11
FUZZ_TIMEOUT = 1.0  # every fuzzed run's --timeout
MARGIN = 1.0  # a run may outlast its --timeout by this much (interpreter start and exit)
HANG = 10.0  # a run still going this long after its --timeout is killed: "hung"
FUZZ_SHARES = {"http": 1.0, "tcp": 0.3, "ldap": 0.5}  # runs per --fuzz N, per check
FUZZ_COSTS = {"http": 1, "tcp": 1, "ldap": 3}  # a run's time, relative (ldap3's import)

PLAIN = frozenset((0, 1))
NAGIOS = frozenset((0, 2))  # OK, or CRITICAL: a peer's garbage is never WARNING or UNKNOWN
DYNAMIC = frozenset(range(1, 256))  # down, or 2 + weight

# web1's /service.txt as Apache serves it: with a Content-Length, and chunked.
APACHE_HEADERS = {"Date": "Tue, 04 Nov 2025 10:00:00 GMT", "Server": "Apache/2.4.62 (Debian)",
                  "Last-Modified": "Mon, 03 Nov 2025 09:00:00 GMT",
                  "ETag": '"14-642b0c1e5e1c0"', "Accept-Ranges": "bytes",
                  "Vary": "Accept-Encoding", "Connection": "close",
                  "Content-Type": "text/plain; charset=UTF-8"}
CHUNKED_BODY = b"%x\r\n%s\r\n0\r\n\r\n" % (len(checks.SERVER1), checks.SERVER1)
WEB_REPLIES = (
    http_response(checks.SERVER1, headers=APACHE_HEADERS),
    http_response(CHUNKED_BODY, headers=dict(APACHE_HEADERS, **{"Transfer-Encoding": "chunked"}),
                  content_length=False),
)
# Either passes: keepalived hashes (and kachecks searches) a chunked body as it comes.
WEB_DIGESTS = ["--digest", checks.MD5_SERVER1, "--digest", hashlib.md5(CHUNKED_BODY).hexdigest()]
AGENT_REPLY = b"up 50%\n"


class FuzzCase:
    """One command line run through a mangler in front of the ``peers`` group
    (``web``, ``agent`` or ``ldap``); ``codes``: the exit codes it may end with,
    ``healthy`` the one it gives for the peer's reply untouched."""

    def __init__(self, name, executable, args, codes, peers, env=None, healthy=0):
        self.name = name
        self.executable = executable
        self.args = args
        self.codes = codes
        self.peers = peers
        self.env = env or {}
        self.healthy = healthy

    def command(self, bin_dir, port, timeout):
        return [str(bin_dir / self.executable), *(a.format(port=port) for a in self.args),
                "--timeout", f"{timeout:g}"]


def fuzz_cases(check):
    """The fuzzed command lines of ``check`` (http, tcp, ldap); run k uses case k mod len."""
    url = ["--url", "http://127.0.0.1:{port}/service.txt"]
    send = ["127.0.0.1:{port}", "--send", r"HEAD /service.txt HTTP/1.0\r\n\r\n",
            "--expect", r"^HTTP/1\.[01] 200"]
    ldap = ["--uri", "ldap://127.0.0.1:{port}", *checks.REFERENCE]
    return {
        "http": [FuzzCase("http --digest", "kachecks-http", url + WEB_DIGESTS, PLAIN, "web"),
                 FuzzCase("http --regex --status", "kachecks-http",
                          url + ["--regex", "hello from Server 1", "--status", "200"], PLAIN,
                          "web"),
                 FuzzCase("http --nagios --digest", "kachecks-http",
                          url + WEB_DIGESTS + ["--nagios"], NAGIOS, "web")],
        "tcp": [FuzzCase("tcp --send --expect", "kachecks-tcp", send, PLAIN, "web"),
                FuzzCase("tcp --nagios --send --expect", "kachecks-tcp", send + ["--nagios"],
                         NAGIOS, "web"),
                FuzzCase("tcp --agent --dynamic", "kachecks-tcp",
                         ["127.0.0.1:{port}", "--agent", "--dynamic", "--weight", "10"], DYNAMIC,
                         "agent", healthy=2 + 5)],  # "up 50%" of weight 10
        "ldap": [FuzzCase("ldap (reference search)", "kachecks-ldap", ldap, PLAIN, "ldap"),
                 FuzzCase("ldap --bind-dn", "kachecks-ldap", ldap + ["--bind-dn", ldap_peer.BIND_DN],
                          PLAIN, "ldap", env={"KACHECKS_LDAP_PASSWORD": ldap_peer.BIND_PASSWORD}),
                 FuzzCase("ldap --nagios", "kachecks-ldap", ldap + ["--nagios"], NAGIOS, "ldap")],
    }[check]


def _start_peers(stack, group):
    """(host, port) of each real peer of ``group``, started on ``stack``; its framing."""
    if group == "ldap":
        server = stack.enter_context(ldap_peer.Slapd())
        return [(server.host, server.port)], "ber"
    replies = [AGENT_REPLY] if group == "agent" else WEB_REPLIES
    servers = [stack.enter_context(RawHTTPServer(reply, read_request=group != "agent"))
               for reply in replies]
    return [(srv.host, srv.port) for srv in servers], "stream"


class FuzzRun:
    """One fuzzed run: its case, connection index, what the mangler did, how it ended."""

    def __init__(self, case, index, mutations, finished, timeout):
        self.case = case
        self.index = index
        self.mutations = mutations
        self.finished = finished
        self.timeout = timeout

    @property
    def control(self):
        """The mangler passed the peer's reply on untouched."""
        return self.mutations is not None and not any(m.startswith("frame ")
                                                       for m in self.mutations)

    def faults(self, margin=MARGIN):
        """What is wrong with how it ended, {column: text} (empty: nothing): an exit
        code its mode does not allow, death by signal, a hang, not exactly one
        printable status line (under --nagios with one "|"), a traceback, an internal
        error, more than ``margin`` seconds beyond --timeout, no connection at all."""
        done = self.finished
        found = {}
        if done.returncode is None:
            found["hung"] = f"hung (killed after {done.elapsed:.1f} s)"
        elif done.returncode < 0:
            found["signal"] = f"died by {signal.Signals(-done.returncode).name}"
        elif done.returncode not in self.case.codes:
            found["code"] = f"exit {done.returncode}"
        lines = done.stdout.splitlines()
        if len(lines) != 1:
            found["line"] = f"{len(lines)} stdout lines"
        elif not lines[0].startswith(self.case.name.split()[0].upper() + " "):
            found["line"] = "not a status line"
        elif not lines[0].isprintable():
            found["line"] = "unprintable status line"
        elif self.case.codes is NAGIOS and lines[0].count("|") != 1:
            found["line"] = "not one '|' before the perfdata"
        marks = [mark for mark in TRACEBACK_MARKS if mark in done.output]
        if marks:
            found["traceback"] = ", ".join(marks)
        if "internal error" in done.output:
            found["internal"] = "internal error"
        if done.returncode is not None and done.elapsed > self.timeout + margin:
            found["slow"] = f"took {done.elapsed:.2f} s"
        if self.mutations is None:
            found["connect"] = "never connected"
        return found

    def __repr__(self):
        return (f"{self.case.name} #{self.index}: mutations {self.mutations}; {self.finished}")


def fuzz_runs(check, indexes, *, seed=FUZZ_SEED, lanes=4, timeout=FUZZ_TIMEOUT, bin_dir=None,
              env=None, stop_at=None):
    """Run ``check``'s fuzz cases for connection ``indexes`` through manglers in front of
    real peers; the FuzzRuns, by index.

    ``lanes`` runs go at once, each lane with manglers of its own, so that run k is
    connection k whatever the timing. ``stop_at``: a time.monotonic() after which no
    run starts (the runs not made are left out).
    """
    cases = fuzz_cases(check)
    bin_dir = Path(bin_dir or cli.bin_dir())
    indexes = list(indexes)
    runs = []
    with contextlib.ExitStack() as stack:
        peers = {case.peers: _start_peers(stack, case.peers) for case in cases}
        manglers = [{group: stack.enter_context(Mangler(upstreams, seed, framing))
                     for group, (upstreams, framing) in peers.items()} for _ in range(lanes)]

        def lane(number):
            for index in indexes[number::lanes]:
                if stop_at is not None and time.monotonic() > stop_at:
                    return
                case = cases[index % len(cases)]
                mangler = manglers[number][case.peers]
                mangler.expect(index)
                finished = launch(case.command(bin_dir, mangler.port, timeout),
                                  dict(env or {}, **case.env), timeout + HANG)
                runs.append(FuzzRun(case, index, mangler.mutations(index), finished, timeout))

        threads = [threading.Thread(target=lane, args=(n,)) for n in range(lanes)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return sorted(runs, key=lambda run: run.index)


def fuzz(bin_dir, env, count, seed, lanes, budget, replay=None):
    """The fuzz trial: ``count`` HTTP runs (FUZZ_SHARES of it for the others) and
    their counts, or with ``replay`` connection ``replay`` of each check, in full."""
    started = time.monotonic()
    plan = {check: round(count * share) for check, share in FUZZ_SHARES.items()}
    if replay is not None:
        print(f"fuzz: connection {replay} of each check, seed {seed}, --timeout {FUZZ_TIMEOUT:g}")
    else:
        print(f"fuzz: seed {seed}, --timeout {FUZZ_TIMEOUT:g}, {lanes} runs at a time, no run"
              f" started after {budget:g} s; runs: "
              + ", ".join(f"{check} {n}" for check, n in plan.items()))
        print("  " + " ".join(f"{title:{width}}" for title, width in FUZZ_COLUMNS))
    kinds = collections.Counter()
    told = []
    work = {check: n * FUZZ_COSTS[check] for check, n in plan.items()}
    for check, n in plan.items():
        share = budget * work[check] / (sum(work.values()) or 1)
        runs = fuzz_runs(check, [replay] if replay is not None else range(n), seed=seed,
                         lanes=lanes, bin_dir=bin_dir, env=env, stop_at=time.monotonic() + share)
        for case in fuzz_cases(check) if replay is None else ():
            _fuzz_row(case, [run for run in runs if run.case.name == case.name])
        kinds.update(note.split()[2].rstrip(":") for run in runs for note in run.mutations or ()
                     if note.startswith("frame "))
        told += [run for run in runs if replay is not None or run.faults()]
    print("  mutations drawn: " + ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items())))
    for run in told[:20]:
        print(f"  {run.case.name} #{run.index}: {', '.join(run.faults().values()) or 'no fault'}")
        print(f"      mutations: {'; '.join(run.mutations or ['none'])}")
        print(f"      exit {run.finished.returncode} in {run.finished.elapsed:.2f} s;"
              f" stdout {run.finished.stdout!r}; stderr {run.finished.stderr[-500:]!r}")
    if replay is None:
        print(f"  faulty runs: {len(told)}; {time.monotonic() - started:.0f} s (one of them"
              f" again: --only fuzz --seed {seed} --replay INDEX)")


FUZZ_COLUMNS = (("case", 28), ("runs", 4), ("controls ok", 11), ("exit codes", 26),
                ("bad exit", 8), ("bad line", 8), ("traceback", 9), ("internal", 8),
                ("signal", 6), ("hung", 4), (">t+1s", 5), ("slowest", 7))


def _fuzz_row(case, runs):
    codes = collections.Counter(run.finished.returncode for run in runs)
    text = " ".join(f"{code}:{n}" for code, n in sorted(codes.items(), key=lambda c: (c[0] is None,
                                                                                     c[0] or 0)))
    controls = [run for run in runs if run.control]
    passed = sum(run.finished.returncode == case.healthy for run in controls)
    faults = collections.Counter(column for run in runs for column in run.faults())
    slowest = max((run.finished.elapsed for run in runs), default=0)
    cells = (case.name, len(runs), f"{passed}/{len(controls)}", text, faults["code"],
             faults["line"], faults["traceback"], faults["internal"], faults["signal"],
             faults["hung"], faults["slow"], f"{slowest:.2f} s")
    print(("  " + " ".join(f"{cell:{'' if isinstance(cell, str) else '>'}{width}}"
                           for cell, (_, width) in zip(cells, FUZZ_COLUMNS))).rstrip())


def worker(bin_dir, trials, scratch):
    """The worker trials (see the module's docstring); ``scratch`` must be traversable
    by nobody (the checks of another user connect to a socket in it). What runs as nobody
    is ``bin_dir``'s if nobody can reach it (/usr/bin), else a copy (harness.otheruser:
    a .venv in root's 0700 home, say)."""
    kachecks = [str(bin_dir / "kachecks")]
    http = [str(bin_dir / "kachecks-http")]
    if otheruser.reachable(bin_dir):
        nobodys_http = http
    else:
        (scratch / "other-user").mkdir()
        nobodys_http = otheruser.install(scratch / "other-user").command("kachecks-http")
    pair = certs.self_signed(scratch / "pki", "www.mysite.mydmn.org", alt_names=("127.0.0.1",))
    env = dict(_env(str(scratch / "state")), KACHECKS_WORKER_SOCKET=str(scratch / "worker.sock"))
    os.makedirs(scratch / "state", exist_ok=True)
    with RawHTTPServer(http_response(checks.SERVER1), tls=pair) as server:
        url = server.url
        with Worker(kachecks, scratch / "worker.sock", env=env) as running:
            _worker_namespaces(kachecks, http, pair, env, scratch, trials)
            _worker_groups(nobodys_http, url, server, env, scratch, trials)
            _worker_idle(http, url, env, running, trials)
            _worker_slots(http, url, env, scratch, running, trials)
            _worker_signals(http, pair, env, trials)
        _worker_fakes(http, url, server, env, scratch, trials)
    _worker_stop(kachecks, env, scratch, min(trials, 20))


def _worker_namespaces(kachecks, http, pair, env, scratch, trials):
    netns.cleanup_stale("kcrt")
    prefix = netns.run_prefix("kcrt")
    hosts = {"a": "192.168.8.11", "b": "192.168.8.12", "web1": "192.168.8.101"}
    path = scratch / "worker-b.sock"
    with netns.Network(prefix, hosts) as net:
        net["b"].start([*kachecks, "worker", "--socket", path], log=scratch / "worker-b.log")
        wait_for(path.exists, 15, what="the worker in namespace b")
        server = netns.made_in(net["web1"].name, lambda: RawHTTPServer(
            http_response(checks.SERVER1), host=hosts["web1"], tls=pair))
        outcomes = collections.Counter()
        with server:
            for _ in range(trials):
                done = net["a"].run([*http, "--url", server.url, "--digest", checks.MD5_SERVER1,
                                     "--verbose"], env=dict(env, KACHECKS_WORKER_SOCKET=path))
                outcomes[(done.returncode, "run by kachecks worker" in done.stdout)] += 1
        peers = collections.Counter(server.peers)
    print(f"worker: checks started in namespace a ({hosts['a']}), worker in namespace b"
          f" ({hosts['b']}), server {hosts['web1']}:")
    for (code, delegated), count in sorted(outcomes.items()):
        print(f"  exit {code}, {'run by the worker' if delegated else 'in-process'}: {count}")
    print(f"  connections seen by the server, by source address: {dict(peers)}")


def _worker_groups(http, url, server, env, scratch, trials):
    import pwd

    nobody = pwd.getpwnam("nobody")
    group = 4242  # a supplementary group of the caller only
    password = scratch / "password"
    password.write_text("group-secret\n")
    os.chown(password, 0, group)
    os.chmod(password, 0o640)
    os.chmod(env["KACHECKS_WORKER_SOCKET"], 0o666)
    state_dir = scratch / "nobody-state"
    state_dir.mkdir(exist_ok=True)
    os.chown(state_dir, nobody.pw_uid, nobody.pw_gid)
    as_nobody = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": [group]}
    print(f"worker: a 0640 root:{group} --password-file, the check run as nobody with"
          f" supplementary group {group}:")
    for label, socket_path in (("in-process", "/nonexistent"),
                               ("through the worker", env["KACHECKS_WORKER_SOCKET"])):
        outcomes = collections.Counter()
        for _ in range(trials):
            before = len(server.requests)
            done = subprocess.run([*http, "--url", url, "--user", "monitor", "--password-file",
                                   password, "--verbose"], capture_output=True, text=True,
                                  timeout=30, env=dict(env, KACHECKS_WORKER_SOCKET=socket_path,
                                                       KACHECKS_STATE_DIR=str(state_dir)),
                                  cwd="/", **as_nobody)  # as keepalived starts it
            sent = any(b"Authorization: Basic " in r for r in server.requests[before:])
            outcomes[(done.returncode, "run by kachecks worker" in done.stdout, sent)] += 1
        for (code, delegated, sent), count in sorted(outcomes.items()):
            print(f"  {label:18} exit {code}, {'worker' if delegated else 'in-process'},"
                  f" password sent: {sent}: {count}")
    os.chmod(env["KACHECKS_WORKER_SOCKET"], 0o600)


def _worker_fakes(http, url, server, env, scratch, trials):
    import pwd

    nobody = pwd.getpwnam("nobody")
    secret = "bind-secret-of-the-check"
    home = scratch / "nobody"
    home.mkdir(exist_ok=True)
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    run_env = dict(env, KACHECKS_LDAP_PASSWORD=secret, KACHECKS_HTTP_PASSWORD=secret)
    print("worker: fake workers (the check has KACHECKS_LDAP_PASSWORD in its environment):")
    for label, path, kwargs in (
            ("socket and listener of nobody", home / "fake.sock", {"user": nobody}),
            ("root's socket, nobody listening", scratch / "fake.sock",
             {"listen_uid": nobody.pw_uid})):
        with FakeWorker(path, ["P{pid}", "C0"], **kwargs) as fake:
            before = len(server.requests)
            codes = collections.Counter()
            for _ in range(trials):
                done = spawn(http[0], "--url", url, "--digest", checks.MD5_SERVER1,
                             env=dict(run_env, KACHECKS_WORKER_SOCKET=path))
                codes[done.returncode] += 1
            requests = fake.records("request")
            got_secret = secret in fake.log.read_text()
            fds = sum(r["fds"] for r in requests)
            payload = sum(len(r["payload"]) for r in requests)
        print(f"  {label}: {trials} runs, exit codes {dict(codes)}; the fake received"
              f" {payload} payload bytes, {fds} descriptors, the secret: {got_secret};"
              f" the server answered {len(server.requests) - before} runs in-process")
    print("worker: malformed replies from a trusted (own) fake worker:")
    own = scratch / "own-fake.sock"
    for replies, args in ((["P{pid}", "C999"], []), (["P{pid}", "C2"], []),
                          (["P{pid}", "C255"], []), (["P{pid}", "C-1"], []),
                          (["P{pid}", "Cxyz"], []), (["P{pid}", "C"], []),
                          (["P{pid}", "C4"], ["--nagios"]), (["P{pid}", "C1x"], ["--dynamic"]),
                          (["Pxyz"], []), (["P"], []), (["P-1"], []), (["hello"], []),
                          (["P{pid}", "C9"], ["--dynamic"])):
        outcomes = collections.Counter()
        with FakeWorker(own, replies):
            for _ in range(trials):
                done = spawn(http[0], "--url", url, "--digest", checks.MD5_SERVER1, *args,
                             env=dict(run_env, KACHECKS_WORKER_SOCKET=own))
                traceback = any(mark in done.output for mark in TRACEBACK_MARKS)
                outcomes[(done.returncode, len(done.output.splitlines()), traceback)] += 1
        print(f"  {' '.join(replies):14} {' '.join(args):10} " + ", ".join(
            f"exit {code} with {lines} line{'s' * (lines != 1)}"
            f"{' and a TRACEBACK' if traceback else ''}: {count}"
            for (code, lines, traceback), count in sorted(outcomes.items())))
        os.unlink(own)


class _IdleClients:
    """``count`` connections to a worker socket that send nothing, each replaced as soon
    as the worker drops it (an attacker who keeps them coming); ``dropped`` counts."""

    def __init__(self, path, count):
        self.path, self.count, self.dropped = str(path), count, 0
        self._stop = False
        self._socks = [self._connect() for _ in range(count)]
        self._thread = threading.Thread(target=self._keep, daemon=True)
        self._thread.start()

    def _connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.connect(self.path)
        return sock

    def _keep(self):
        while not self._stop:
            for i, sock in enumerate(self._socks):
                try:
                    if sock.recv(64, socket.MSG_DONTWAIT) == b"":
                        raise ConnectionResetError
                except BlockingIOError:
                    continue
                except OSError:
                    pass
                sock.close()
                self.dropped += 1
                self._socks[i] = self._connect()
            time.sleep(0.05)

    def close(self):
        self._stop = True
        self._thread.join(5)
        for sock in self._socks:
            sock.close()


class SlotHolder:
    """What one user of a worker's socket can do to its slots: ask for runs that do
    not end. Each connection requests ``kachecks-tcp`` against ``port`` (a listener
    that never answers) with ``--timeout`` ``seconds`` and says GO, so the worker's
    child holds a slot until that timeout or until we hang up (it is then signalled).

        with SlotHolder(worker.socket, mute.port, env) as holder:
            holder.hold(64)   # slots taken before the worker declined one
            holder.declined   # the worker's reason, or None

    ``env``: the held runs' environment (str -> str; their state and syslog go there).
    """

    def __init__(self, path, port, env, seconds=600):
        from kachecks.worker import protocol

        self.protocol = protocol
        self.path = str(path)
        self.request = protocol.request(
            "kachecks-tcp", "kachecks-tcp",
            [f"127.0.0.1:{port}", "--expect", "never", "--timeout", str(seconds)],
            {os.fsencode(k): os.fsencode(v) for k, v in env.items()})
        self.held = []
        self.declined = None

    def hold(self, limit, timeout=10.0):
        """Take slots until ``limit`` are held or the worker declines one; how many."""
        stdio = [os.open(os.devnull, os.O_RDWR) for _ in range(3)]
        cwd = os.open("/", os.O_PATH | os.O_DIRECTORY)
        try:
            while len(self.held) < limit:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                sock.settimeout(timeout)
                sock.connect(self.path)
                try:
                    sock.sendmsg([self.request], self.protocol.descriptors([*stdio, cwd]))
                    reply = sock.recv(256)
                except (BrokenPipeError, ConnectionResetError):
                    # declined at once, closed before our request was read: the reset
                    # is reported first, the reason stays queued
                    reply = sock.recv(256)
                if self.protocol.read_ready(reply) is None:
                    self.declined = self.protocol.read_declined(reply)
                    sock.close()
                    break
                sock.send(self.protocol.GO)
                self.held.append(sock)
        finally:
            for fd in (*stdio, cwd):
                os.close(fd)
        return len(self.held)

    def close(self):
        for sock in self.held:
            sock.close()
        self.held = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _worker_idle(http, url, env, running, trials):
    import statistics
    from concurrent.futures import ThreadPoolExecutor

    def one():
        started = time.monotonic()
        done = subprocess.run([*http, "--url", url, "--verbose"], capture_output=True,
                              text=True, timeout=60, env=env)  # returns once stdout closes
        return time.monotonic() - started, done.returncode, "run by kachecks worker" in done.stdout

    print("worker: delegated checks while idle clients (connected, sending nothing, replaced"
          " when dropped) hold the worker; seconds until the check exited and its stdout"
          " closed:")
    for idle_count in (0, 1, 20, 50, 100):
        idle = _IdleClients(running.socket, idle_count)
        started = time.monotonic()
        try:
            with ThreadPoolExecutor(4) as pool:
                runs = list(pool.map(lambda _: one(), range(trials)))
        finally:
            idle.close()
        took = time.monotonic() - started
        times = sorted(t for t, _, _ in runs)
        ok = sum(code == 0 for _, code, _ in runs)
        delegated = sum(d for _, _, d in runs)
        print(f"  {idle_count:3} idle: {trials} checks (4 at a time) in {took:.1f} s, {ok} exit 0,"
              f" {delegated} run by the worker; median {statistics.median(times):.3f} s,"
              f" 95th {times[int(len(times) * 0.95) - 1 if len(times) > 1 else 0]:.3f} s,"
              f" max {times[-1]:.3f} s; the worker dropped {idle.dropped} idle clients")


def _worker_slots(http, url, env, scratch, running, trials):
    import pwd

    nobody = pwd.getpwnam("nobody")
    state_dir = scratch / "nobody-state"
    state_dir.mkdir(exist_ok=True)
    os.chown(state_dir, nobody.pw_uid, nobody.pw_gid)
    os.chmod(running.socket, 0o666)
    held_env = {"KACHECKS_STATE_DIR": env["KACHECKS_STATE_DIR"],
                "KACHECKS_SYSLOG_SOCKET": env["KACHECKS_SYSLOG_SOCKET"]}
    outcomes = collections.Counter()
    with Mute() as mute, SlotHolder(running.socket, mute.port, held_env) as holder:
        held = holder.hold(1024)
        for _ in range(trials):
            done = subprocess.run([*http, "--url", url, "--verbose"], capture_output=True,
                                  text=True, timeout=60,
                                  env=dict(env, KACHECKS_STATE_DIR=str(state_dir)),
                                  user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])
            outcomes[(done.returncode, "run by kachecks worker" in done.stdout)] += 1
    os.chmod(running.socket, 0o600)
    print(f"worker: one uid ({os.geteuid()}) asks for runs that never end (kachecks-tcp against a"
          f" mute peer, --timeout 600) until declined: it holds {held} slots (declined:"
          f" {holder.declined!r}); meanwhile {trials} checks of another uid (nobody):")
    for (code, delegated), count in sorted(outcomes.items()):
        print(f"  exit {code}, {'run by the worker' if delegated else 'in-process'}: {count}")


def _worker_signals(http, pair, env, trials):
    print("worker: SIGTERM/SIGINT to a delegated check (server never answers, --timeout 20),"
          " at a random time: after the interpreter's start-up (50..400 ms), and from exec on"
          " (0..400 ms) through env --block-signal (docs/checks.md; the window before it is the"
          " signals trial's):")
    with RawHTTPServer(b"", tls=pair, hang=True) as server:
        command = [*http, "--url", f"https://127.0.0.1:{server.port}/", "--timeout", "20"]
        for label, prefix, earliest in (("plain", [], 0.05), ("blocked", BLOCK, 0.0)):
            outcomes = collections.Counter()
            worst = 0.0
            for _ in range(trials):
                signum = random.choice([signal.SIGTERM, signal.SIGINT])
                proc = subprocess.Popen([*prefix, *command], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=env)
                time.sleep(random.uniform(earliest, 0.4))
                sent = time.monotonic()
                done = signalled.stop(proc, signum, 30)
                worst = max(worst, time.monotonic() - sent)
                text = (done.stdout + done.stderr).decode("utf-8", "replace")
                outcome = (f"died by {signal.Signals(-proc.returncode).name}"
                           if proc.returncode < 0 else f"exit {proc.returncode}")
                outcome += f", {len(text.splitlines())} line(s)"
                if any(mark in text for mark in TRACEBACK_MARKS):
                    outcome += " with traceback"
                outcomes[(NAMES[signum], outcome)] += 1
            for (name, outcome), count in sorted(outcomes.items()):
                print(f"  {label:8} {name:8} {outcome:34} {count}")
            print(f"  {label:8} slowest exit after the signal: {worst:.3f} s")


def _worker_stop(kachecks, env, scratch, trials):
    """A SIGTERM that lands while the worker forks (Python runs logging's fork hooks
    there) must stop it as any other does."""
    lost, worst = [], 0.0
    for trial in range(trials):
        with Worker(kachecks, scratch / f"stop-{trial}.sock", env=env) as running:
            done = threading.Event()

            def hang_up(path=str(running.socket), done=done):
                while not done.is_set():
                    try:
                        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as client:
                            client.connect(path)  # the worker forks a child for it
                    except OSError:
                        time.sleep(0.001)

            clients = [threading.Thread(target=hang_up) for _ in range(2)]
            for client in clients:
                client.start()
            time.sleep(random.uniform(0.2, 0.6))
            sent = time.monotonic()
            try:
                signalled.stop(running.proc, signal.SIGTERM, 5, what="kachecks worker")
                worst = max(worst, time.monotonic() - sent)
            except signalled.Lingered:
                lost.append((running.stderr().strip().splitlines() or [""])[-1])
            done.set()
            for client in clients:
                client.join()
    print(f"worker: SIGTERM at a random time (0.2..0.6 s) to a worker forking for clients"
          f" that hang up at once: {len(lost)} of {trials} not acted on within 5 s"
          f" (slowest exit of the others: {worst:.3f} s)")
    for last_line in lost:
        print(f"  its stderr's last line: {last_line}")


TRIALS = ("signals", "files", "state", "fuzz", "worker", "notify-burst", "agent-loris",
          "agent-scrape", "agent-body", "agent-limits")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", type=Path,
                        default=cli.bin_dir())
    parser.add_argument("--trials", type=int, default=None,
                        help="attempts per trial (200; notify-burst: bursts, 10)")
    parser.add_argument("--window", type=float, default=50)
    parser.add_argument("--block", action="store_true")
    parser.add_argument("--only", action="append", choices=TRIALS,
                        help="run only this trial (repeatable; default: every trial)")
    parser.add_argument("--fuzz", type=int, default=1000, metavar="N",
                        help="fuzz: N HTTP runs, 0.3 N TCP, 0.5 N LDAP (0: no fuzz trial)")
    parser.add_argument("--seed", type=int, default=FUZZ_SEED, help="fuzz: the mangler's seed")
    parser.add_argument("--lanes", type=int, default=4, help="fuzz: runs at a time")
    parser.add_argument("--budget", type=float, default=240, metavar="SECONDS",
                        help="fuzz: start no run after this many seconds (shared by the checks"
                             " by their expected work)")
    parser.add_argument("--replay", type=int, metavar="INDEX",
                        help="fuzz: run connection INDEX of each check alone and tell it in full")
    args = parser.parse_args(argv)
    only = set(args.only or TRIALS)
    trials = args.trials or 200
    with tempfile.TemporaryDirectory(prefix="kachecks-redteam-") as scratch:
        scratch = Path(scratch)
        os.chmod(scratch, 0o755)  # nobody's checks reach the worker's socket in it
        state_dir = scratch / "state"
        state_dir.mkdir()
        env = _env(str(state_dir))
        with Mute() as mute:
            if "signals" in only:
                signals(args.bin, trials, args.window, env, mute, args.block)
            if "files" in only:
                files(args.bin, env, scratch, mute)
        if "state" in only:
            state(args.bin, env, scratch)
        if "fuzz" in only and (args.fuzz > 0 or args.replay is not None):
            fuzz(args.bin, env, args.fuzz, args.seed, args.lanes, args.budget, args.replay)
        if "worker" in only:
            worker(args.bin, trials, scratch)
        if "notify-burst" in only:
            from harness import notifyburst

            notifyburst.trial(bursts=args.trials or 10)
        for name in ("loris", "scrape", "body", "limits"):  # harness.agentattacks
            if f"agent-{name}" in only:
                getattr(agentattacks, f"trial_{name}")(str(scratch))


if __name__ == "__main__":
    main()
