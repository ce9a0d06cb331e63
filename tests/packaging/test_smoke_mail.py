"""`kachecks notify` delivers a state change to a local SMTP server."""

import time

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import free_port
from tests.support.cli import run


class Inbox:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, inbox
    controller.stop()


def test_notify_mails_the_state_change(installed, smtp, tmp_path):
    port, inbox = smtp
    config = tmp_path / "kachecks.toml"
    config.write_text(f"""\
[smtp]
host = "127.0.0.1"
port = {port}
security = "none"

[mail]
from = "lvs1@mysite.mydmn.org"
to = ["admins@mysite.mydmn.org"]

[spool]
dir = "{tmp_path / 'spool'}"
batch_window = 0.2
""")
    config.chmod(0o600)
    started = time.monotonic()
    done = run("kachecks", "notify", "INSTANCE", "VI_1", "MASTER", "100",
               env={"KACHECKS_CONFIG": str(config)})
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 20
    while not inbox.envelopes and time.monotonic() < deadline:
        time.sleep(0.1)
    assert inbox.envelopes, "no mail within 20 s"
    mail = inbox.envelopes[0]
    assert mail.rcpt_tos == ["admins@mysite.mydmn.org"]
    text = mail.content.decode("utf-8", "replace")
    subject = next(l for l in text.splitlines() if l.lower().startswith("subject:"))
    assert "VI_1" in subject and "MASTER" in subject
