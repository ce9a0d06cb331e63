"""`kachecks notify` spools the event whatever kachecks.toml holds: the one promise it never breaks.

A file nested too deeply for the parser, NUL or control characters in the spool
directory, bytes that are not UTF-8: the event still goes to a spool (the configured
one when it can be read, else the default /var/spool/kachecks, said on stderr and in
syslog) and the reason is one line naming the file.
"""

import os
import subprocess
import time

import pytest

from harness.peers.cli import command
from kachecks.notify import spool as store

DEEP = "x = " + "[" * 2000 + "]" * 2000 + "\n"


def with_default_spool_in(directory, argv):
    """Run ``argv`` with /var/spool bind-mounted from ``directory`` (a mount namespace of
    its own), so the default spool /var/spool/kachecks lands in ``directory``."""
    if os.geteuid() != 0:
        pytest.fail("a private mount namespace needs root")
    script = 'mount --bind "$1" /var/spool && shift && exec "$@"'
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                           "sh", str(directory), *map(str, argv)],
                          capture_output=True, text=True, timeout=60)


def spooled(root):
    spool = store.Spool.existing(str(root))
    if spool is None:
        return []
    with spool:
        return [spool.event("incoming", name) for name in spool.names("incoming")]


@pytest.mark.parametrize("text, words", [
    (DEEP, "nested too deeply"),
    ('[spool]\ndir = "/var/spool/x\\u0000y"\n', "[spool] dir: holds a control character"),
    ('[spool]\ndir = "/var/spool/\\u001b[2J"\n', "[spool] dir: holds a control character"),
    (b'[spool]\ndir = "/var/spool/\xe9t\xe9"\n', "not UTF-8 text"),
], ids=["2000-levels", "nul-in-spool-dir", "escape-in-spool-dir", "latin-1"])
def test_notify_spools_in_the_default_spool_whatever_the_file_holds(
        notifier, syslog_socket, tmp_path, text, words):
    if isinstance(text, bytes):
        notifier.config.write_bytes(text)
    else:
        notifier.config.write_text(text)
    spool_parent = tmp_path / "var-spool"
    spool_parent.mkdir()
    result = with_default_spool_in(spool_parent, command("kachecks") + [
        "notify", "INSTANCE", "VI_1", "MASTER", "100"])
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert lines[0] == (f"kachecks notify: warning: {notifier.config}: {words}"
                        + lines[0].split(words, 1)[1])
    assert lines[0].endswith("; spooling in the default /var/spool/kachecks")
    assert lines[-1].startswith(f"kachecks notify: {notifier.config}: ")
    assert lines[-1].endswith("event kept in /var/spool/kachecks; fix it, then run"
                              " `kachecks spool flush`")
    (event,) = spooled(spool_parent / "kachecks")
    assert (event["type"], event["name"], event["state"]) == ("INSTANCE", "VI_1", "MASTER")
    logged = syslog_socket()
    assert any("spooling in the default /var/spool/kachecks" in m for m in logged)


def test_notify_with_spool_dir_says_a_deep_file_is_a_configuration_error(notifier):
    notifier.config.write_text(DEEP)
    result = notifier.notify("--spool-dir", notifier.spool, "INSTANCE", "VI_1", "MASTER", "100")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "internal error" not in result.stderr
    assert result.stderr.startswith(f"kachecks notify: {notifier.config}: ")
    assert "nested too deeply" in result.stderr
    assert len(notifier.queued(("incoming",))) == 1


def test_fifo_reader_spools_every_line_with_a_deep_file(notifier, tmp_path):
    notifier.config.write_text(DEEP)
    fifo = tmp_path / "vrrp.fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(command("kachecks") + ["fifo", "--spool-dir", str(notifier.spool),
                                                     str(fifo)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # as keepalived opens it
    try:
        os.write(fd, b'INSTANCE "VI_1" MASTER 100\n')
        os.write(fd, b'GROUP "G1" MASTER 0\n')
        end = time.monotonic() + 15  # the lines live in the FIFO only while one end is open
        while (len(notifier.queued(("incoming",))) < 2 and reader.poll() is None
               and time.monotonic() < end):
            time.sleep(0.05)
    finally:
        os.close(fd)  # EOF: the reader ends
    _out, err = reader.communicate(timeout=30)
    assert reader.returncode == 1
    assert "nested too deeply" in err and "internal error" not in err
    assert len(notifier.queued(("incoming",))) == 2
