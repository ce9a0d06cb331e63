"""Reconciliation's decision, pure (kachecks.agent.reconcile): when holding an instance's
addresses and the last state notified disagree for longer than reconcile_after, the missed
event is due, once."""

from kachecks.agent.reconcile import Reconciler, agrees

AFTER = 10.0


def due_at(reconciler, times, holder, notified, name="VI_1"):
    """The times of ``times`` at which ``name`` is due."""
    return [t for t in times if reconciler.due(t, [(name, holder, notified)])]


def test_holding_or_not_agrees_with_a_holders_or_a_non_holders_state():
    assert agrees(True, True) and agrees(False, False)
    assert not agrees(True, False) and not agrees(False, True)
    assert agrees(False, None)  # nothing notified yet, and nothing held: nothing to say
    assert not agrees(True, None)  # a holder nobody was told of


def test_a_disagreement_is_due_only_once_it_lasted_reconcile_after():
    reconciler = Reconciler(AFTER)
    assert due_at(reconciler, [100.0, 105.0, 109.9], True, False) == []
    assert reconciler.due(110.0, [("VI_1", True, False)]) == ["VI_1"]


def test_a_disagreement_shorter_than_reconcile_after_is_never_due():
    reconciler = Reconciler(AFTER)
    assert due_at(reconciler, [100.0, 108.0], True, False) == []
    assert due_at(reconciler, [109.0], False, False) == []  # notified after 9 s: agreed
    assert due_at(reconciler, [115.0, 119.0, 130.0], False, False) == []
    # a new disagreement counts from when it was seen, not from the first one
    assert due_at(reconciler, [131.0, 140.9], True, False) == []
    assert due_at(reconciler, [141.0], True, False) == [141.0]


def test_a_holder_that_was_notified_is_never_due_nor_a_backup_nobody_notified():
    reconciler = Reconciler(AFTER)
    assert due_at(reconciler, [0.0, 50.0, 1000.0], True, True) == []
    assert due_at(reconciler, [1001.0, 2000.0], False, None) == []
    assert due_at(reconciler, [2001.0, 2011.0], True, None) == [2011.0]


def test_once_spooled_it_is_not_due_again_while_the_record_lags_behind():
    reconciler = Reconciler(AFTER)
    assert reconciler.due(10.0, [("VI_1", True, None)]) == []
    assert reconciler.due(20.0, [("VI_1", True, None)]) == ["VI_1"]
    reconciler.spooled("VI_1", True)
    # the record could not be written: the agent does not repeat itself
    assert due_at(reconciler, [21.0, 40.0, 400.0], True, None) == []
    # the record caught up, then the director lost the addresses unnotified: due again
    assert due_at(reconciler, [401.0], True, True) == []
    assert due_at(reconciler, [402.0, 411.9, 412.0], False, True) == [412.0]


def test_a_spool_that_failed_makes_it_due_again_reconcile_after_later():
    reconciler = Reconciler(AFTER)
    reconciler.due(0.0, [("VI_1", True, False)])
    assert reconciler.due(10.0, [("VI_1", True, False)]) == ["VI_1"]
    reconciler.failed("VI_1", 10.0)
    assert due_at(reconciler, [11.0, 19.9, 20.0], True, False) == [20.0]


def test_reconcile_after_0_is_off():
    reconciler = Reconciler(0)
    assert due_at(reconciler, [0.0, 10.0, 10_000.0], True, False) == []


def test_each_instance_has_its_own_clock_and_one_no_longer_watched_is_forgotten():
    reconciler = Reconciler(AFTER)
    assert reconciler.due(0.0, [("VI_1", True, False), ("VI_2", False, None)]) == []
    assert reconciler.due(5.0, [("VI_1", True, False), ("VI_2", True, False)]) == []
    assert reconciler.due(10.0, [("VI_1", True, False), ("VI_2", True, False)]) == ["VI_1"]
    assert reconciler.due(12.0, [("VI_2", True, False)]) == []  # VI_1 no longer watched
    assert reconciler.due(15.0, [("VI_1", True, False), ("VI_2", True, False)]) == ["VI_2"]
    assert reconciler.due(24.9, [("VI_1", True, False)]) == []  # VI_1's clock began at 15
    assert reconciler.due(25.0, [("VI_1", True, False)]) == ["VI_1"]


def test_the_agent_finds_the_records_in_its_files_spool_read_again_when_the_file_changes(
        tmp_path):
    from kachecks.agent.pair import Poster
    from kachecks.notify.config import DEFAULT_SPOOL

    path = tmp_path / "kachecks.toml"
    path.write_text(f'[spool]\ndir = "{tmp_path / "one"}"\n')
    poster = Poster(str(path))
    assert poster.spool_dir() == str(tmp_path / "one")
    assert poster.notified(["VI_1"]) == {"VI_1": None}  # no spool there yet
    path.write_text(f'[spool]\ndir = "{tmp_path / "second"}"\n')
    assert poster.spool_dir() == str(tmp_path / "second")
    path.write_text("[spool\n")  # broken: where `kachecks notify` spools then
    assert poster.spool_dir() == DEFAULT_SPOOL
