"""The reference deployment's failure scenario, run by ``scripts/lab`` and by the e2e test.

1. VIP on lvs1 (the client's request to the VIP is answered by lvs1);
2. a firewall on lvs2 drops VRRP: lvs2 becomes MASTER too (split brain), both
   directors' agents mail SPLIT BRAIN; the filter removed, lvs2 goes back to BACKUP
   and both mail "split brain over";
3. web1's service.txt corrupted: its check fails and says why;
4. keepalived stopped on lvs1: lvs2 becomes MASTER and the VIP answers from lvs2;
5. web1 and lvs1 restored: lvs1 comes back as BACKUP and stays BACKUP (nopreempt);
6. the mails the administrators received.

Every step raises ScenarioError with the timeline so far if the system does not
behave; the Lab context manager tears everything down in every case.
"""

import argparse
import os
import signal
import sys
import time

from harness.lab import reference as ref
from harness.lab.lab import Lab
from harness.lab.timeline import Timeline
from harness.wait import wait_for

CORRUPTED = "hello from Server 1 -- defaced\n"
# lvs1 (priority 100) watching lvs2 (50): without nopreempt it takes over after the
# master-down interval, 3 adverts + skew = 3.6 s after start (measured); hold longer.
NOPREEMPT_HOLD = 5.0
MAIL_WAIT = 20.0
# From the filter to both agents' SPLIT BRAIN mails: lvs2 waits 3 adverts + skew before it
# takes the VIP, the agents hold 3 advert_int more before they call it split brain.
SPLIT_BRAIN_WAIT = 15.0


class ScenarioError(AssertionError):
    pass


def expect(condition, message):
    if not condition:
        raise ScenarioError(message)


def run(lab, say=print):
    """Drive the scenario on a Lab that is up; return a summary dict for callers to assert."""
    tl = lab.timeline
    summary = {"digests": dict(lab.digests), "config_test": dict(lab.config_status)}

    say("\n== 1. VIP on lvs1")
    expect(lab.vip_owner() == ["lvs1"], f"VIP owners: {lab.vip_owner()}")
    summary["vip_before"] = lab.ask_vip()
    expect(summary["vip_before"] == "lvs1", f"VIP answered by {summary['vip_before']!r}")

    say("\n== 2. a firewall on lvs2 drops VRRP: split brain")
    summary.update(split_brain(lab))

    say("\n== 3. corrupt web1's /service.txt")
    mark = len(tl.of())
    lab.web["web1"].put("service.txt", CORRUPTED)
    lab.note(f"service.txt now {CORRUPTED!r}", "web1")
    failed = tl.wait(lambda e: tl.events.index(e) >= mark and e.host == "lvs1"
                     and "VRRP_Script(chk_web1) failed" in e.text, 10,
                     "keepalived on lvs1 to see chk_web1 fail")
    summary["check_failed"] = failed.text
    code, line = lab.run_check("lvs1", "web1")
    summary["check_by_hand"] = (code, line)
    expect(code == 1, f"kachecks-http on the corrupted page exited {code}: {line}")
    # lvs2's priority drops too: had it dropped just after lvs1's priority-0 advert,
    # keepalived would restart lvs2's master-down timer (3 adverts: nobody holds the VIP
    # meanwhile, which lvs2's agent would rightly mail as NO MASTER)
    tl.wait(lambda e: tl.events.index(e) >= mark and e.host == "lvs2"
            and "VRRP_Script(chk_web1) failed" in e.text, 10,
            "keepalived on lvs2 to see chk_web1 fail")
    time.sleep(0.3)
    lab.watcher.poll()
    summary["check_reasons"] = [e.text for e in tl.of("check", "lvs1")]

    say("\n== 4. stop keepalived on lvs1")
    lab.stop_director("lvs1")
    lab.keepalived["lvs2"].wait_state("MASTER", timeout=10)
    expect(lab.vip_owner() == ["lvs2"], f"VIP owners after the stop: {lab.vip_owner()}")
    summary["vip_after_failover"] = lab.ask_vip()
    expect(summary["vip_after_failover"] == "lvs2",
           f"VIP answered by {summary['vip_after_failover']!r} after the failover")

    say("\n== 5. restore web1 and lvs1 (nopreempt: lvs2 keeps the VIP)")
    lab.web["web1"].put("service.txt", ref.SERVICE_TXT["web1"])
    lab.note(f"service.txt restored to {ref.SERVICE_TXT['web1']!r}", "web1")
    lvs1 = lab.start_director("lvs1")
    lvs1.wait_state("BACKUP", timeout=10)
    lvs1.wait_log(r"VRRP_Script\(chk_web1\) succeeded", timeout=10)
    time.sleep(NOPREEMPT_HOLD)
    summary["lvs1_states_after_restart"] = [s for _, s in lvs1.states()]
    summary["lvs2_state"] = lab.keepalived["lvs2"].state()
    expect(summary["lvs1_states_after_restart"] == ["BACKUP"],
           f"lvs1 after restart went through {summary['lvs1_states_after_restart']}")
    expect(summary["lvs2_state"] == "MASTER", f"lvs2 is {summary['lvs2_state']}")
    summary["vip_after_restore"] = lab.ask_vip()
    expect(summary["vip_after_restore"] == "lvs2",
           f"VIP answered by {summary['vip_after_restore']!r} after the restore")

    say("\n== 6. mails")
    wanted = expected_mails()
    try:
        tl.wait(lambda e: all_mailed(lab.mail_subjects(), wanted), MAIL_WAIT,
                "the mails of every transition")
    except TimeoutError:
        pass  # reported below, with what did arrive
    summary["mails"] = lab.mail_subjects()
    summary["missing_mails"] = missing(summary["mails"], wanted)
    summary["vrrp"] = [(e.host, e.text) for e in tl.of("vrrp")]
    return summary


def split_brain(lab):
    """VRRP dropped at lvs2's ingress until both agents mailed SPLIT BRAIN, then let in
    again until both mailed its end; what happened, for the summary."""
    cause = lab.filter_vrrp("lvs2")
    lab.keepalived["lvs2"].wait_state("MASTER", timeout=10)
    wait_for(lambda: sorted(lab.vip_owner()) == ["lvs1", "lvs2"], 5,
             what="both to hold the VIP")
    found = {"split_brain_owners": sorted(lab.vip_owner())}
    mails = mail_events(lab, "SPLIT BRAIN", cause, SPLIT_BRAIN_WAIT)
    found["split_brain_mails"] = {host: round(e.t - cause.t, 1) for host, e in mails.items()}
    found["split_brain_subjects"] = {host: e.text for host, e in mails.items()}
    try:  # each agent rewrites its status within a second of a change
        wait_for(lambda: all((ref.INSTANCE, "split-brain") in problems
                             for problems in lab.agent_problems().values()), 5, 0.1)
    except TimeoutError:
        pass  # the summary shows what they said
    found["split_brain_status"] = lab.agent_problems()
    lifted = lab.unfilter_vrrp("lvs2")
    lab.keepalived["lvs2"].wait_state("BACKUP", timeout=10)
    wait_for(lambda: lab.vip_owner() == ["lvs1"], 5, what="lvs1 alone to hold the VIP")
    found["split_brain_owners_after"] = lab.vip_owner()
    over = mail_events(lab, "split brain over after", lifted, SPLIT_BRAIN_WAIT)
    found["split_brain_over_mails"] = {host: round(e.t - lifted.t, 1) for host, e in over.items()}
    found["split_brain_over_subjects"] = {host: e.text for host, e in over.items()}
    return found


def mail_events(lab, words, after, timeout):
    """{director: the timeline's first mail event after ``after`` whose subject, from that
    director, holds ``words``}: every director's, within ``timeout`` s, or the ones that came."""
    tl = lab.timeline
    found = {}

    def arrived():
        lab.mail_subjects()  # poll the mailbox now
        for e in tl.of("mail"):
            for host in ref.DIRECTORS:
                if host not in found and e.t >= after.t and f"[{host}] " in e.text \
                        and words in e.text:
                    found[host] = e
        return len(found) == len(ref.DIRECTORS)

    try:
        wait_for(arrived, timeout, interval=0.1, what=f"both directors' '{words}' mails")
    except TimeoutError:
        pass  # the summary says which one is missing
    return found


def expected_mails():
    """(host, words) pairs the administrators must be told about, in the subject."""
    return [("lvs1", "MASTER"), ("lvs2", "SPLIT BRAIN"), ("lvs1", "SPLIT BRAIN"),
            ("lvs2", "split brain over"), ("lvs1", "split brain over"), ("lvs1", "STOP"),
            ("lvs2", "MASTER"), ("lvs1", "BACKUP")]


def missing(subjects, wanted):
    return [w for w in wanted if not any(w[0] in s and w[1] in s for s in subjects)]


def all_mailed(subjects, wanted):
    return not missing(subjects, wanted)


def report(lab, summary, say=print):
    say("\n== timeline (without keepalived's script successes and the notifier's spool lines)")
    for event in lab.timeline.of():
        if not routine(event):
            say(str(event))
    if "split_brain_mails" in summary:
        say("\n== split brain: VRRP (IP protocol 112) dropped at lvs2's eth0")
        say(f"  VIP held by: {' and '.join(summary['split_brain_owners'])} (both MASTER)")
        agents_mails(summary, "split_brain", "after the filter", say)
        for host, problems in summary["split_brain_status"].items():
            say(f"  {host}'s agent status: {', '.join(c for _, c in problems) or 'no problem'}")
        say(f"  filter removed: VIP held by {' and '.join(summary['split_brain_owners_after'])}")
        agents_mails(summary, "split_brain_over", "after the filter went", say)
    say("\n== mails received by the administrators (the last ones are sent at teardown)")
    for subject in lab.mail_subjects():
        say(f"  {subject}")
    if summary.get("missing_mails"):
        say(f"  MISSING: {summary['missing_mails']}")
    say("\n== notes")
    ipvs = ("IPVS is present but not used" if os.path.exists("/proc/net/ip_vs")
            else "this kernel has no IPVS: no /proc/net/ip_vs")
    say(f"  keepalived runs --vrrp only ({ipvs}); the virtual_server section\n"
        "  (lb_algo wlc, lb_kind DR, persistence_timeout 120, MISC_CHECKs with kachecks-http and\n"
        "  kachecks-ldap) is validated by `keepalived -t` but the LVS checker does not run.\n"
        "  The VIP is answered by a small responder on the director that owns it.")
    for gap in lab.gaps:
        say(f"  GAP: {gap}")


def agents_mails(summary, key, when, say):
    """One line per director: the subject of its agent's mail and how long it took."""
    for host in ref.DIRECTORS:
        delay = summary[f"{key}_mails"].get(host)
        said = summary[f"{key}_subjects"].get(host, "MISSING")
        say(f"  {host}'s agent: {said}" + (f"  ({delay:g} s {when})" if delay is not None
                                            else ""))


def routine(event):
    """Lines the live view shows but the summary leaves out."""
    return (event.kind == "gap"
            or (event.kind == "script" and "failed" not in event.text)
            or (event.kind == "notify" and (" spooled as " in event.text
                                            or "delivered by mail" in event.text)))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="scripts/lab", description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="kclab", help="namespace prefix (default kclab)")
    parser.add_argument("--bindir", help="where kachecks executables are (default: beside python)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--quiet", action="store_true", help="no live events, only the report")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("scripts/lab: needs root (network namespaces, keepalived)", file=sys.stderr)
        return 1
    say = print
    timeline = Timeline(echo=None if args.quiet else (lambda line: print(line, flush=True)))
    summary, failure = {}, None
    lab = Lab(args.prefix, timeline=timeline, bindir=args.bindir, keep=args.keep)

    def interrupt(signum, frame):
        if lab.tearing_down:  # a second Ctrl-C must not cut the teardown short
            print("tearing down, please wait", file=sys.stderr, flush=True)
            return
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)
    try:
        with lab:
            summary = run(lab, say)
    except KeyboardInterrupt:
        failure = "interrupted"
    except (ScenarioError, TimeoutError, RuntimeError, OSError) as e:
        failure = f"{type(e).__name__}: {e}"
    report(lab, summary, say)
    left = lab.left_behind
    say(f"\n== teardown: {'nothing left behind' if not left else left}")
    if args.keep:
        say(f"   work directory kept: {lab.workdir}")
    if failure:
        say(f"\nFAILED: {failure}")
        return 1
    if summary.get("missing_mails"):
        say("\nFAILED: some transitions were not mailed")
        return 1
    say("\nOK: split brain mailed by both agents, failover, nopreempt and mails as in the"
        " reference deployment")
    return 0


if __name__ == "__main__":
    sys.exit(main())
