"""`kachecks notify` delivers a state change to a local SMTP server."""

import time

from harness.peers.cli import run
from harness.peers.smtp import SmtpSink


def test_notify_mails_the_state_change(installed, tmp_path):
    with SmtpSink() as relay:
        config = tmp_path / "kachecks.toml"
        config.write_text(f"""\
[smtp]
host = "127.0.0.1"
port = {relay.port}
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
        [mail] = relay.wait_for(1, timeout=20)
    assert mail["To"] == "admins@mysite.mydmn.org"
    assert "VI_1" in mail["Subject"] and "MASTER" in mail["Subject"]
