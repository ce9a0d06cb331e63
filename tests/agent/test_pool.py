"""The probe threads: a batch runs back to back on one thread, a run waits for a busy
thread no longer than the grace (never behind a hung peer), and idle threads go away."""

import threading
import time

from harness.wait import wait_for
from kachecks.agent.pool import Pool


def test_hung_runs_never_delay_a_new_one():
    pool = Pool(keep=2, idle_timeout=5)
    release = threading.Event()
    for _ in range(50):  # fifty peers that never answer
        pool.submit(release.wait, 30)
    started = threading.Event()
    submitted = time.monotonic()
    pool.submit(started.set)
    assert started.wait(2)
    waited = time.monotonic() - submitted
    assert waited < 0.5, waited
    assert pool.size == 51
    release.set()
    pool.close()


def test_threads_are_reused_and_idle_ones_retire_down_to_keep():
    pool = Pool(keep=1, idle_timeout=0.2)
    names = []
    done = threading.Event()
    for _ in range(20):  # one after the other: one thread serves them all
        done.clear()
        pool.submit(lambda: (names.append(threading.current_thread().name), done.set()))
        assert done.wait(2)
        wait_for(lambda: pool.idle, 2, interval=0.001, what="the thread to be idle again")
    assert len(set(names)) == 1, names
    gate = threading.Event()
    for _ in range(6):
        pool.submit(gate.wait, 5)
    wait_for(lambda: pool.size == 6 and not pool.queued, 5,
             what="a thread for each blocked run, each within the grace")
    gate.set()
    wait_for(lambda: pool.size == 1, 5, what="the idle threads above keep to retire")
    pool.close()


def test_a_failing_job_does_not_kill_its_thread():
    pool = Pool(keep=1, idle_timeout=5)
    names = []
    done = threading.Event()

    def boom():
        names.append(threading.current_thread().name)
        raise RuntimeError("bug in a probe")

    pool.submit(boom)
    wait_for(lambda: names and pool.idle, 2, what="the failed job's thread to be idle again")
    pool.submit(lambda: (names.append(threading.current_thread().name), done.set()))
    assert done.wait(2)
    assert names[0] == names[1] and pool.size == 1
    pool.close()


def test_a_batch_runs_back_to_back_on_one_thread():
    pool = Pool(keep=1, idle_timeout=5, grace=5.0)  # no run of the batch waits that long
    names = []
    done = threading.Event()
    gate = threading.Event()
    pool.submit(gate.wait, 5)  # the batch queues behind this run
    for i in range(20):
        pool.submit(lambda i=i: (names.append(threading.current_thread().name),
                                 i == 19 and done.set()))
    gate.set()
    assert done.wait(5)
    assert len(names) == 20 and len(set(names)) == 1, names
    assert pool.size <= 2  # the one that ran the batch, and at most one standing by
    pool.close()


def test_a_run_queued_behind_hung_ones_starts_within_the_grace():
    grace = 0.05
    pool = Pool(keep=1, idle_timeout=5, grace=grace)
    release = threading.Event()
    for _ in range(5):  # peers that never answer, submitted one by one
        pool.submit(release.wait, 30)
        wait_for(lambda: not pool.queued, 2, interval=0.001, what="the hung run to start")
    started = threading.Event()
    submitted = time.monotonic()
    pool.submit(started.set)
    assert started.wait(2)
    waited = time.monotonic() - submitted
    assert grace * 0.9 <= waited < 0.5, waited  # it waited for the busy threads, not for them to end
    assert pool.size == 6
    release.set()
    pool.close()


def test_a_run_handed_out_early_waits_behind_a_hung_one_until_it_is_due():
    pool = Pool(keep=1, idle_timeout=5, grace=0.01)
    release = threading.Event()
    pool.submit(release.wait, 30)  # a peer that never answers
    wait_for(lambda: not pool.queued, 2, interval=0.001, what="the hung run to start")
    started = []
    due = time.monotonic() + 0.3  # the schedule hands runs out up to its slack early
    pool.submit(lambda: started.append(time.monotonic()), due=due)
    wait_for(lambda: started, 3, interval=0.001, what="the run to start")
    assert due <= started[0] < due + 1.0, started[0] - due  # not before it is due: not late either
    assert pool.size == 2
    release.set()
    pool.close()
