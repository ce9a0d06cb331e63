"""The last state notified per instance: recorded by every path that spools an INSTANCE event,
durable, newest first, and read by the agent's reconciliation (kachecks.notify.notified)."""

import json
import os

from kachecks.notify import event as events
from kachecks.notify import notified
from kachecks.notify import spool as store
from kachecks.notify.commands import put


def last(notifier, *names):
    return notified.read(str(notifier.spool), names or ("VI_1",))


def test_kachecks_notify_records_each_instances_last_state_on_disk(notifier):
    for args in (("INSTANCE", "VI_1", "BACKUP", "50"), ("INSTANCE", "VI_2", "FAULT", "50"),
                 ("INSTANCE", "VI_1", "MASTER", "100")):
        assert notifier.notify(*args).returncode == 0
    found = last(notifier, "VI_1", "VI_2", "VI_3")
    assert found["VI_1"]["state"] == "MASTER" and found["VI_1"]["source"] == "notify"
    assert found["VI_2"]["state"] == "FAULT"
    assert found["VI_3"] is None
    on_disk = json.loads((notifier.spool / "notified" / "i-VI_1.json").read_text())
    assert on_disk["state"] == "MASTER" and events.ID_RE.fullmatch(on_disk["event"])


def test_an_older_event_spooled_later_does_not_overwrite_a_newer_record(notifier):
    newer = events.make("INSTANCE", "VI_1", "MASTER", 100, source="fifo")
    older = dict(events.make("INSTANCE", "VI_1", "BACKUP", 100, source="fifo"),
                 time=newer["time"] - 1)
    with put(newer, str(notifier.spool)):
        pass
    with put(older, str(notifier.spool)) as spool:
        assert notified.record(spool, older) is False
    assert last(notifier)["VI_1"]["state"] == "MASTER"


def test_only_an_instances_own_holding_or_releasing_states_are_recorded(notifier):
    root = str(notifier.spool)
    for evt in (events.make("GROUP", "VI_1", "FAULT", 0), events.make("RS", "VI_1", "DOWN"),
                events.make("INSTANCE", "VI_1", "NOT_A_STATE"),
                events.make(events.VRRP, "VI_1", "SPLIT_BRAIN", source="agent")):
        with put(evt, root) as spool:
            assert notified.record(spool, evt) is False, evt
    assert last(notifier)["VI_1"] is None
    for state, holds in (("MASTER", True), ("MASTER_RX_LOWER_PRI", True), ("BACKUP", False),
                         ("FAULT", False), ("STOP", False), ("DELETED", False),
                         ("NOT_MASTER", False)):
        assert notified.holds(state) is holds, state
    assert notified.holds("UP") is None


def test_a_fifo_line_and_an_agents_reconciled_event_are_recorded_too(notifier):
    root = str(notifier.spool)
    with put(events.from_fifo_line('INSTANCE "VI_1" BACKUP 50'), root):
        pass
    assert last(notifier)["VI_1"]["source"] == "fifo"
    seen = events.make("INSTANCE", "VI_1", notified.NOT_MASTER, source="agent", title="NOT MASTER")
    with put(seen, root):
        pass
    assert last(notifier)["VI_1"]["state"] == "NOT_MASTER"
    assert last(notifier)["VI_1"]["source"] == "agent"


def test_odd_instance_names_get_files_of_their_own_inside_notified(notifier):
    names = ["VI/../x", ".hidden", "é x", "x" * 400]
    assert len({notified.file_name(n) for n in names}) == len(names)
    for name in names:
        assert notifier.notify("INSTANCE", name, "MASTER").returncode == 0
    assert all(entry["state"] == "MASTER" for entry in last(notifier, *names).values())
    assert set(os.listdir(notifier.spool)) <= {*store.SUBDIRS, ".lock"}  # nothing escaped
    assert all(n.startswith(("i-", "h-")) for n in os.listdir(notifier.spool / "notified"))


def test_a_record_that_cannot_be_written_is_said_and_the_event_still_spooled(
        notifier, syslog_socket):
    notifier.spool.mkdir()
    (notifier.spool / "notified").write_text("not a directory\n")
    result = notifier.notify("INSTANCE", "VI_1", "MASTER", "100")
    assert result.returncode == 0, result.stderr
    logs = "\n".join(syslog_socket())
    assert "spooled but not recorded as VI_1's last notified state" in logs
    assert "not a directory" in logs


def test_a_damaged_or_linked_record_reads_as_none_never_as_a_state(notifier):
    assert notifier.notify("INSTANCE", "VI_1", "MASTER", "100").returncode == 0
    assert notifier.notify("INSTANCE", "VI_2", "MASTER", "100").returncode == 0
    where = notifier.spool / "notified"
    (where / "i-VI_1.json").write_text("{not json")
    (where / "i-VI_2.json").unlink()
    (where / "i-VI_2.json").symlink_to(where / "i-VI_1.json")
    assert last(notifier, "VI_1", "VI_2") == {"VI_1": None, "VI_2": None}


def test_a_spool_from_before_records_stands_in_with_what_its_channels_delivered(notifier):
    """An upgrade: no notified/ yet, but mail/.states.json says VI_1 was last MASTER."""
    with store.Spool(str(notifier.spool)) as spool:
        spool.write("mail", ".states.json", {"INSTANCE VI_1": {
            "state": "MASTER", "event": "1795666780855790539-0020124-5d1bc3",
            "time": 1795666780.85}})
    found = last(notifier)["VI_1"]
    assert found["state"] == "MASTER" and found["time"] == 1795666780.85
    assert notifier.notify("INSTANCE", "VI_1", "BACKUP", "50").returncode == 0
    assert last(notifier)["VI_1"]["state"] == "BACKUP"  # a record wins over what was delivered


def test_no_spool_yet_reads_as_nothing_notified_and_creates_nothing(tmp_path):
    assert notified.read(str(tmp_path / "spool"), ["VI_1"]) == {"VI_1": None}
    assert not (tmp_path / "spool").exists()


def test_a_reconciled_event_says_what_was_seen_whatever_mail_subject_is(notifier):
    seen = events.make("INSTANCE", "VI_1", "MASTER", source="agent",
                       raw="VI_1 vrid 50 on eth0: this director holds 192.168.8.142 since …",
                       title="MASTER (seen by kachecks: 192.168.8.142 on eth0 since 12:00:03;"
                             " keepalived's notification never came)")
    seen["previous"] = "BACKUP"
    line = events.headline(seen, "[{host}] {name}: {previous} -> {state}{prio}")
    assert line == (f"[{seen['host']}] VI_1: MASTER (seen by kachecks: 192.168.8.142 on eth0"
                    " since 12:00:03; keepalived's notification never came)")
    text = events.body(seen, "{raw}")
    assert "never reached kachecks" in text and "Previous: BACKUP" in text
    assert "this director holds 192.168.8.142" in text
    keepalived = events.make("INSTANCE", "VI_1", "MASTER", 100)
    assert events.headline(keepalived, "{name}: {state}") == "VI_1: MASTER"
