"""No caller uid can take every slot of the worker: one user of the socket (a --group
member) who keeps runs going cannot make everyone else's checks run in-process."""

import os
import pwd
import subprocess

import pytest

from harness.checks import MD5_SERVER1 as MD5
from harness.peers import cli
from harness.peers.hostile import Mute
from harness.peers.worker import Worker
from harness.redteam import SlotHolder
from kachecks.worker.server import SLOTS, Slots


@pytest.fixture
def never_answers():
    """A port that accepts and never answers: a run against it lasts its whole --timeout."""
    with Mute() as mute:
        yield mute.port


def check_as_nobody(open_dir, url, socket_path):
    nobody = pwd.getpwnam("nobody")
    state = open_dir / "nobody-state"
    state.mkdir(exist_ok=True)
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    return subprocess.run(cli.command("kachecks-http") + ["--url", url, "--digest", MD5,
                                                          "--verbose"],
                          capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, KACHECKS_STATE_DIR=str(state),
                                   KACHECKS_WORKER_SOCKET=str(socket_path)),
                          user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])


@pytest.mark.parametrize("options, total, share", [
    ([], SLOTS, SLOTS // 2),
    (["--slots", "4"], 4, 2),
    (["--slots", "4", "--slots-per-uid", "3"], 4, 3),
], ids=["default", "slots-4", "slots-4-per-uid-3"])
def test_one_uid_holding_runs_gets_its_share_and_another_uid_is_still_served(
        open_dir, https, never_answers, options, total, share, other_user):
    held_env = {"KACHECKS_STATE_DIR": os.environ["KACHECKS_STATE_DIR"],
                "KACHECKS_SYSLOG_SOCKET": os.environ["KACHECKS_SYSLOG_SOCKET"]}
    with Worker(cli.command("kachecks"), open_dir / "worker.sock", args=options) as worker:
        os.chmod(worker.socket, 0o666)
        with SlotHolder(worker.socket, never_answers, held_env) as holder:
            held = holder.hold(SLOTS + 1)  # as many as the worker lets us: all, on a bare worker
            done = check_as_nobody(open_dir, https.url, worker.socket)
    assert held == share
    assert holder.declined == (f"busy: uid {os.geteuid()} holds {share} of the {total} slots,"
                               f" its share")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("HTTP OK - 200 OK")
    assert f"(run by kachecks worker {worker.pid})" in done.stdout


def test_slots_bound_the_total_and_each_uids_share():
    slots = Slots(4)
    assert slots.per_uid == 2
    slots.take(101, 1000)
    slots.take(102, 1000)
    assert slots.refusal(1000) == "busy: uid 1000 holds 2 of the 4 slots, its share"
    assert slots.refusal(0) is None
    slots.take(103, 0)
    slots.take(104, 0)
    assert slots.refusal(65534) == "busy"  # every slot taken, whoever asks
    slots.free(101)
    assert slots.refusal(1000) is None  # an ended run gives its uid the slot back
    assert slots.refusal(0) == "busy: uid 0 holds 2 of the 4 slots, its share"
    slots.free(999)  # not a child of ours: nothing changes
    assert len(slots) == 3


def test_a_worker_of_one_slot_still_serves_one_run():
    assert Slots(1).per_uid == 1
    assert Slots(64, per_uid=64).refusal(0) is None


def test_a_check_beyond_its_uids_share_runs_in_process_and_says_why(open_dir, https,
                                                                     never_answers):
    held_env = {"KACHECKS_STATE_DIR": os.environ["KACHECKS_STATE_DIR"],
                "KACHECKS_SYSLOG_SOCKET": os.environ["KACHECKS_SYSLOG_SOCKET"]}
    with Worker(cli.command("kachecks"), open_dir / "worker.sock", args=["--slots", "4"]) as worker:
        with SlotHolder(worker.socket, never_answers, held_env) as holder:
            assert holder.hold(4) == 2
            done = cli.run("kachecks-http", "--url", https.url, "--digest", MD5, "--verbose",
                           env={"KACHECKS_WORKER_SOCKET": str(worker.socket)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("HTTP OK - 200 OK")
    assert "run by kachecks worker" not in done.stdout
    assert (f"(kachecks worker declined: busy: uid {os.geteuid()} holds 2 of the 4 slots,"
            f" its share)") in done.stdout.splitlines()
    assert len(https.requests) == 1  # the check itself reached the server
