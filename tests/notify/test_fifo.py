"""``kachecks fifo`` against a real FIFO written the way keepalived writes it."""

import os
import signal
import subprocess
import threading
import time

import pytest

from harness import signalled
from harness.peers.cli import command
from harness.wait import holds_open, wait_for
from kachecks.notify.fifo import lock_name


@pytest.fixture
def fifo_path(tmp_path):
    path = tmp_path / "vrrp.fifo"
    os.mkfifo(path, 0o644)
    return path


class Keepalived:
    """The writing side: O_RDWR|O_NONBLOCK, one write() per line
    (docs/reference.md, "FIFO lines")."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)

    def write(self, *lines):
        for line in lines:
            os.write(self.fd, line.encode() + b"\n")

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def start_reader(fifo_path):
    return subprocess.Popen(command("kachecks") + ["fifo", str(fifo_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Reading:
    """``with Reading(fifo)``: a `kachecks fifo` reader and keepalived's end; leaving closes
    keepalived's end, so the reader sees EOF and exits (its stdout and stderr are kept)."""

    def __init__(self, fifo_path):
        self.reader = start_reader(fifo_path)
        self.keepalived = Keepalived(fifo_path)
        self.out = self.err = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.keepalived.close()
        done = signalled.finish(self.reader, 20, what="kachecks fifo",
                                sent="keepalived's end closing")
        self.out, self.err = done.stdout, done.stderr


def wait_log(syslog_socket, text, timeout=15):
    """Syslog text so far, once ``text`` is in it."""
    logs, end = "", time.monotonic() + timeout
    while text not in logs:
        assert time.monotonic() < end, f"{text!r} not logged"
        time.sleep(0.05)
        logs += "\n".join(syslog_socket()) + "\n"
    return logs


def subjects(msgs):
    return [m["Subject"].split("] ", 1)[1] for m in msgs]


def test_every_fifo_line_form_is_delivered_and_a_malformed_line_is_skipped(
        notifier, relay, fifo_path, syslog_socket):
    notifier.configure(relay)
    with Reading(fifo_path) as session:
        session.keepalived.write('GROUP "G1" BACKUP 0', 'INSTANCE "VI_1" BACKUP 100', "this is not an event",
                                 'INSTANCE "VI_1" MASTER 100', "VS [192.168.8.100]:tcp:80 UP",
                                 "RS [192.168.8.101]:tcp:80 [192.168.8.100]:tcp:80 DOWN",
                                 "RS [192.168.8.102]:tcp:80 FWM 5 UP")
        logs = wait_log(syslog_socket, "malformed FIFO line")  # read early: a full socket drops
        msgs = relay.wait_for(6)
    err = session.err
    assert session.reader.returncode == 0
    assert subjects(msgs) == [
        "G1: UNKNOWN -> BACKUP (prio 0)", "VI_1: UNKNOWN -> BACKUP (prio 100)",
        "VI_1: BACKUP -> MASTER (prio 100)", "[192.168.8.100]:tcp:80: UNKNOWN -> UP",
        "[192.168.8.101]:tcp:80: UNKNOWN -> DOWN", "[192.168.8.102]:tcp:80: UNKNOWN -> UP"]
    assert "virtual server FWM 5" in msgs[5].get_content()
    assert err == "kachecks fifo: skipped: malformed FIFO line 'this is not an event'\n"
    assert "malformed FIFO line 'this is not an event'" in logs


def test_reader_keeps_reading_after_sigterm_so_stop_lines_arrive(notifier, relay, fifo_path,
                                                                  syslog_socket):
    """keepalived SIGTERMs the FIFO script first, then writes the STOP lines, then closes."""
    notifier.configure(relay)
    with Reading(fifo_path) as session:
        session.keepalived.write('INSTANCE "VI_1" MASTER 100')
        relay.wait_for(1)
        session.reader.send_signal(signal.SIGTERM)
        wait_log(syslog_socket, "SIGTERM: reading on until keepalived closes the FIFO")
        assert session.reader.poll() is None
        session.keepalived.write('INSTANCE "VI_1" STOP 100', 'GROUP "G1" STOP 0')
        msgs = relay.wait_for(3)
    assert session.reader.returncode == 0
    assert subjects(msgs)[1:] == ["VI_1: MASTER -> STOP (prio 100)", "G1: UNKNOWN -> STOP (prio 0)"]


def test_second_reader_on_the_same_fifo_waits_and_takes_over(notifier, relay, fifo_path):
    """keepalived starts the global notify_fifo_script once per child process."""
    notifier.configure(relay)
    first = start_reader(fifo_path)
    keepalived = Keepalived(fifo_path)
    try:
        keepalived.write('INSTANCE "VI_1" BACKUP 100')
        relay.wait_for(1)
        second = start_reader(fifo_path)
        wait_for(lambda: holds_open(second.pid, notifier.spool / lock_name(fifo_path)), 10,
                 what="the second reader to wait at the FIFO's lock")
        assert second.poll() is None
        keepalived.close()  # keepalived reloads: the first reader sees EOF and exits
        first.communicate(timeout=20)
        assert first.returncode == 0
        keepalived = Keepalived(fifo_path)
        keepalived.write('INSTANCE "VI_1" MASTER 100')
        msgs = relay.wait_for(2)
    finally:
        keepalived.close()
    second.communicate(timeout=20)
    assert second.returncode == 0
    notifier.wait_idle()
    assert subjects(msgs) == ["VI_1: UNKNOWN -> BACKUP (prio 100)", "VI_1: BACKUP -> MASTER (prio 100)"]
    assert len(relay.messages) == 2


def test_fifo_that_does_not_exist_is_one_line_and_exit_1(notifier, tmp_path):
    result = notifier.kachecks("fifo", str(tmp_path / "missing.fifo"))
    assert result.returncode == 1
    assert result.stderr == f"kachecks fifo: cannot read FIFO {tmp_path / 'missing.fifo'}: No such file or directory\n"


def test_hostile_names_from_the_fifo_are_sanitised_and_delivered(notifier, relay, fifo_path):
    notifier.configure(relay)
    with Reading(fifo_path) as session:
        fd = session.keepalived.fd
        os.write(fd, b'INSTANCE "VI_\xe9\r\nTo: x@evil.example" MASTER 100\n')  # the LF ends a line
        os.write(fd, b'INSTANCE "VI_\xe9\rBcc: x@evil.example" MASTER 100\n')
        session.keepalived.write('INSTANCE "VI_2" BACKUP 50')
        msgs = relay.wait_for(2)
    assert subjects(msgs) == ["VI_\ufffd\\rBcc: x@evil.example: UNKNOWN -> MASTER (prio 100)",
                              "VI_2: UNKNOWN -> BACKUP (prio 50)"]
    assert [envelope[1] for envelope in relay.envelopes] == [["admin@lvs.example.org"]] * 2


def vm_high_water_kib(pid):
    with open(f"/proc/{pid}/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:"))


def test_fifo_line_without_newline_is_skipped_in_bounded_memory(notifier, relay, fifo_path, syslog_all):
    """32 MiB with no newline (a writer gone wrong) must neither pile up nor swallow the next line."""
    notifier.configure(relay)
    with Reading(fifo_path) as session:
        keepalived = session.keepalived
        keepalived.write('INSTANCE "VI_1" BACKUP 100')
        relay.wait_for(1)
        baseline = vm_high_water_kib(session.reader.pid)
        os.set_blocking(keepalived.fd, True)
        chunk = b"x" * (1 << 20)
        writer = threading.Thread(target=lambda: [os.write(keepalived.fd, chunk) for _ in range(32)])
        writer.start()
        writer.join(timeout=120)
        keepalived.write("", 'INSTANCE "VI_1" MASTER 100')
        msgs = relay.wait_for(2, timeout=60)
        grown = vm_high_water_kib(session.reader.pid) - baseline
    assert subjects(msgs) == ["VI_1: UNKNOWN -> BACKUP (prio 100)", "VI_1: BACKUP -> MASTER (prio 100)"]
    assert grown < 8 * 1024, f"the reader grew by {grown} KiB"
    assert "skipped a line longer than 65536 bytes" in syslog_all()


def test_broken_configuration_still_spools_every_fifo_line(notifier, fifo_path):
    """keepalived does not wait for the reader: what it does not read is lost."""
    notifier.config.write_text(f'[smtp]\nport = "25"\n[spool]\ndir = "{notifier.spool}"\n')
    with Reading(fifo_path) as session:
        session.keepalived.write('INSTANCE "VI_1" MASTER 100', 'GROUP "G1" MASTER 0')
        for _ in range(200):
            if len(notifier.queued()) == 2:
                break
            time.sleep(0.05)
    assert session.reader.returncode == 1
    assert session.err.count("\n") == 1 and "[smtp] port: must be an integer" in session.err
    assert "events are kept in the spool until it is fixed" in session.err
    assert len(notifier.queued(("incoming",))) == 2
