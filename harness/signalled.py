"""A process told to stop, and waited for: the one way every test and peer does it.

    done = signalled.stop(proc, signal.SIGTERM, grace=10, what="kachecks worker")
    done.returncode, done.stdout, done.stderr

``stop`` sends the signal (to the process, or its group) and waits; ``finish`` only waits,
for a process already signalled (a burst, a random moment); ``stop_pids`` does the same for
processes that are not a Popen of ours. One that is still there when its grace ends is
diagnosed *before* it is SIGKILLed, and the diagnosis is the failure's message
(``Lingered``): what the kernel says of it (state, pending, blocked, ignored and caught
signals, each thread's state, wait channel, system call, kernel stack, CPU time had and
time spent waiting for a CPU), or, when it did exit and only its output pipes stayed
open, who holds them; and how loaded the machine was. A rare "did not exit within 10 s"
on a loaded machine is then a report to read, not a flake to rerun.

``strict=False`` (a peer's teardown: slapd, keepalived, prometheus) kills a lingering
process all the same but reports the diagnosis as a warning instead of failing.
"""

import os
import shutil
import signal
import subprocess
import time
import warnings

# x86_64 numbers of the system calls a waiting process usually sits in (/proc/PID/syscall)
_SYSCALLS = {0: "read", 1: "write", 7: "poll", 23: "select", 34: "pause", 35: "nanosleep",
             43: "accept", 45: "recvfrom", 47: "recvmsg", 59: "execve", 61: "wait4",
             130: "rt_sigsuspend", 202: "futex", 219: "restart_syscall: a call interrupted by a"
             " signal and resumed without running a handler here", 230: "clock_nanosleep",
             232: "epoll_wait",
             247: "waitid", 270: "pselect6", 271: "ppoll", 281: "epoll_pwait", 288: "accept4",
             441: "epoll_pwait2"}
_STATUS = ("State", "Threads", "SigQ", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
_MASKS = ("SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")


class Lingered(AssertionError):
    """A signalled process did not exit within its grace; the message diagnoses it."""


class LingeredWarning(UserWarning):
    """The same, for a peer's teardown (``strict=False``): killed, reported, not failed."""


def stop(proc, signum=signal.SIGTERM, grace=10.0, what=None, strict=True, group=False):
    """Send ``signum`` to Popen ``proc`` (its process group if ``group``) unless it already
    exited, then ``finish`` it."""
    if proc.poll() is None:
        _send(proc.pid, signum, group)
    return finish(proc, grace, what, sent=signum, strict=strict, group=group)


def finish(proc, grace=10.0, what=None, sent=None, strict=True, group=False, read=True):
    """Wait up to ``grace`` s for Popen ``proc``, already signalled (``sent``: with what),
    to exit, reading its pipes if it has any (unless not ``read``: another process may
    hold them longer): its CompletedProcess. Past the grace: diagnose, SIGKILL (the group
    too if ``group``), reap, and raise Lingered (``strict``) or warn."""
    streams = (proc.stdin, proc.stdout, proc.stderr)
    piped = read and any(s is not None and not s.closed for s in streams)
    started = time.monotonic()
    try:
        if piped:
            out, err = proc.communicate(timeout=grace)
        else:
            proc.wait(grace)
            out = err = None
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    except subprocess.TimeoutExpired:
        pass
    pipes = [s for s in (proc.stdout, proc.stderr) if s is not None]
    message = _lingered(proc.pid, what or _name(proc.args), sent, grace, pipes,
                        time.monotonic() - started)
    _send(proc.pid, signal.SIGKILL, group)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        message += "\n(still there 10 s after SIGKILL)"
    for stream in (proc.stdin, proc.stdout, proc.stderr) if read else ():
        if stream is not None:
            stream.close()  # not read: whoever holds the other end may never close it
    _report(message, strict)
    return subprocess.CompletedProcess(proc.args, proc.returncode, None, None)


def stop_pids(pids, signum=signal.SIGTERM, grace=10.0, what=None, strict=True, reap=False):
    """``stop`` for processes that are no Popen of ours (another's children, or ours by
    os.fork: ``reap`` them): signal each, wait until all are gone."""
    pids = list(pids)
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    started = time.monotonic()
    left = _await_gone(pids, grace, reap)
    if not left:
        return
    waited = time.monotonic() - started
    message = "\n".join(_lingered(pid, what or f"pid {pid}", signum, grace, (), waited)
                        for pid in left)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _await_gone(left, 10, reap)
    _report(message, strict)


def diagnosis(pid, pipes=()):
    """What /proc says of process ``pid``, several lines; ``pipes``: our ends of its output
    pipes, whose other holders are named once the process itself has exited."""
    lines = []
    status = _read(f"/proc/{pid}/status")
    if status is None:
        lines.append(f"pid {pid} is gone (exited and reaped)")
    else:
        fields = _fields(status)
        lines.append(f"pid {pid}: {_read(f'/proc/{pid}/cmdline', '').replace(chr(0), ' ').strip()}"
                     f" (parent {fields.get('PPid', '?')})")
        for key in _STATUS:
            value = fields.get(key, "?")
            lines.append(f"  {key}: {value}{_signal_names(value) if key in _MASKS else ''}")
        lines.append(f"  wchan: {_read(f'/proc/{pid}/wchan', '?') or '0'}")
        children = " ".join(_read(f"/proc/{pid}/task/{tid}/children", "").strip()
                            for tid in _tasks(pid)).split()
        if children:
            lines.append(f"  children: {' '.join(children)}")
        for tid in _tasks(pid):
            lines.extend(_thread(pid, tid))
    if pipes and (status is None or _fields(status).get("State", "").startswith("Z")):
        lines.extend(_pipe_holders(pipes))
    lines.extend(_python_stack(pid, status))
    return "\n".join(lines)


def _lingered(pid, what, sent, grace, pipes, waited):
    told = signal.Signals(sent).name if isinstance(sent, int) else (sent or "its signal")
    return (f"{what} (pid {pid}) did not exit within {grace:g} s of {told} (waited {waited:.1f} s"
            f" by the clock); before SIGKILL:\n{diagnosis(pid, pipes)}\n{_system()}")


def _system():
    """How loaded the machine was: a starved process, or a starved waiter, looks the same."""
    memory = dict(line.split(":", 1) for line in _read("/proc/meminfo", "").splitlines()
                  if ":" in line)
    pressure = [f"{kind} {(_read(f'/proc/pressure/{kind}', '') or '?').splitlines()[0]}"
                for kind in ("cpu", "memory", "io")]
    return (f"system: load {_read('/proc/loadavg', '?')}; MemAvailable"
            f" {memory.get('MemAvailable', '?').strip()}, SwapFree"
            f" {memory.get('SwapFree', '?').strip()}; pressure: {'; '.join(pressure)}")


def _report(message, strict):
    if strict:
        raise Lingered(message)
    warnings.warn(message, LingeredWarning, stacklevel=3)


def _send(pid, signum, group):
    try:
        (os.killpg if group else os.kill)(pid, signum)
    except ProcessLookupError:
        pass


def _await_gone(pids, grace, reap):
    end = time.monotonic() + grace
    while True:
        left = [pid for pid in pids if not _gone(pid, reap)]
        if not left or time.monotonic() >= end:
            return left
        time.sleep(0.02)


def _gone(pid, reap):
    if reap:
        try:
            return os.waitpid(pid, os.WNOHANG)[0] == pid
        except ChildProcessError:
            return True
    status = _read(f"/proc/{pid}/status")
    return status is None or _fields(status).get("State", "").startswith("Z")  # its parent reaps


def _thread(pid, tid):
    base = f"/proc/{pid}/task/{tid}"
    stat = _read(f"{base}/stat", "")
    comm, _, rest = stat.partition(" (")[2].rpartition(") ")
    state = rest.split(" ", 1)[0] if rest else "?"
    fields = _fields(_read(f"{base}/status", ""))
    syscall = _read(f"{base}/syscall", "?").split()
    call = syscall[0] if syscall else "?"
    if call.isdigit() and os.uname().machine == "x86_64":
        call = f"{call} ({_SYSCALLS.get(int(call), 'see asm/unistd_64.h')})"
    lines = [f"  thread {tid} ({comm}): state {state}, wchan {_read(f'{base}/wchan', '?') or '0'},"
             f" syscall {call}, SigBlk {fields.get('SigBlk', '?')}"
             f"{_signal_names(fields.get('SigBlk', ''))}, SigPnd {fields.get('SigPnd', '?')}"
             f"{_signal_names(fields.get('SigPnd', ''))}, {_schedstat(base)}"]
    stack = _read(f"{base}/stack")
    if stack:
        lines.extend(f"    {frame}" for frame in stack.splitlines()[:12])
    return lines


def _schedstat(base):
    """CPU time it had, and time it waited runnable for a CPU (starved, or stuck?)."""
    try:
        ran, waited, _slices = (int(n) for n in _read(f"{base}/schedstat", "").split())
    except ValueError:
        return "schedstat ?"
    return f"ran {ran / 1e9:.2f} s, waited for a CPU {waited / 1e9:.2f} s"


def _pipe_holders(pipes):
    """Who else holds the pipes the exited process wrote to (what keeps communicate()
    waiting after the exit)."""
    wanted = {}
    for stream in pipes:
        try:
            wanted[f"pipe:[{os.fstat(stream.fileno()).st_ino}]"] = stream
        except (OSError, ValueError):
            continue
    holders = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry}/fd/{fd}") in wanted:
                    holders.add(int(entry))
            except OSError:
                continue
    if not holders:
        return ["  its output pipes: no other holder (closed since)"]
    return [f"  its output pipes are held open by pid {holder}:"
            f" {_read(f'/proc/{holder}/cmdline', '').replace(chr(0), ' ').strip()}"
            for holder in sorted(holders)]


def _python_stack(pid, status):
    """py-spy's dump of the Python stacks, when py-spy is installed (it is no dependency)."""
    spy = shutil.which("py-spy")
    if status is None or spy is None:
        return []
    try:
        dump = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [f"  py-spy: {exc}"]
    return ["  py-spy dump:", *(f"    {line}" for line in (dump.stdout + dump.stderr).splitlines())]


def _signal_names(mask):
    """`` (SIGTERM, SIGCHLD)`` for a /proc mask, or ``""`` for an empty or unreadable one."""
    try:
        bits = int(mask, 16)
    except ValueError:
        return ""
    names = []
    for number in range(1, 65):
        if bits >> (number - 1) & 1:
            try:
                names.append(signal.Signals(number).name)
            except ValueError:
                names.append(f"SIGRTMIN+{number - signal.SIGRTMIN}" if number >= signal.SIGRTMIN
                             else f"signal {number}")
    return f" ({', '.join(names)})" if names else ""


def _fields(status):
    return dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)


def _tasks(pid):
    try:
        return sorted(os.listdir(f"/proc/{pid}/task"), key=int)
    except OSError:
        return []


def _read(path, default=None):
    try:
        with open(path, errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return default


def _name(args):
    words = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
    return os.path.basename(str(words[0])) if words else "process"
