"""Delivery channels: each module here has ``send(events, cfg, message_id)``.

``send`` delivers one batch and returns an ``Accepted`` (what the receiver
answered), or raises ``DeliveryError`` (one readable line); the batch then
stays in the spool for a retry. Channel modules import their
heavy libraries (aiosmtplib, requests) themselves, so loading one is a
deliverer's business only: ``kachecks notify`` never does.
"""

CHANNELS = ("mail", "webhook")  # also the names of their queues in the spool, in delivery order


class DeliveryError(Exception):
    """This batch was not accepted; it stays in the spool for a retry."""


class Accepted:
    """The receiver took the batch: its answer (``2.0.0 OK queued``, ``HTTP 200 OK``) and
    the recipients it refused while taking it for the others (mail; address -> answer)."""

    def __init__(self, answer, refused=None):
        self.answer = answer
        self.refused = dict(refused or {})


def sender(name):
    """The ``send`` function of channel ``name``."""
    if name not in CHANNELS:
        raise ValueError(f"unknown channel {name!r}")
    return __import__(f"{__name__}.{name}", fromlist=["send"]).send
