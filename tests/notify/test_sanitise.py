"""Event names no mail header may carry as they are (the FIFO's are in test_fifo.py)."""

import json
import os
import subprocess

from kachecks.notify import event as events
from harness.peers.cli import command

ADMIN = ["admin@lvs.example.org"]


def test_cr_lf_in_an_event_name_cannot_add_a_header_or_a_recipient(notifier, relay):
    notifier.configure(relay)
    assert notifier.notify("INSTANCE", "VI_1\r\nBcc: x@evil.example", "MASTER", "100").returncode == 0
    assert notifier.notify("INSTANCE", "VI_2", "MASTER", "100").returncode == 0
    first, second = relay.wait_for(2)
    assert [envelope[1] for envelope in relay.envelopes] == [ADMIN, ADMIN]
    assert first["Bcc"] is None
    assert first["Subject"].endswith("] VI_1\\r\\nBcc: x@evil.example: UNKNOWN -> MASTER (prio 100)")
    assert "Raw event:      INSTANCE VI_1\\r\\nBcc: x@evil.example MASTER 100" in first.get_content()
    assert second["Subject"].endswith("] VI_2: UNKNOWN -> MASTER (prio 100)")
    notifier.wait_idle()
    assert notifier.queued() == []


def test_latin1_bytes_in_argv_are_replaced_and_delivered(notifier, relay):
    """A Latin-1 keepalived.conf: the instance name reaches us as bytes that are not UTF-8."""
    notifier.configure(relay)
    result = subprocess.run(command("kachecks") + [b"notify", b"INSTANCE", b"VI_caf\xe9", b"MASTER", b"100"],
                            capture_output=True, env=dict(os.environ), timeout=30)
    assert result.returncode == 0, result.stderr
    assert notifier.notify("INSTANCE", "VI_2", "BACKUP", "100").returncode == 0
    first, second = relay.wait_for(2)
    assert first["Subject"].endswith("] VI_caf\ufffd: UNKNOWN -> MASTER (prio 100)")
    assert first["Subject"].defects == () and first.defects == []
    assert second["Subject"].endswith("] VI_2: UNKNOWN -> BACKUP (prio 100)")


def test_hostile_event_already_in_the_spool_is_sanitised_on_the_way_out(notifier, relay):
    """Written by an older version, or by hand: CR/LF and a lone surrogate in the name."""
    notifier.configure(relay)
    (notifier.spool / "incoming").mkdir(parents=True)
    bad = events.make("INSTANCE", "x", "MASTER", 100)
    raw = json.dumps(bad).replace('"name": "x"', '"name": "VI_1\\r\\nBcc: x@evil.example\\ud800"')
    (notifier.spool / "incoming" / f"{bad['id']}.json").write_text(raw)
    assert notifier.notify("INSTANCE", "VI_2", "MASTER", "100").returncode == 0
    first, second = relay.wait_for(2)
    assert first["Bcc"] is None and [e[1] for e in relay.envelopes] == [ADMIN, ADMIN]
    assert "VI_1\\r\\nBcc: x@evil.example\ufffd" in first["Subject"]
