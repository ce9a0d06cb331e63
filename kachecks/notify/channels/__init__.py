"""Delivery channels: each module here has ``send(events, cfg, message_id)``.

``send`` delivers one batch or raises ``DeliveryError`` (one readable line);
the batch then stays in the spool for a retry. Channel modules import their
heavy libraries (aiosmtplib, requests) themselves, so loading one is a
deliverer's business only: ``kachecks notify`` never does.
"""

CHANNELS = ("mail", "webhook")  # also the names of their queues in the spool, in delivery order


class DeliveryError(Exception):
    """This batch was not accepted; it stays in the spool for a retry."""


def sender(name):
    """The ``send`` function of channel ``name``."""
    if name not in CHANNELS:
        raise ValueError(f"unknown channel {name!r}")
    return __import__(f"{__name__}.{name}", fromlist=["send"]).send
