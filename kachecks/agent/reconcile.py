"""Reconciliation: a state keepalived never notified, found by the agent's ``[vrrp]``.

keepalived runs notify scripts fire and forget (a script killed, a FIFO reader that
died, a reload), and then the mail trail no longer says who holds the VIP. Where the
agent watches an instance it knows whether this director holds its addresses;
``kachecks notify`` and ``kachecks fifo`` record the last state notified per instance
(kachecks.notify.notified). When the two disagree for longer than ``after``
(``[notify] reconcile_after``), the missed event is due: kachecks.agent.pair spools it,
marked as seen by kachecks, and that event is recorded as notified in turn, so it is
sent once, and not again after the agent restarts.

Pure: no clock, file or socket of its own. The rules:

- MASTER (and MASTER_RX_LOWER_PRI) agree with holding the addresses; BACKUP, FAULT,
  STOP, DELETED and the agent's own NOT_MASTER with not holding them.
- Nothing notified yet agrees with not holding them: a backup is not announced because
  kachecks was installed after keepalived started; a holder is (nobody was told).
- Once an instance's event is spooled it is not due again for the same holding until
  the record agreed (it does at the next look, unless the record could not be written).
- A spool that failed makes it due again ``after`` later; ``after`` 0 is off.
"""


def agrees(holder, notified):
    """Whether holding the addresses (``holder``) matches the last state notified
    (``notified``: True, it said a holder's state; False, it said not; None, nothing)."""
    return holder == bool(notified)


class Reconciler:
    """Which instances are due, fed ``due(now, seen)`` about once a second (``now``:
    monotonic seconds); the caller says ``spooled`` or ``failed`` for each it was given."""

    def __init__(self, after):
        self.after = after
        self.since = {}  # name -> when the disagreement was first seen
        self.said = {}  # name -> the holding spooled last, until the record agrees

    def due(self, now, seen):
        """The names of ``seen`` (``(name, holder, notified)`` per watched instance) whose
        disagreement has lasted longer than ``after``; forgets the instances not in it."""
        names, due = set(), []
        for name, holder, notified in seen:
            names.add(name)
            if agrees(holder, notified):
                self.since.pop(name, None)
                self.said.pop(name, None)
                continue
            if self.said.get(name) == holder:
                continue  # spooled already: its record is not there (yet)
            self.said.pop(name, None)
            started = self.since.setdefault(name, now)
            if self.after and now - started >= self.after:
                due.append(name)
        for name in set(self.since) - names:
            del self.since[name]
        for name in set(self.said) - names:
            del self.said[name]
        return due

    def spooled(self, name, holder):
        """The event of ``name`` saying ``holder`` is in the spool."""
        self.said[name] = holder
        self.since.pop(name, None)

    def failed(self, name, now):
        """Spooling it failed: due again ``after`` from ``now``."""
        self.since[name] = now
