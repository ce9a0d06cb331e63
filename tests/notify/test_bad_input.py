"""Bad input: one clear line (stderr and syslog), exit 1, never a traceback."""

import pytest


def one_line(result):
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr.strip()


@pytest.mark.parametrize("args, message", [
    (["FOO", "VI_1", "MASTER", "100"], "kachecks notify: unknown TYPE 'FOO' (expected INSTANCE, GROUP, RS or VS)"),
    ([], "kachecks notify: missing arguments: TYPE NAME STATE [PRIORITY]"),
    (["INSTANCE", "VI_1"], "kachecks notify: missing arguments after INSTANCE: NAME STATE [PRIORITY]"),
    (["INSTANCE", "VI_1", "MASTER", "hundred"], "kachecks notify: invalid PRIORITY 'hundred' (expected a number)"),
])
def test_bad_notify_arguments(notifier, syslog_socket, args, message):
    result = notifier.notify(*args)
    assert result.returncode == 1
    line = one_line(result)
    assert line == message
    assert any(message.split(": ", 1)[1][:30] in m for m in syslog_socket())
    assert notifier.queued() == []


def test_unknown_option_is_one_line_and_exit_1(notifier):
    result = notifier.notify("--no-such-option", "INSTANCE", "VI_1", "MASTER")
    assert result.returncode == 1
    line = one_line(result)  # click's wording differs between 8.1 and 8.2+
    assert line.startswith("kachecks notify: No such option") and "--no-such-option" in line


@pytest.mark.parametrize("text, message", [
    ("[smtp\nhost = 1", "invalid TOML"),
    ("[smtp]\nhots = \"relay\"\n", "unknown key smtp.hots (known: host, port"),
    ("[smtp]\nport = \"25\"\n", "smtp.port must be an integer, not '25'"),
    ("[smtp]\nsecurity = \"ssl\"\n", "smtp.security must be one of starttls, tls, none, not 'ssl'"),
    ("[mail]\nto = \"root\"\n", "mail.to must be addresses like"),
    ("[mail]\nsubject = \"{hostname} {state}\"\n", "mail.subject: unknown field {hostname}"),
    ("[spool]\nexpire = \"3 days\"\n", "spool.expire: invalid duration '3 days'"),
    ("[mails]\nto = []\n", "unknown section [mails]"),
])
def test_invalid_config_names_the_key_and_keeps_the_event(notifier, text, message):
    notifier.config.write_text(text)
    result = notifier.notify("--spool-dir", notifier.spool, "INSTANCE", "VI_1", "MASTER", "100")
    assert result.returncode == 1
    line = one_line(result)
    assert line.startswith(f"kachecks notify: {notifier.config}: ")
    assert message in line
    assert line.endswith(f"event kept in {notifier.spool}; fix it, then run `kachecks spool flush`")
    assert len(notifier.queued()) == 1


def test_config_that_cannot_be_read(notifier, tmp_path):
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[smtp]\n")
    for path, why in ((tmp_path / "missing.toml", "configuration file not found"),
                      (tmp_path, "configuration file is a directory"),
                      (binary, "not UTF-8 text (byte 0)")):
        result = notifier.kachecks("spool", "list", "--config", path)
        assert result.returncode == 1
        assert one_line(result) == f"kachecks spool list: {path}: {why}"


def test_unwritable_spool_exits_1_and_says_the_event_was_not_queued(notifier, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = notifier.notify("--spool-dir", blocker / "spool", "INSTANCE", "VI_1", "MASTER", "100")
    assert result.returncode == 1
    line = one_line(result)
    assert "cannot create spool" in line and "event NOT queued: INSTANCE VI_1 MASTER prio 100" in line


def test_help_is_complete_with_reference_deployment_examples(notifier):
    texts = {name: notifier.kachecks(name, "--help") for name in ("notify", "fifo", "spool")}
    assert all(r.returncode == 0 for r in texts.values())
    assert "kachecks notify INSTANCE VI_1 MASTER 100" in texts["notify"].stdout
    assert "RS [192.168.8.101]:tcp:80 UP" in texts["notify"].stdout
    assert "--config FILE" in texts["notify"].stdout
    assert 'RS [192.168.8.101]:tcp:80 FWM 5 UP' in texts["fifo"].stdout
    assert "vrrp_notify_fifo_script" in texts["fifo"].stdout
    for sub in ("list", "flush", "purge"):
        assert f"kachecks spool {sub}" in texts["spool"].stdout
        sub_help = notifier.kachecks("spool", sub, "--help")
        assert sub_help.returncode == 0 and f"kachecks spool {sub}" in sub_help.stdout


@pytest.mark.parametrize("sub", ["list", "flush", "purge"])
def test_spool_commands_on_an_unusable_spool_say_so_in_one_line(notifier, tmp_path, sub):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = notifier.kachecks("spool", sub, "--spool-dir", blocker)
    assert result.returncode == 1
    line = one_line(result)
    assert line.startswith(f"kachecks spool {sub}: ") and line.endswith("Not a directory")
