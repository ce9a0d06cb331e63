"""End to end: the reference deployment in namespaces splits, fails over and mails the admins.

The same scenario as ``scripts/lab`` (harness/lab/scenario.py), run once; each test
asserts one aspect of its outcome.
"""

import hashlib

import pytest

from harness.lab import reference as ref
from harness.lab import scenario
from harness.lab.lab import Lab
from harness.peers.netns import namespaces, run_prefix

pytestmark = [pytest.mark.netns, pytest.mark.slow]

PREFIX = run_prefix("kclabe")


@pytest.fixture(scope="module")
def outcome():
    lab = Lab(PREFIX)
    with lab:
        summary = scenario.run(lab, say=lambda *a: None)
    return lab, summary


def test_genhash_digests_are_the_reference_deployments(outcome):
    _, summary = outcome
    assert summary["digests"] == ref.REFERENCE_DIGESTS


def test_both_generated_configurations_pass_keepalived_config_test(outcome):
    _, summary = outcome
    assert summary["config_test"] == {"lvs1": 0, "lvs2": 0}


def test_vip_is_answered_by_lvs1_then_by_lvs2_after_the_failover(outcome):
    _, summary = outcome
    assert summary["vip_before"] == "lvs1"
    assert summary["vip_after_failover"] == "lvs2"


def test_corrupted_page_fails_the_check_and_the_check_says_why(outcome):
    _, summary = outcome
    assert "VRRP_Script(chk_web1) failed" in summary["check_failed"]
    code, line = summary["check_by_hand"]
    assert code == 1
    assert "mismatch" in line.lower(), line
    got = hashlib.md5(scenario.CORRUPTED.encode()).hexdigest()
    down = [r for r in summary["check_reasons"] if "192.168.8.101" in r and "DOWN" in r]
    assert down and "mismatch" in down[0] and got in down[0], summary["check_reasons"]


def test_vrrp_timeline_is_lvs1_master_then_lvs2_master_and_nopreempt_holds(outcome):
    _, summary = outcome
    masters = [host for host, text in summary["vrrp"] if "Entering MASTER STATE" in text]
    assert masters == ["lvs1", "lvs2", "lvs2"]  # lvs2: in the split brain, then the failover
    assert summary["lvs1_states_after_restart"] == ["BACKUP"]
    assert summary["lvs2_state"] == "MASTER"
    assert summary["vip_after_restore"] == "lvs2"


def test_timeline_orders_actions_and_reactions(outcome):
    lab, _ = outcome
    events = lab.timeline.of()

    def first(host, needle, after=0):
        return next(i for i, e in enumerate(events)
                    if i >= after and e.host == host and needle in e.text)

    lvs1_master = first("lvs1", "Entering MASTER STATE")
    corrupted = first("web1", "service.txt now", lvs1_master)
    chk_failed = first("lvs1", "VRRP_Script(chk_web1) failed", corrupted)
    stopped = first("lvs1", "stopping keepalived", chk_failed)
    lvs2_master = first("lvs2", "Entering MASTER STATE", stopped)
    first("lvs1", "Entering BACKUP STATE", first("lvs1", "keepalived --vrrp started", lvs2_master))
    assert all("Entering MASTER" not in e.text for e in events[lvs2_master:] if e.host == "lvs1")


def test_every_transition_reached_the_administrators_by_mail(outcome):
    _, summary = outcome
    assert summary["missing_mails"] == [], summary["mails"]
    lvs1_master = next(i for i, s in enumerate(summary["mails"]) if "lvs1" in s and "MASTER" in s)
    lvs2_master = next(i for i, s in enumerate(summary["mails"]) if "lvs2" in s and "MASTER" in s)
    assert lvs1_master < lvs2_master


def test_vrrp_filtered_on_lvs2_is_split_brain_mailed_by_both_agents_within_seconds(outcome):
    _, summary = outcome
    assert summary["split_brain_owners"] == ["lvs1", "lvs2"]  # both MASTER
    split = "SPLIT BRAIN (192.168.8.100 prio 100, 192.168.8.110 prio 50)"
    assert summary["split_brain_subjects"] == {host: f"Subject: [{host}] VI_1: {split}"
                                               for host in ("lvs1", "lvs2")}
    # lvs2 takes the VIP after 3 adverts and skew, the agents hold 3 advert_int more
    assert all(delay <= 3.6 + 3 + 4 for delay in summary["split_brain_mails"].values()), \
        summary["split_brain_mails"]
    assert ("VI_1", "split-brain") in summary["split_brain_status"]["lvs1"]
    assert ("VI_1", "filtered") in summary["split_brain_status"]["lvs2"]
    assert ("VI_1", "filtered") not in summary["split_brain_status"]["lvs1"]


def test_vrrp_let_in_again_ends_the_split_brain_and_both_agents_mail_that_it_is_over(outcome):
    _, summary = outcome
    assert summary["split_brain_owners_after"] == ["lvs1"]
    assert sorted(summary["split_brain_over_subjects"]) == ["lvs1", "lvs2"]
    for host, text in summary["split_brain_over_subjects"].items():
        assert text.startswith(f"Subject: [{host}] VI_1: split brain over after "), text


def test_teardown_leaves_no_namespace_or_process(outcome):
    lab, _ = outcome
    assert lab.left_behind == []
    assert namespaces(PREFIX) == []
