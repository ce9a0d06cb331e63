"""The pair watcher: the sockets of every watched interface, the address
monitor and the detector, put together.

A resident process embeds it without a thread of its own:

    watcher = Watcher(instances, watched)          # opens everything, or Unavailable
    for fd in watcher.fds(): selector.register(fd, EVENT_READ)
    ...  when fd is readable:  captures, changes = watcher.read(fd)
    ...  every TICK seconds:   changes = watcher.tick()
    watcher.status()           # per instance: held, sources, adverts, active problems
    watcher.close()

A command that only listens iterates ``watcher.events(until)``, which polls
those descriptors itself.
"""

import select
import time

from kachecks.errors import Unavailable
from kachecks.vrrp.addresses import Addresses
from kachecks.vrrp.detect import Detector
from kachecks.vrrp.sockets import interface_index, open_interface
from kachecks.vrrp.wire import MULTICAST, WIRE, address_bytes

TICK = 0.2  # seconds between two evaluations when no packet comes


class Watcher:
    """Watch ``watched`` (default: all of ``instances``, every instance of the
    configuration) on their interfaces, plus ``interfaces`` (names) if given.

    ``hold``: seconds a split brain or a filter must last before it is
    reported (default 3 × advert_int); ``ignore_vrids``: never foreign;
    ``clock``: monotonic seconds (tests may pass their own).
    """

    def __init__(self, instances, watched=None, hold=None, ignore_vrids=(), interfaces=(),
                 clock=time.monotonic):
        self.clock = clock
        watched = list(instances if watched is None else watched)
        names = list(dict.fromkeys([i.interface for i in watched] + list(interfaces)))
        # Interfaces are followed by index, resolved once, here (in this network namespace):
        # Unavailable for a watched one that does not exist, before anything is opened.
        self.indexes = {name: interface_index(name) for name in names}
        for name in {dev for i in watched for _packed, dev in i.vips} - set(names):
            try:
                self.indexes[name] = interface_index(name)
            except Unavailable:  # a VIP's dev that does not exist: never held here
                pass
        self.names_of = {}
        for name, index in self.indexes.items():
            self.names_of.setdefault(index, []).append(name)
        self.sockets = []
        self.addresses = None
        try:
            for name in names:
                mine = [i for i in instances if i.interface == name]
                groups = {address_bytes(MULTICAST[4])[1], address_bytes(MULTICAST[6])[1]}
                groups |= {i.group for i in mine}
                families = {i.family for i in mine}
                ah = any(i.auth_type == "ah" for i in mine)
                self.sockets += open_interface(name, families, sorted(groups), ah)
            self.addresses = Addresses()
        except BaseException:
            self.close()
            raise
        self.by_fd = {s.fileno(): s for s in self.sockets}
        self.wire_of = {s.interface: s for s in self.sockets if s.vantage == WIRE}
        self.started = clock()
        self.detector = Detector(instances, self.started, watched, hold, ignore_vrids)
        for name, index in sorted(self.indexes.items()):
            self.detector.addresses(self.started, name, self.addresses.of(index))

    @property
    def instances(self):
        return list(self.detector.instances.values())

    def fds(self):
        """The file descriptors to wait on (readable: call ``read``)."""
        return [*self.by_fd, self.addresses.fileno()]

    def read(self, fd, now=None):
        """(captures, changes) after reading ``fd``; captures from every vantage (a
        stack socket's interface has its wire socket read first, so a packet's
        wire copy is always judged before its stack copy)."""
        now = self.clock() if now is None else now
        if self.addresses is not None and fd == self.addresses.fileno():
            changes = []
            for index in sorted(self.addresses.read()):
                for name in self.names_of.get(index, ()):
                    changes += self.detector.addresses(now, name, self.addresses.of(index))
            return [], changes
        sock = self.by_fd.get(fd)
        if sock is None:
            return [], []
        captures = []
        if sock.vantage != WIRE:
            captures += self.wire_of[sock.interface].read()
        captures += sock.read()
        changes = []
        for capture in captures:
            changes += self.detector.packet(capture)
        return captures, changes

    def tick(self, now=None):
        """Changes due to time alone (call it every TICK seconds)."""
        return self.detector.tick(self.clock() if now is None else now)

    def status(self, now=None):
        return self.detector.status(now)

    def problems(self):
        return self.detector.problems()

    def events(self, until=None):
        """Captures and Changes as they come, in order, until monotonic time ``until``
        (None: forever); ends with the changes of a last evaluation at ``until``."""
        poller = select.poll()
        for fd in self.fds():
            poller.register(fd, select.POLLIN)
        next_tick = self.clock() + TICK
        while True:
            now = self.clock()
            if until is not None and now >= until:
                break
            wake = next_tick if until is None else min(next_tick, until)
            ready = poller.poll(max(0.0, wake - now) * 1000)
            for fd, _event in sorted(ready, key=lambda pair: self._order(pair[0])):
                captures, changes = self.read(fd)
                yield from captures
                yield from changes
            now = self.clock()
            if now >= next_tick:
                next_tick = now + TICK
                yield from self.tick(now)
        yield from self.tick(max(self.clock(), until))

    def _order(self, fd):
        sock = self.by_fd.get(fd)
        return 0 if sock is not None and sock.vantage == WIRE else 1

    def close(self):
        for sock in self.sockets:
            sock.close()
        self.sockets = []
        if self.addresses is not None:
            self.addresses.close()
            self.addresses = None

