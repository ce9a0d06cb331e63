"""The agent's event loop (kachecks.agent.loop): the agent's own readers (the pair watch's
sockets) beside the probes' sockets, and calls handed in by other threads."""

import os
import socket
import threading

from kachecks.agent.loop import Loop
from kachecks.net.steps import READ


def test_a_reader_is_called_while_readable_and_never_after_it_is_removed():
    loop = Loop()
    a, b = socket.socketpair()
    seen = []
    try:
        loop.add_reader(a.fileno(), seen.append)
        b.send(b"x")
        loop.poll(1)
        loop.poll(1)  # level-triggered: still readable, called again
        assert seen == [a.fileno(), a.fileno()]
        loop.remove_reader(a.fileno(), seen.append)
        loop.poll(0)
        assert len(seen) == 2
    finally:
        loop.close()
        a.close()
        b.close()


def test_removing_a_reader_leaves_a_probe_that_took_its_descriptor_number_alone():
    loop = Loop()
    a, b = socket.socketpair()
    pair_reads, probe_events = [], []
    try:
        number = a.fileno()
        loop.add_reader(number, pair_reads.append)
        a.close()  # the watcher closed its socket: the epoll forgets it by itself
        c, d = socket.socketpair()
        if c.fileno() != number:  # make the probe's socket take the number
            os.dup2(c.fileno(), number)
            c.close()
            c = socket.socket(fileno=number)
        loop.watch(c, READ, probe_events.append, "probe")
        loop.remove_reader(number, pair_reads.append)  # late: the number is the probe's now
        d.send(b"x")
        loop.poll(1)
        assert probe_events == ["probe"]
        assert pair_reads == []
    finally:
        loop.close()
        for s in (b, c, d):
            s.close()


def test_a_call_handed_in_from_another_thread_ends_the_wait_at_once():
    loop = Loop()
    done = []
    try:
        threading.Timer(0.05, loop.call_soon_threadsafe, (done.append, "called")).start()
        loop.poll(30)  # would wait 30 s without the wake-up
        assert done == ["called"]
    finally:
        loop.close()
