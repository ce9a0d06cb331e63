"""A real SMTP server (aiosmtpd) on loopback for tests, the lab and smoke tests.

    with SmtpSink(starttls=True, auth=("kachecks", "s3cret")) as relay:
        ... relay.port ...
        msgs = relay.wait_for(2)     # email.message.EmailMessage objects

``replies`` scripts the answers to DATA (e.g. ``["451 4.3.0 busy",
"550 5.7.1 no"]``; then everything is accepted); ``refuse_rcpt`` maps a
recipient to the answer its RCPT TO gets (``{"x@example.org": "550 5.1.1 User
unknown"}``: a bouncing address); ``after_data`` runs between
storing a message and answering 250 (to lose the answer on purpose). Standalone, it is a sink
writing an mbox file::

    python3 -m harness.peers.smtp --port 2525 --mbox /tmp/mail.mbox [--starttls] [--auth USER:PASSWORD]

``NamespaceSink`` runs that sink in a network namespace (the lab's client, a VRRP
pair's witness) and reads its mbox back (``mbox_messages``).
"""

import argparse
import email
import email.policy
import mailbox
import os
import socket
import sys
import tempfile
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from harness.peers.ports import free_port
from harness.peers.certs import pki


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = self.sink.refuse_rcpt.get(address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        tls = server.transport.get_extra_info("ssl_object") is not None
        return self.sink._receive(session, envelope, tls)


class SmtpSink:
    """aiosmtpd in a thread; received messages parsed, optionally appended to an mbox."""

    def __init__(self, host="127.0.0.1", port=None, starttls=False, implicit_tls=False,
                 auth=None, replies=(), mbox=None, certdir=None, after_data=None, refuse_rcpt=None):
        self.host = host
        self.port = port or free_port(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        self.starttls, self.implicit_tls, self.auth = starttls, implicit_tls, auth
        self.replies = list(replies)
        self.refuse_rcpt = dict(refuse_rcpt or {})
        self.mbox = mbox
        self.after_data = after_data  # called once a message is stored, before "250" is sent
        self.messages, self.envelopes, self.attempts, self.sessions = [], [], 0, []
        self._lock = threading.Condition()
        self._certdir = certdir
        self.cert = self.key = self.ca = None  # server certificate, key, and the CA clients trust
        self.controller = None

    # -- lifecycle -----------------------------------------------------------
    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        import ssl

        kwargs = {}
        if self.starttls or self.implicit_tls:
            if not self.cert:
                self._tmp = None if self._certdir else tempfile.TemporaryDirectory()
                paths = pki(self._certdir or self._tmp.name, hosts=(self.host, "localhost"))
                self.cert, self.key, self.ca = paths["server_cert"], paths["server_key"], paths["ca"]
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self.cert, self.key)
            if self.implicit_tls:
                kwargs["ssl_context"] = ctx
            else:
                kwargs["tls_context"] = ctx
        if self.auth:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
            kwargs["auth_require_tls"] = bool(self.starttls or self.implicit_tls)
        self.controller = Controller(_Handler(self), hostname=self.host, port=self.port,
                                     server_hostname="localhost", **kwargs)
        self.controller.start()
        return self

    def stop(self):
        if self.controller:
            self.controller.stop()
            self.controller = None

    # -- server side ----------------------------------------------------------
    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        login = getattr(auth_data, "login", b"")
        password = getattr(auth_data, "password", b"")
        user, secret = self.auth
        ok = login == user.encode() and password == secret.encode()
        return AuthResult(success=ok, handled=False)

    def _receive(self, session, envelope, tls):
        with self._lock:
            self.attempts += 1
            if self.replies:
                return self.replies.pop(0)
            raw = (envelope.original_content or envelope.content).replace(b"\r\n", b"\n")
            message = email.message_from_bytes(raw, policy=email.policy.default)
            self.messages.append(message)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.sessions.append({"tls": tls,
                                  "authenticated": bool(getattr(session, "authenticated", False)),
                                  "helo": session.host_name})
            if self.mbox:
                box = mailbox.mbox(self.mbox)
                try:
                    box.lock()
                    entry = mailbox.mboxMessage(message)
                    entry.set_from(envelope.mail_from or "MAILER-DAEMON", time.gmtime())
                    box.add(entry)
                    box.flush()
                finally:
                    box.unlock()
                    box.close()
            self._lock.notify_all()
        if self.after_data:
            self.after_data()
        return "250 2.0.0 OK queued"

    # -- test side -------------------------------------------------------------
    def wait_for(self, count, timeout=20.0):
        """The first ``count`` messages; AssertionError if they do not arrive in time."""
        end = time.monotonic() + timeout
        with self._lock:
            while len(self.messages) < count:
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} message(s), got {len(self.messages)} "
                                         f"after {timeout} s ({self.attempts} DATA attempts)")
                self._lock.wait(left)
            return list(self.messages[:count])


class HoldFirst:
    """An ``after_data`` that keeps the first message's "250" back until ``release()``:
    the deliverer is caught mid-send, holding the spool lock (``sending`` is set then)."""

    def __init__(self, timeout=30.0):
        self.sending, self._released, self.timeout = threading.Event(), threading.Event(), timeout

    def __call__(self):
        if not self.sending.is_set():
            self.sending.set()
            self._released.wait(self.timeout)

    def release(self):
        self._released.set()


def subject(message):
    """``message``'s Subject as a reader sees it: unfolded, without the leading space a
    long one keeps when the email package folds it after ``Subject:``."""
    return " ".join(str(message.get("Subject", "")).split())


def mbox_messages(path):
    """The messages in the mbox file ``path``, parsed with headers unfolded; None while it
    cannot be read whole (the sink is writing it: read again)."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return []
    try:
        return [email.message_from_bytes(entry.as_bytes(), policy=email.policy.default)
                for entry in mailbox.mbox(str(path), create=False)]
    except Exception:  # half-written by the sink
        return None


class NamespaceSink:
    """``python3 -m harness.peers.smtp`` in namespace ``ns`` (harness.peers.netns), listening
    on ``host``:``port``, every message appended to ``mbox``."""

    def __init__(self, ns, host, port, mbox, log, repo, python=sys.executable):
        self.mbox = mbox
        self.proc = ns.start([python, "-m", "harness.peers.smtp", "--host", host, "--port", port,
                              "--mbox", mbox], log=log, cwd=repo, env={"PYTHONPATH": repo})
        end = time.monotonic() + 10
        while "SMTP sink on" not in self.proc.output():
            if time.monotonic() > end or not self.proc.running():
                raise RuntimeError(f"SMTP sink did not start: {self.proc.output()[-1000:]}")
            time.sleep(0.05)

    def messages(self):
        """Every message so far (the last complete read while the sink writes)."""
        for _ in range(50):
            found = mbox_messages(self.mbox)
            if found is not None:
                return found
            time.sleep(0.02)
        return []

    def subjects(self):
        return [subject(message) for message in self.messages()]

    def wait(self, predicate, timeout, what="a message"):
        """The first message ``predicate`` accepts; AssertionError with every subject after
        ``timeout`` s."""
        end = time.monotonic() + timeout
        while True:
            for message in self.messages():
                if predicate(message):
                    return message
            if time.monotonic() > end:
                raise AssertionError(f"no {what} within {timeout} s; subjects: {self.subjects()}")
            time.sleep(0.1)

    def stop(self):
        self.proc.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m harness.peers.smtp",
                                     description="Tiny SMTP sink writing an mbox file.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--mbox", required=True, help="append received messages to this mbox file")
    parser.add_argument("--starttls", action="store_true", help="offer STARTTLS (certificate from a throw-away CA)")
    parser.add_argument("--tls", action="store_true", help="implicit TLS (SMTPS)")
    parser.add_argument("--auth", metavar="USER:PASSWORD", help="require AUTH with these credentials")
    args = parser.parse_args(argv)
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    sink = SmtpSink(args.host, args.port, starttls=args.starttls, implicit_tls=args.tls,
                    auth=auth, mbox=args.mbox).start()
    print(f"SMTP sink on {args.host}:{args.port} writing {args.mbox}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
