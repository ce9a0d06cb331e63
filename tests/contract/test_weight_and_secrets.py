"""Dynamic weight parsing and password-file rules shared by every check."""

import os

import pytest

from kachecks.checks.weight import parse_agent_reply, parse_weight
from kachecks.errors import ProbeFailure, UsageError
from kachecks.secrets import password_from, read_password_file


@pytest.mark.parametrize("text,base,want", [("7", 1, 7), ("50%", 10, 5), ("0%", 10, 0),
                                            ("100%", 10, 10), ("999", 1, 253), (" 3 ", 1, 3)])
def test_weight_values(text, base, want):
    assert parse_weight(text, base, "header X-Weight") == want


@pytest.mark.parametrize("text", ["", "abc", "-1", "150%", "5.5", "nan%"])
def test_malformed_weight_is_a_failure_naming_the_source(text):
    with pytest.raises(ProbeFailure, match="X-Weight"):
        parse_weight(text, 10, "header X-Weight")


@pytest.mark.parametrize("reply,want", [("up 50%", (5, False)), ("up", (10, False)),
                                        ("ready,75%", (7, False)), ("drain", (0, True)),
                                        ("up 0%", (0, True)), ("100%\n", (10, False))])
def test_agent_replies(reply, want):
    assert parse_agent_reply(reply, 10) == want


@pytest.mark.parametrize("reply", ["down", "maint", "stopped", "fail", "up down"])
def test_agent_down_states_fail(reply):
    with pytest.raises(ProbeFailure, match="agent reports"):
        parse_agent_reply(reply, 10)


@pytest.mark.parametrize("reply", ["", "hello", "up 5x%"])
def test_malformed_agent_reply_fails(reply):
    with pytest.raises(ProbeFailure):
        parse_agent_reply(reply, 10)


def test_password_file_first_line(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\nignored\n")
    for mode in (0o600, 0o640, 0o400):
        os.chmod(secret, mode)
        assert read_password_file(secret) == "s3cret"


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o660, 0o666])
def test_password_file_readable_by_others_is_refused_with_the_reason(tmp_path, mode):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    os.chmod(secret, mode)
    with pytest.raises(UsageError, match=f"mode {mode:04o}"):
        read_password_file(secret)


def test_missing_and_empty_password_files(tmp_path):
    with pytest.raises(UsageError, match="cannot read password file"):
        read_password_file(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    os.chmod(empty, 0o600)
    with pytest.raises(UsageError, match="empty"):
        read_password_file(empty)


def test_password_symlink_is_refused(tmp_path):
    real = tmp_path / "real"
    real.write_text("x\n")
    os.chmod(real, 0o600)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(UsageError):
        read_password_file(link)


def test_password_from_environment(monkeypatch):
    monkeypatch.setenv("KACHECKS_TEST_PW", "envpw")
    assert password_from(None, "KACHECKS_TEST_PW") == "envpw"
    monkeypatch.delenv("KACHECKS_TEST_PW")
    assert password_from(None, "KACHECKS_TEST_PW") is None
