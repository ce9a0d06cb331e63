"""systemd's notify protocol (``Type=notify``) over its datagram socket, no library.

sd_notify(3) is one datagram of ``KEY=value`` lines sent to ``$NOTIFY_SOCKET``
(a path, or ``@name`` for the abstract namespace). ``$WATCHDOG_USEC`` asks for
``WATCHDOG=1`` at least that often; we send it at half the period, from the
main loop, so a wedged loop (not merely a live thread) gets the agent restarted.
"""

import os
import socket


class Notifier:
    def __init__(self, environ=None):
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        self.address = address or None
        self.watchdog = None  # seconds between WATCHDOG=1, or None
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog = int(usec) / 1e6 / 2
        self._status = None

    def send(self, *lines):
        """Best effort: True when systemd got the datagram (False outside systemd)."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(1.0)
                sock.sendto("\n".join(lines).encode("utf-8", "replace"), self.address)
            return True
        except OSError:
            return False

    def status(self, text):
        """``STATUS=text``, sent only when it changed."""
        if text != self._status:
            self._status = text
            self.send(f"STATUS={text}")
