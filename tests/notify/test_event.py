"""Every argv and FIFO line form keepalived produces
(docs/reference.md, "Notify arguments" and "FIFO lines")."""

import os
import time

import pytest

from kachecks.notify.event import EventError, from_argv, from_fifo_line


def pick(event):
    return event["type"], event["name"], event["vs"], event["state"], event["priority"]


@pytest.mark.parametrize("line, expected", [
    ('INSTANCE "VI_1" MASTER 100', ("INSTANCE", "VI_1", None, "MASTER", 100)),
    ('GROUP "G1" BACKUP 0', ("GROUP", "G1", None, "BACKUP", 0)),
    ('INSTANCE "VI_2" MASTER_RX_LOWER_PRI 50', ("INSTANCE", "VI_2", None, "MASTER_RX_LOWER_PRI", 50)),
    ('INSTANCE "VI_1" MASTER_PRIORITY 90', ("INSTANCE", "VI_1", None, "MASTER_PRIORITY", 90)),
    ('INSTANCE "VI_1" {UNKNOWN} 100', ("INSTANCE", "VI_1", None, "{UNKNOWN}", 100)),
    ('INSTANCE "my "quoted" name" STOP 100', ("INSTANCE", 'my "quoted" name', None, "STOP", 100)),
    ("VS [192.168.8.100]:tcp:80 UP", ("VS", "[192.168.8.100]:tcp:80", None, "UP", None)),
    ("VS FWM 5 DOWN", ("VS", "FWM 5", None, "DOWN", None)),
    ("RS [192.168.8.101]:tcp:80 [192.168.8.100]:tcp:80 DOWN",
     ("RS", "[192.168.8.101]:tcp:80", "[192.168.8.100]:tcp:80", "DOWN", None)),
    ("RS [192.168.8.101]:tcp:80 FWM 5 UP", ("RS", "[192.168.8.101]:tcp:80", "FWM 5", "UP", None)),
    ("RS [2001:db8::1]:tcp:80 [web]:80 UP", ("RS", "[2001:db8::1]:tcp:80", "[web]:80", "UP", None)),
    ("RS [192.168.8.101]:tcp:80 [192.168.8.100]:tcp:80 UP\n\0",  # keepalived master's trailing NUL
     ("RS", "[192.168.8.101]:tcp:80", "[192.168.8.100]:tcp:80", "UP", None)),
])
def test_fifo_line_forms(line, expected):
    event = from_fifo_line(line)
    assert pick(event) == expected
    assert event["raw"] == line.rstrip("\n\0")


@pytest.mark.parametrize("line", [
    "", "garbage", 'INSTANCE VI_1 MASTER 100', 'INSTANCE "VI_1" MASTER', 'INSTANCE "VI_1" MASTER x',
    "RS [192.168.8.101]:tcp:80", "RS 192.168.8.101 UP", "VS UP", 'KEEPALIVED "x" STOP 0',
    'INSTANCE "VI_1" master! 100',
])
def test_malformed_fifo_lines_raise_event_error(line):
    with pytest.raises(EventError):
        from_fifo_line(line)


@pytest.mark.parametrize("argv, expected", [
    (["INSTANCE", "VI_1", "MASTER", "100"], ("INSTANCE", "VI_1", None, "MASTER", 100)),
    (["GROUP", "G1", "FAULT", "0"], ("GROUP", "G1", None, "FAULT", 0)),
    (["INSTANCE", "VI_1", "BACKUP"], ("INSTANCE", "VI_1", None, "BACKUP", None)),  # notify_backup form
    (["instance", "VI_1", "master"], ("INSTANCE", "VI_1", None, "MASTER", None)),
    (["RS", "[192.168.8.101]:tcp:80", "UP"], ("RS", "[192.168.8.101]:tcp:80", None, "UP", None)),
    (["RS", "[192.168.8.101]:tcp:80", "FWM", "5", "DOWN"], ("RS", "[192.168.8.101]:tcp:80", "FWM 5", "DOWN", None)),
    (["VS", "[192.168.8.100]:tcp:80", "DOWN"], ("VS", "[192.168.8.100]:tcp:80", None, "DOWN", None)),
])
def test_argv_forms(argv, expected):
    assert pick(from_argv(argv)) == expected


@pytest.mark.parametrize("argv, message", [
    ([], "missing arguments"),
    (["FOO", "VI_1", "MASTER"], "unknown TYPE 'FOO'"),
    (["INSTANCE", "VI_1"], "missing arguments after INSTANCE"),
    (["INSTANCE", "VI_1", "MASTER", "high"], "invalid PRIORITY 'high'"),
    (["INSTANCE", "VI_1", "MASTER", "100", "extra"], "too many arguments"),
    (["RS", "UP"], "RS needs the real server"),
    (["VRRP", "VI_1", "SPLIT_BRAIN"], "unknown TYPE 'VRRP'"),  # only the agent makes those
])
def test_bad_argv_names_the_problem(argv, message):
    with pytest.raises(EventError, match=message):
        from_argv(argv)


def test_event_ids_sort_in_time_order_and_are_unique():
    ids = [from_fifo_line('INSTANCE "VI_1" MASTER 100')["id"] for _ in range(50)]
    assert ids == sorted(ids) and len(set(ids)) == 50


def test_notify_event_time_is_when_the_process_was_forked():
    event = from_argv(["INSTANCE", "VI_1", "MASTER"])
    started = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME) + _my_start_ticks() / os.sysconf("SC_CLK_TCK")
    assert abs(event["time"] - started) < 0.05
    assert event["time"] < time.time() - 0.001


def _my_start_ticks():
    with open("/proc/self/stat", "rb") as handle:
        return int(handle.read().rsplit(b")", 1)[1].split()[19])
