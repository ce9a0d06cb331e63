"""Attacks on `kachecks agent`, as the tests and the red-team trials run them.

Each attacker is what an unprivileged local user (or a greedy scraper, or the
limits a unit sets) can do to a running agent, bounded in count and time:

    with SlowLoris(port, 1020) as loris:     # uid 65534 holds what connections it can
        ...
        loris.report()                       # attempts, most open at once, dropped ones
    with TaskLimit(3) as limit:              # a pids cgroup: thread creation fails
        limit.add(agent.pid)
    with SpoofedName("kachecks-agent") as spoof:   # uid 65534, /proc/PID/comm spoofed
        spoof.pid
    with Scrapers(port, 4) as scrapers:      # GET /metrics in a loop, four at a time
        scrapers.served

plus ``descriptors(pid)``, ``threads(pid)`` and ``cpu_seconds(pid)`` from /proc.
"""

import errno
import json
import mmap
import os
import resource
import selectors
import signal
import socket
import struct
import subprocess
import threading
import time

from harness import signalled

NOBODY = 65534
CLK_TCK = os.sysconf("SC_CLK_TCK")


def descriptors(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid):
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """User + system CPU time of ``pid`` so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def _as_nobody(limit_files):
    """In a forked child: enough descriptors for the attack, then uid/gid 65534."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit_files, limit_files))
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


class SlowLoris:
    """``count`` connections to ``port`` from a forked process running as uid 65534, each
    sending a request line and then one header byte every ``drip`` seconds, never ending
    its request; a connection the server closes is opened again (at most ``count``
    new ones a second). ``progress()`` while it runs and ``report()`` after the ``with``:
    attempts, the most connections open at once, and how many the server dropped."""

    def __init__(self, port, count, drip=4.0, host="127.0.0.1"):
        self.address = (host, port)
        self.count = count
        self.drip = drip
        self.pid = None
        self._result = None
        self._read = None
        self._shared = mmap.mmap(-1, 8 * len(self.FIELDS))  # the child's counters, live

    FIELDS = ("attempts", "most_open", "dropped", "open_at_end")

    def progress(self):
        return dict(zip(self.FIELDS, struct.unpack(f"{len(self.FIELDS)}q", self._shared[:])))

    def __enter__(self):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the attacker: no exec, the harness is already loaded
            code = 1
            try:
                os.close(read)
                _as_nobody(self.count + 64)
                report = self._attack()
                os.write(write, json.dumps(report).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        self.pid, self._read = pid, read
        return self

    PENDING = 4  # connects in progress at once: never more than a small backlog holds

    def _attack(self):
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        selector = selectors.DefaultSelector()
        open_now = {}  # socket -> when it dripped last (0: connected, nothing sent yet)
        connecting = set()
        attempts = dropped = most = 0
        budget, second = self.count, time.monotonic()

        def gone(sock):
            selector.unregister(sock)
            open_now.pop(sock, None)
            connecting.discard(sock)
            sock.close()

        while not stop:
            now = time.monotonic()
            if now - second >= 1:
                budget, second = self.count, now
            # one connect after the other (a few at a time), as the server takes them: a
            # burst into a full backlog would only wait for SYN retransmissions
            while (len(open_now) + len(connecting) < self.count and budget > 0
                   and len(connecting) < self.PENDING):
                budget -= 1
                attempts += 1
                sock = socket.socket()
                sock.setblocking(False)
                try:
                    sock.connect(self.address)
                except BlockingIOError:
                    pass
                except OSError:
                    sock.close()
                    dropped += 1
                    continue
                connecting.add(sock)
                selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            most = max(most, len(open_now))
            self._shared[:] = struct.pack(f"{len(self.FIELDS)}q", attempts, most, dropped,
                                          len(open_now))
            for key, _events in selector.select(0.2):
                sock = key.fileobj
                if sock in connecting:
                    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        gone(sock)
                        dropped += 1
                        continue
                    connecting.discard(sock)
                    open_now[sock] = 0.0
                    selector.modify(sock, selectors.EVENT_READ)
                    continue
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:  # closed by the server: dropped
                    gone(sock)
                    dropped += 1
            now = time.monotonic()
            for sock, last in list(open_now.items()):
                if now - last >= self.drip:
                    try:
                        sock.send(b"GET /metrics HTTP/1.1\r\nX-Slow: " if not last else b"a")
                    except OSError:
                        continue  # gone: the read side says
                    open_now[sock] = now
        return {"attempts": attempts, "most_open": most, "dropped": dropped,
                "open_at_end": len(open_now)}

    def __exit__(self, *exc):
        if self.pid is not None:
            # its report is a few numbers: written whole into the pipe before it exits
            signalled.stop_pids([self.pid], signal.SIGTERM, 10, what="the slow-loris attacker",
                                reap=True)
            data = b""
            while chunk := os.read(self._read, 65536):
                data += chunk
            os.close(self._read)
            self._result = json.loads(data) if data else None
            self.pid = None

    def report(self):
        return self._result


class SpoofedName:
    """A process of uid 65534 whose /proc/PID/comm reads ``name`` (prctl PR_SET_NAME), as
    any local user can make one; it sleeps until the ``with`` ends."""

    CODE = ("import ctypes, sys, time\n"
            "ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)\n"
            "print('ready', flush=True)\n"
            "time.sleep(600)\n")

    def __init__(self, name):
        self.name = name
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def __enter__(self):
        self.proc = subprocess.Popen(["/usr/bin/python3", "-c", self.CODE, self.name],
                                     stdout=subprocess.PIPE, user=NOBODY, group=NOBODY,
                                     extra_groups=[], cwd="/")
        assert self.proc.stdout.readline() == b"ready\n"
        return self

    def __exit__(self, *exc):
        signalled.stop(self.proc, signal.SIGKILL, 5, what="the spoofed-name process")


class TaskLimit:
    """A pids cgroup holding at most ``limit`` tasks (threads count), as systemd's TasksMax
    sets: cgroup v2 where the pids controller is there, else cgroup v1's pids hierarchy.
    ``available()`` says which, or why neither."""

    V2 = "/sys/fs/cgroup"
    V1 = "/sys/fs/cgroup/pids"

    def __init__(self, limit):
        self.limit = limit
        self.path = None

    @classmethod
    def hierarchy(cls):
        """(path, "cgroup v2"|"cgroup v1") where a pids cgroup can be made, or (None, why)."""
        try:
            with open(os.path.join(cls.V2, "cgroup.subtree_control")) as handle:
                if "pids" in handle.read().split():
                    return cls.V2, "cgroup v2"
        except OSError:
            pass
        if os.path.exists(os.path.join(cls.V1, "cgroup.procs")):  # v1's pids hierarchy
            return cls.V1, "cgroup v1"
        return None, "no pids cgroup controller (neither cgroup v2 with pids nor v1's pids)"

    def __enter__(self):
        root, why = self.hierarchy()
        if root is None:
            raise OSError(errno.ENOTSUP, why)
        self.path = os.path.join(root, f"kachecks-tasks-{os.getpid()}-{id(self):x}")
        os.mkdir(self.path)
        self.set(self.limit)
        return self

    def set(self, limit):
        """A new limit (None: no limit)."""
        with open(os.path.join(self.path, "pids.max"), "w") as handle:
            handle.write("max" if limit is None else str(limit))

    def add(self, pid):
        with open(os.path.join(self.path, "cgroup.procs"), "w") as handle:
            handle.write(str(pid))

    def __exit__(self, *exc):
        with open(os.path.join(self.path, "cgroup.procs")) as handle:
            pids = handle.read().split()
        parent = os.path.join(os.path.dirname(self.path), "cgroup.procs")
        for pid in pids:  # back where they came from, so the cgroup can go
            try:
                with open(parent, "w") as handle:
                    handle.write(pid)
            except OSError:
                pass
        end = time.monotonic() + 5
        while True:
            try:
                os.rmdir(self.path)
                return
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)


class Scrapers:
    """``count`` threads each GETting ``path`` from ``port`` in a loop until the ``with``
    ends; ``served`` responses, ``failed`` attempts, ``bytes`` received."""

    def __init__(self, port, count, path="/metrics", host="127.0.0.1"):
        self.address = (host, port)
        self.count = count
        self.request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        self.served = self.failed = self.bytes = 0
        self._stop = threading.Event()
        self._threads = []
        self._lock = threading.Lock()

    def __enter__(self):
        for number in range(self.count):
            thread = threading.Thread(target=self._scrape, daemon=True,
                                      name=f"scraper-{number}")
            thread.start()
            self._threads.append(thread)
        return self

    def _scrape(self):
        while not self._stop.is_set():
            try:
                with socket.create_connection(self.address, timeout=10) as sock:
                    sock.sendall(self.request)
                    size = 0
                    while chunk := sock.recv(1 << 16):
                        size += len(chunk)
                ok = size > 0
            except OSError:
                ok, size = False, 0
            with self._lock:
                self.served += ok
                self.failed += not ok
                self.bytes += size
            if not ok:
                time.sleep(0.05)

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(15)


# -- the trials (python -m harness.redteam --only agent-…) ----------------------------

NOFILE_1024 = "import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))"


def _metrics(port, timeout=30):
    """{(name, le): value} of the endpoint's lateness histogram and the page's size."""
    from prometheus_client.parser import text_string_to_metric_families

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(1 << 16):
            data += chunk
    text = data.partition(b"\r\n\r\n")[2].decode()
    buckets = {}
    for family in text_string_to_metric_families(text):
        if family.name == "kachecks_agent_run_lateness_seconds":
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    buckets[float(sample.labels["le"])] = sample.value
    return buckets, len(data)


def on_time_share(before, after, bound=0.01):
    """Share of the runs between two lateness histograms that started within ``bound`` s."""
    runs = after[float("inf")] - before[float("inf")]
    return (after[bound] - before[bound]) / runs if runs else float("nan"), int(runs)


def _agent(workdir, checks, **kw):
    from harness.peers.agent import AgentProcess

    os.makedirs(workdir, exist_ok=True)
    return AgentProcess(workdir, checks, **kw)


def trial_loris(scratch, count=1020, attack=20.0, stop_at=None):
    """A slow-loris of ``count`` connections (uid 65534) on an agent limited to 1,024
    descriptors; web1 stops ``stop_at`` seconds in (halfway by default): how many
    connections the agent held, and when web1's file read 0."""
    stop_at = attack / 2 if stop_at is None else stop_at
    from harness.checks import SERVER1
    from harness.peers.agent import http_check
    from harness.peers.ports import free_port
    from harness.peers.rawhttp import RawHTTPServer, http_response

    port = free_port()
    web = RawHTTPServer(http_response(SERVER1)).start()
    agent = _agent(os.path.join(scratch, "loris"), [http_check("web1", web)],
                   metrics=f"127.0.0.1:{port}", interval=1, timeout=0.5, preamble=NOFILE_1024)
    most = 0
    with agent:
        agent.wait_value("web1", "1\n")
        with SlowLoris(port, count, drip=2.0) as loris:
            started = time.monotonic()
            stopped = down = None
            while time.monotonic() - started < attack:
                most = max(most, descriptors(agent.pid))
                if stopped is None and time.monotonic() - started >= stop_at:
                    web.stop()
                    stopped = time.monotonic()
                if stopped is not None and down is None and agent.value("web1") == "0\n":
                    down = time.monotonic() - stopped
                time.sleep(0.05)
            still = agent.proc.poll() is None
        report = loris.report()
    print(f"agent-loris: {count} connections from uid 65534 (one byte every 2 s) for"
          f" {attack:g} s against an agent limited to 1,024 descriptors (interval 1 s,"
          f" timeout 0.5 s):")
    print(f"  attacker: {report['attempts']} connects, at most {report['most_open']} open at"
          f" once, {report['dropped']} dropped by the agent")
    print(f"  agent: at most {most} descriptors; still running: {'yes' if still else 'no'}")
    print(f"  web1 stopped {stop_at:g} s in: its file read 0 "
          + (f"{down:.2f} s later" if down is not None else "never (stayed 1: fail-open)"))


def trial_scrape(scratch, checks=500, scrapers=4, window=20.0):
    """``checks`` HTTP checks every 5 s; the share of runs starting within 10 ms of when
    they were due, without and with ``scrapers`` GETting /metrics in a loop."""
    from harness.checks import SERVER1
    from harness.peers.agent import http_check
    from harness.peers.ports import free_port
    from harness.peers.rawhttp import http_response
    from harness.peers.responder import Responder

    port = free_port()
    with Responder(http_response(SERVER1)) as web:
        agent = _agent(os.path.join(scratch, "scrape"),
                       [http_check(f"web{i}", web) for i in range(checks)],
                       metrics=f"127.0.0.1:{port}", interval=5, timeout=2)
        with agent:
            agent.wait_status(lambda d: all(c["runs"] >= 1 for c in d["checks"]), timeout=60,
                              what="every check's first run")
            quiet, _ = _metrics(port)
            time.sleep(window)
            loud, size = _metrics(port)
            cpu = cpu_seconds(agent.pid)
            with Scrapers(port, scrapers) as scraping:
                time.sleep(window)
            end, _ = _metrics(port)
            cpu = cpu_seconds(agent.pid) - cpu
    alone, runs_alone = on_time_share(quiet, loud)
    scraped, runs_scraped = on_time_share(loud, end)
    print(f"agent-scrape: {checks} HTTP checks every 5 s; runs started within 10 ms of due:")
    print(f"  no scraper:          {alone:6.1%} of {runs_alone} runs in {window:g} s")
    print(f"  {scrapers} scrapers in a loop: {scraped:6.1%} of {runs_scraped} runs in"
          f" {window:g} s; {scraping.served} scrapes of {size // 1024} KiB served"
          f" ({scraping.failed} failed); agent CPU {cpu / window:.2f} cores")


def trial_body(scratch, checks=17, size=100 << 20, window=20.0):
    """``checks`` checks without --digest against a peer streaming ``size`` bytes: the
    agent's CPU."""
    from harness.peers.rawhttp import RawHTTPServer, body_stream

    stream, _ = body_stream(size)
    with RawHTTPServer(stream) as web:
        command = f"kachecks-http --url http://{web.address}/ --timeout 4"
        agent = _agent(os.path.join(scratch, "body"),
                       [{"name": f"big{i}", "command": command} for i in range(checks)],
                       interval=5, timeout=4)
        with agent:
            time.sleep(6)  # every check has started once
            cpu, wall = cpu_seconds(agent.pid), time.monotonic()
            time.sleep(window)
            cpu, wall = cpu_seconds(agent.pid) - cpu, time.monotonic() - wall
            runs = sum(c["runs"] for c in agent.status()["checks"])
            up = sum(c["up"] for c in agent.status()["checks"])
    print(f"agent-body: {checks} checks without --digest every 5 s, each reply"
          f" {size >> 20} MiB: agent CPU {cpu / wall:.2f} cores over {wall:.0f} s;"
          f" {runs} runs so far, {up} checks up")


def trial_limits(scratch):
    """A pids cgroup (TasksMax) of 4 tasks, 6 hung peers and one real server for 15 s;
    then a spoofed process name against zero, status and a new agent."""
    from harness.checks import SERVER1
    from harness.peers.agent import http_check, run_agent_cli
    from harness.peers.hostile import Mute
    from harness.peers.rawhttp import RawHTTPServer, http_response

    root, how = TaskLimit.hierarchy()
    with RawHTTPServer(http_response(SERVER1)) as web:
        if root is None:
            print(f"agent-limits: task limit not tried: {how}")
        else:
            with Mute() as mute, TaskLimit(4) as limit:
                hung = [{"name": f"hung{i}", "command": f"kachecks-tcp 127.0.0.1:{mute.port}"
                         " --expect x"} for i in range(6)]
                agent = _agent(os.path.join(scratch, "tasks"), [*hung, http_check("web1", web)],
                               interval=2, timeout=1.9)
                agent.start()
                limit.add(agent.pid)
                time.sleep(15)
                alive = agent.proc.poll() is None
                unstarted = 0
                if alive:
                    document = agent.status()
                    unstarted = sum("could not start" in (c["reason"] or "")
                                    for c in document["checks"])
                code = agent.stop() if alive else agent.proc.returncode
            print(f"agent-limits: {how} pids.max 4 (main thread + 3), 6 hung peers and web1,"
                  f" 15 s: agent {'still running' if alive else 'exited'} (exit {code});"
                  f" {unstarted} checks last failed with 'could not start'")
        agent = _agent(os.path.join(scratch, "spoof"), [http_check("web1", web)],
                       interval=0.5, timeout=0.3)
        with agent:
            agent.wait_value("web1", "1\n")
            agent.stop(signal.SIGKILL, 5)
        with SpoofedName("kachecks-agent") as spoof:
            status_file = os.path.join(agent.track, ".kachecks-agent.json")
            with open(status_file) as handle:
                document = json.load(handle)
            document["pid"] = spoof.pid
            with open(status_file, "w") as handle:
                json.dump(document, handle)
            status = run_agent_cli("status", "--config", agent.config).returncode
            zero = run_agent_cli("zero", "--config", agent.config)
            value = agent.value("web1")
            agent.start()
            try:
                agent.proc.wait(5)
                started = False  # it refused and exited
            except subprocess.TimeoutExpired:
                started = True
            agent.__exit__()
        print(f"  a killed agent's pid held by uid 65534's process named kachecks-agent: status"
              f" exits {status} ({'not running' if status == 3 else 'running'}); zero exits"
              f" {zero.returncode} (file now {value!r}); a new agent"
              f" {'starts' if started else 'refuses to start'}")
