"""A spool someone else can write: planted links, garbage, a killed writer's left-overs.

A non-root notify user needs write access to the spool, and root's `spool
flush` (the systemd timer) works in the same directory; nothing that user
plants may make root follow a link, and nothing in the spool may stop later
events from being delivered.
"""

import json
import os
import random
import subprocess
import time

import pytest

from harness.config import toml_text
from harness.peers.cli import command, run
from harness.wait import wait_for
from kachecks.notify import event as events
from kachecks.notify import fifo as reader
from kachecks.notify import notified
from kachecks.notify import spool as store

VICTIM_TEXT = "root's precious file\n"


def one_line(result):
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr.strip()


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim"
    path.write_text(VICTIM_TEXT)
    return path


def make_spool(notifier, mode=0o750):
    for sub in ("", "tmp", "incoming", "mail", "webhook", "expired"):
        (notifier.spool / sub).mkdir(mode=0o700, exist_ok=True)
        (notifier.spool / sub).chmod(mode)


def test_planted_lock_symlink_is_never_followed_by_flush_or_notify(notifier, unused_port, victim):
    notifier.configure(spool={"retry_for": 0}, smtp={"port": unused_port})
    make_spool(notifier)
    (notifier.spool / ".lock").symlink_to(victim)

    flushed = notifier.kachecks("spool", "flush")
    assert victim.read_text() == VICTIM_TEXT
    assert flushed.returncode == 1
    assert "/.lock is a symbolic link: refusing to follow it" in one_line(flushed)

    queued = notifier.notify("INSTANCE", "VI_1", "MASTER", "100")
    assert queued.returncode == 0  # the event is on disk; only delivery waits
    assert "symbolic link" in one_line(queued) and "stays in the spool" in queued.stderr
    assert len(notifier.queued()) == 1

    purged = notifier.kachecks("spool", "purge")
    assert purged.returncode == 1 and "symbolic link" in one_line(purged)
    assert victim.read_text() == VICTIM_TEXT
    assert (notifier.spool / ".lock").is_symlink()


def test_planted_fifo_reader_lock_symlink_is_never_followed(notifier, tmp_path, victim):
    fifo_path = tmp_path / "vrrp.fifo"
    os.mkfifo(fifo_path, 0o600)
    make_spool(notifier)
    (notifier.spool / reader.lock_name(str(fifo_path))).symlink_to(victim)
    result = run("kachecks", "fifo", fifo_path, timeout=20)
    assert result.returncode == 1
    assert "is a symbolic link: refusing to follow it" in one_line(result)
    assert victim.read_text() == VICTIM_TEXT


@pytest.mark.parametrize("sub", ["mail", "tmp"])
def test_planted_subdirectory_symlink_is_refused(notifier, tmp_path, sub):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.json").write_text("{}")
    make_spool(notifier)
    (notifier.spool / sub).rmdir()
    (notifier.spool / sub).symlink_to(elsewhere)
    flushed = notifier.kachecks("spool", "flush")
    assert flushed.returncode == 1
    assert f"/{sub} is not a directory (a symbolic link): refusing to use it" in one_line(flushed)
    assert os.listdir(elsewhere) == ["keep.json"]


def test_spool_writable_by_others_or_owned_by_another_user_is_refused(notifier):
    make_spool(notifier, 0o777)
    result = notifier.notify("INSTANCE", "VI_1", "MASTER", "100")
    assert result.returncode == 1
    line = one_line(result)
    assert (f"spool {notifier.spool} is writable by others (mode 0777; chmod o-w {notifier.spool}):"
            " refusing to use it" in line and "event NOT queued" in line)

    if os.geteuid() != 0:
        pytest.fail("the ownership half needs root (chown)")
    notifier.spool.chmod(0o750)
    os.chown(notifier.spool, 65534, 65534)
    flushed = notifier.kachecks("spool", "flush")
    assert flushed.returncode == 1
    assert f"spool {notifier.spool} belongs to uid 65534: refusing to use it" in one_line(flushed)


def old_id(seconds_ago, n):
    return events.new_id(time.time_ns() - int(seconds_ago * 1e9) + n)


def garbage(notifier, sub):
    """Every kind of file that is not an event, named to come before any real event."""
    where = notifier.spool / sub
    good = events.make("INSTANCE", "VI_9", "MASTER", 100)
    (where / "x.json").write_text(json.dumps({"hello": 1}))
    untyped = dict(good, id=old_id(50, 1))
    del untyped["type"]
    (where / f"{untyped['id']}.json").write_text(json.dumps(untyped))
    huge_time = old_id(50, 2)
    (where / f"{huge_time}.json").write_text(
        json.dumps(dict(good, id=huge_time)).replace(f'"time": {good["time"]}', '"time": 1e400'))
    (where / f"{old_id(50, 3)}.json").mkdir()
    (where / f"{old_id(50, 4)}.json").symlink_to("/etc/passwd")
    os.mkfifo(where / f"{old_id(50, 5)}.json")
    (where / f"{old_id(50, 6)}.json").write_bytes(b"\x80\x81 not JSON")
    (where / f"{old_id(50, 7)}.json").write_text("[" * 100000)
    (where / f"{old_id(50, 8)}.json").write_text(json.dumps(dict(good, id=old_id(50, 9))))  # wrong id
    (where / f"{old_id(50, 10)}.json").write_text("null")
    huge_int = old_id(50, 11)
    (where / f"{huge_int}.json").write_text(json.dumps(dict(good, id=huge_int, time=10**400)))
    return 11


def test_spool_garbage_is_set_aside_and_never_blocks_later_events(notifier, relay, syslog_all):
    notifier.configure(relay)
    make_spool(notifier)
    planted = garbage(notifier, "incoming") + garbage(notifier, "mail")

    listing = notifier.kachecks("spool", "list", timeout=20)
    assert listing.returncode == 0 and listing.stderr == ""
    assert listing.stdout.count("(not an event: ") == planted

    assert notifier.notify("INSTANCE", "VI_1", "MASTER", "100").returncode == 0
    (msg,) = relay.wait_for(1)
    assert "VI_1: UNKNOWN -> MASTER (prio 100)" in msg["Subject"]
    notifier.wait_idle()
    assert notifier.queued() == []
    assert len(os.listdir(notifier.spool / "expired")) == planted
    logs = syslog_all()
    assert logs.count("set aside ") == planted
    for reason in ("not an event file name", "not a usable event: no valid type",
                   "not a usable event: no valid time (inf)", "not a usable event: no valid time (1000", "a directory", "a symbolic link",
                   "not a regular file", "not JSON (UnicodeDecodeError)", "not JSON (RecursionError)",
                   "is not the file's name", "not a usable event: not a JSON object"):
        assert reason in logs, reason

    listing = notifier.kachecks("spool", "list")
    assert listing.returncode == 0 and "Traceback" not in listing.stderr
    assert listing.stdout.count("expired:incoming") + listing.stdout.count("expired:mail") == planted
    flushed = notifier.kachecks("spool", "flush")
    assert flushed.returncode == 0 and flushed.stderr == ""
    purged = notifier.kachecks("spool", "purge", "--expired")
    assert purged.returncode == 0 and f"purged {planted} event(s)" in purged.stdout
    assert os.listdir(notifier.spool / "expired") == []


def test_damaged_state_and_batch_files_do_not_stop_delivery(notifier, relay):
    notifier.configure(relay)
    make_spool(notifier)
    (notifier.spool / "mail" / ".states.json").write_text('["not", "a", "map"]')
    (notifier.spool / "mail" / ".batch").mkdir()
    assert notifier.notify("INSTANCE", "VI_1", "MASTER", "100").returncode == 0
    (msg,) = relay.wait_for(1)
    assert "VI_1: UNKNOWN -> MASTER" in msg["Subject"]
    assert notifier.notify("INSTANCE", "VI_1", "BACKUP", "100").returncode == 0
    assert "VI_1: MASTER -> BACKUP" in relay.wait_for(2)[1]["Subject"]


def test_planted_heartbeat_and_deliveries_records_are_neither_followed_nor_trusted(notifier, relay, victim):
    """A link where the heartbeat record or the counters belong is replaced, never written
    through; garbage there counts as nothing recorded; a heartbeat-like name that is no
    event id is no heartbeat."""
    notifier.configure(relay, notify={"heartbeat": "1h"})
    make_spool(notifier)
    (notifier.spool / "mail" / ".deliveries.json").symlink_to(victim)
    (notifier.spool / "mail" / ".heartbeat.json").write_text('{"last": "tomorrow"}')
    (notifier.spool / "mail" / "9999999999999999999-0000000-x.json").write_text("{}")
    flushed = notifier.kachecks("spool", "flush")
    assert "Traceback" not in flushed.stderr
    assert "heartbeat spooled for mail" in flushed.stdout
    (msg,) = relay.wait_for(1)
    assert "HEARTBEAT" in msg["Subject"]
    assert victim.read_text() == VICTIM_TEXT
    assert not (notifier.spool / "mail" / ".deliveries.json").is_symlink()
    listing = json.loads(notifier.kachecks("spool", "list", "--json").stdout)
    assert listing["queues"]["mail"]["deliveries"]["ok"] == 1


def test_left_overs_of_a_killed_writer_are_recovered_or_removed_after_a_safe_age(
        notifier, relay, syslog_all):
    notifier.configure(relay)
    make_spool(notifier)
    tmp = notifier.spool / "tmp"
    hour_ago = time.time() - 3600
    complete = events.make("INSTANCE", "VI_7", "FAULT", 100)
    (tmp / "incoming.4242-0badf00d").write_text(json.dumps(complete))  # killed before its rename
    (tmp / "incoming.4243-deadbeef").write_text('{"id": "17960')  # killed while writing
    (tmp / "mail.4244-feedface").write_text('{"names": [')
    for name in os.listdir(tmp):
        os.utime(tmp / name, (hour_ago, hour_ago))
    (tmp / "incoming.4245-00c0ffee").write_text('{"id"')  # being written right now
    flushed = notifier.kachecks("spool", "flush")
    assert flushed.returncode == 0, flushed.stderr
    (msg,) = relay.wait_for(1)
    assert "VI_7: UNKNOWN -> FAULT" in msg["Subject"]
    assert os.listdir(tmp) == ["incoming.4245-00c0ffee"]
    logs = syslog_all()
    assert "recovered INSTANCE VI_7 FAULT prio 100" in logs
    assert logs.count("by a writer that was killed before it finished") == 2


@pytest.fixture
def shared_dir(open_dir, other_user):
    """A directory user nobody can reach (pytest's tmp_path is root-only), where kachecks
    runs as nobody; the deliverer that may still be finishing at the end is waited for."""
    if os.geteuid() != 0:
        pytest.fail("running notify as another user needs root")
    yield open_dir
    spool = store.Spool.existing(str(open_dir / "spool"))
    if spool:
        with spool:
            wait_for(lambda: not spool.lock().busy(), 20, what="the deliverer to finish")


def shared_config(shared_dir, relay, spool):
    """A kachecks.toml root:nogroup 0640 (readable by the notify user); the env naming it."""
    config = shared_dir / "kachecks.toml"
    config.write_text(toml_text({
        "smtp": {"host": "127.0.0.1", "port": relay.port, "security": "none", "timeout": 5,
                 "helo": "lvs1.example.org"},
        "mail": {"to": ["admin@lvs.example.org"], "from": "kachecks@lvs1.example.org"},
        "spool": {"dir": str(spool), "batch_window": 0, "retry_for": "20s"}}))
    os.chown(config, 0, 65534)
    config.chmod(0o640)
    return dict(os.environ, KACHECKS_CONFIG=str(config))


def as_nobody():
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    os.umask(0o177)  # what keepalived runs every script with


@pytest.mark.slow
def test_non_root_notify_under_keepalived_umask_shares_the_spool_with_root(shared_dir, relay):
    """Spool root:nogroup 2770 as docs/notifications.md says; nobody notifies, root flushes."""
    spool = shared_dir / "spool"
    spool.mkdir()
    os.chown(spool, 0, 65534)
    spool.chmod(0o2770)
    env = shared_config(shared_dir, relay, spool)
    kachecks = command("kachecks")

    def notify(state, user):
        return subprocess.run(kachecks + ["notify", "INSTANCE", "VI_1", state, "100"],
                              capture_output=True, text=True, env=env, timeout=30,
                              preexec_fn=as_nobody if user == "nobody" else None)

    def settled(count):
        msgs = relay.wait_for(count)
        for _ in range(200):
            if not [n for sub in ("incoming", "mail") for n in os.listdir(spool / sub) if n[0] != "."]:
                break
            time.sleep(0.05)
        return msgs

    for state, user in (("BACKUP", "nobody"), ("MASTER", "root"), ("FAULT", "nobody")):
        result = notify(state, user)
        assert result.returncode == 0 and result.stderr == "", (user, result.stderr)
        settled({"BACKUP": 1, "MASTER": 2, "FAULT": 3}[state])
        # the last state notified, what root's agent reads: written by root and by nobody
        assert notified.read(str(spool), ["VI_1"])["VI_1"]["state"] == state
    assert [m["Subject"].split("] ", 1)[1] for m in relay.messages] == [
        "VI_1: UNKNOWN -> BACKUP (prio 100)", "VI_1: BACKUP -> MASTER (prio 100)",
        "VI_1: MASTER -> FAULT (prio 100)"]

    procs = [subprocess.Popen(kachecks + ["notify", "INSTANCE", f"VI_{i}", "BACKUP", "50"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                              preexec_fn=as_nobody) for i in range(20)]
    for proc in procs:
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
        proc.stderr.close()
    settled(23)
    flushed = subprocess.run(kachecks + ["spool", "flush"], capture_output=True, text=True,
                             env=env, timeout=60)
    assert flushed.returncode == 0 and "0 still queued" in flushed.stdout, flushed.stderr
    assert len(relay.messages) == 23
    # the last states notified, what root's agent reads: the burst's, the last of VI_1 too
    assert {entry["state"] for entry in notified.read(str(spool), [
        f"VI_{i}" for i in range(20)]).values()} == {"BACKUP"}

    for path in [spool, *spool.rglob("*")]:
        info = path.lstat()
        assert not info.st_mode & 0o007, (path, oct(info.st_mode))
        if path.is_dir():
            assert info.st_mode & 0o7777 == 0o2770, (path, oct(info.st_mode))
        else:
            assert info.st_mode & 0o777 in (0o640, 0o600), (path, oct(info.st_mode))
            assert info.st_gid == 65534, path


def test_root_only_spool_shared_later_is_usable_by_the_notify_user_after_one_flush(shared_dir, relay):
    """The upgrade path in docs/notifications.md: chgrp + chmod 2770, then `spool flush` once."""
    spool = shared_dir / "spool"
    env = shared_config(shared_dir, relay, spool)
    kachecks = command("kachecks")
    assert subprocess.run(kachecks + ["notify", "INSTANCE", "VI_1", "BACKUP", "100"], env=env,
                          timeout=30).returncode == 0
    relay.wait_for(1)
    assert subprocess.run(kachecks + ["spool", "flush"], env=env, timeout=30).returncode == 0
    assert spool.stat().st_mode & 0o7777 == 0o750  # as root made it

    for path in [spool, *spool.rglob("*")]:  # chgrp -R kachecks /var/spool/kachecks
        os.chown(path, 0, 65534, follow_symlinks=False)
    spool.chmod(0o2770)
    assert subprocess.run(kachecks + ["spool", "flush"], env=env, timeout=30).returncode == 0
    for sub in ("tmp", "incoming", "mail", "webhook", "expired"):
        assert (spool / sub).stat().st_mode & 0o7777 == 0o2770, sub
    result = subprocess.run(kachecks + ["notify", "INSTANCE", "VI_1", "MASTER", "100"], env=env,
                            capture_output=True, text=True, timeout=30, preexec_fn=as_nobody)
    assert result.returncode == 0 and result.stderr == ""
    assert "VI_1: BACKUP -> MASTER" in relay.wait_for(2)[1]["Subject"]  # root's states were read


def random_json(rng, depth=0):
    pick = rng.randrange(9 if depth < 3 else 6)
    return [lambda: rng.randrange(-2**70, 2**70), lambda: rng.uniform(-1e30, 1e30), lambda: None,
            lambda: rng.random() < 0.5, lambda: "".join(chr(rng.randrange(0, 0x3000)) for _ in range(9)),
            lambda: 10 ** rng.randrange(300, 400),
            lambda: [random_json(rng, depth + 1) for _ in range(3)],
            lambda: {"k": random_json(rng, depth + 1)},
            lambda: float(rng.choice(["nan", "inf", "-inf"]))][pick]()


@pytest.mark.slow
def test_random_spool_files_never_stop_delivery_or_print_a_traceback(notifier, relay):
    """300 seeded random files (events with a random field, bytes, names) in every queue."""
    rng = random.Random(1511)
    notifier.configure(relay)
    make_spool(notifier)
    for i in range(300):
        sub = rng.choice(["incoming", "mail", "webhook", "expired"])
        event = events.make("INSTANCE", f"FUZZ_{i}", "MASTER", 1)
        name = rng.choice([event["id"], old_id(30, i),
                           os.fsdecode(rng.randbytes(8)).replace("/", "_").replace("\0", "_")])
        event["id"] = name if rng.random() < 0.7 else event["id"]
        event[rng.choice(list(event))] = random_json(rng)
        data = rng.choice([json.dumps(event).encode("utf-8", "surrogatepass"), rng.randbytes(40)])
        (notifier.spool / sub / f"{name}.json").write_bytes(data)
    for args in (("spool", "list"), ("notify", "INSTANCE", "VI_1", "MASTER", "100")):
        result = notifier.kachecks(*args)
        assert result.returncode == 0 and result.stderr == "", result.stderr
    notifier.wait_idle()
    flushed = notifier.kachecks("spool", "flush")
    assert flushed.returncode in (0, 1) and "Traceback" not in flushed.stderr
    assert "internal error" not in flushed.stderr
    assert any("VI_1: UNKNOWN -> MASTER (prio 100)" in m["Subject"] for m in relay.messages)
    assert notifier.queued(("incoming", "mail")) == []
