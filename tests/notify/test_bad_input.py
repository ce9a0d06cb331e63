"""Bad input: one clear line (stderr and syslog), exit 1, never a traceback."""

import os

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
    ("[smtp]\nhots = \"relay\"\n", "[smtp] hots: unknown key; did you mean 'host'?"),
    ("[smtp]\nport = \"25\"\n", '[smtp] port: must be an integer, not "25"'),
    ("[smtp]\nsecurity = \"ssl\"\n", '[smtp] security: must be one of starttls, tls, none, not "ssl"'),
    ("[mail]\nto = \"root\"\n", "[mail] to: must be addresses like"),
    ("[mail]\nsubject = \"{hostname} {state}\"\n", "[mail] subject: unknown field {hostname}"),
    ("[spool]\nexpire = \"3 days\"\n", '[spool] expire: must be a duration (a number of seconds, or a'
     ' number with a unit: 500ms, 30s, 5m, 12h, 3d, 1w), not "3 days"'),
    ("[mails]\nto = []\n", "unknown section [mails]"),
    ("[spool]\nbatch_window = nan\n", "[spool] batch_window: must be 0 or more and at most 3600 seconds, not nan"),
    ("[spool]\nbatch_window = inf\n", "[spool] batch_window: must be 0 or more and at most 3600 seconds, not inf"),
    ("[spool]\nbatch_window = \"2h\"\n", '[spool] batch_window: must be 0 or more and at most 3600 seconds, not "2h"'),
    ("[smtp]\ntimeout = nan\n", "[smtp] timeout: must be more than 0 and at most 3600 seconds, not nan"),
    ("[smtp]\ntimeout = -1\n", "[smtp] timeout: must be more than 0 and at most 3600 seconds, not -1"),
    ("[smtp]\ntimeout = true\n", "[smtp] timeout: must be a duration"),
    ("[webhook]\ntimeout = inf\n", "[webhook] timeout: must be more than 0 and at most 3600 seconds, not inf"),
    ("[spool]\nexpire = 0\n", "[spool] expire: must be more than 0 and at most 31622400 seconds, not 0"),
    ('[mail]\nsubject = "{name:>99999999999}"\n', "[mail] subject: {name:>99999999999}: width or precision over 1000"),
    ('[mail]\nbody = "{name.__class__}"\n', "[mail] body: unknown field {name.__class__}"),
    ("[mail]\nto = []\n", "[mail] to: is empty: name at least one address, or set enabled = false"),
    ('[mail]\nfrom = "kachecks@lvs1\\r\\nBcc: x@evil.example"\n', "[mail] from: holds a control character"),
    ('[smtp]\nhost = "relay\\u009b1"\n', "[smtp] host: holds a control character"),
    ("x = 1" + "2" * 5000 + "\n", "invalid TOML: Exceeds the limit (4300 digits)"),
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


@pytest.mark.parametrize("value,message", [
    ("nan", 'must be a duration (a number of seconds, or a number with a unit: 500ms, 30s, 5m,'
            ' 12h, 3d, 1w), not "nan"'),
    ("2h", 'must be 0 or more and at most 3600 seconds, not "2h"'),
])
def test_invalid_command_line_value_keeps_the_event(notifier, value, message):
    result = notifier.notify("--batch-window", value, "INSTANCE", "VI_1", "MASTER", "100")
    assert result.returncode == 1
    assert f"[spool] batch_window: {message}" in one_line(result)
    assert len(notifier.queued()) == 1


@pytest.mark.parametrize("window", ["2s", "500ms", "1.5", "0"])
def test_the_batch_window_on_the_command_line_is_a_duration_as_in_the_file(notifier, window):
    """It was a float only: `--batch-window 2s`, as the file writes it, was a usage error,
    and the event was lost with it."""
    notifier.configure()
    result = notifier.notify("--batch-window", window, "INSTANCE", "VI_1", "MASTER", "100")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert len(notifier.queued()) == 1
    notifier.wait_idle()


def test_config_broken_elsewhere_keeps_the_event_in_the_configured_spool(notifier, tmp_path):
    spool = tmp_path / "configured-spool"
    notifier.config.write_text(f'[smtp]\nport = "25"\n[spool]\ndir = "{spool}"\n')
    result = notifier.notify("INSTANCE", "VI_1", "MASTER", "100")
    assert result.returncode == 1
    assert one_line(result).endswith(f"event kept in {spool}; fix it, then run `kachecks spool flush`")
    assert len(os.listdir(spool / "incoming")) == 1


def test_spool_list_and_purge_need_no_valid_delivery_settings(notifier, tmp_path):
    notifier.configure(spool={"retry_for": 0})
    assert notifier.notify("INSTANCE", "VI_1", "MASTER", "100").returncode == 0
    notifier.wait_idle()
    notifier.config.write_text(f'[smtp]\nport = "25"\nhots = 1\n[spool]\ndir = "{notifier.spool}"\n')
    for args in ((), ("--spool-dir", notifier.spool)):
        listing = notifier.kachecks("spool", "list", *args)
        assert listing.returncode == 0 and listing.stderr == ""
        assert "INSTANCE VI_1 MASTER prio 100" in listing.stdout
    purged = notifier.kachecks("spool", "purge", "--spool-dir", notifier.spool)
    assert purged.returncode == 0 and "purged 1 event(s)" in purged.stdout
    flushed = notifier.kachecks("spool", "flush")  # delivering does need them
    # both mistakes at once, one line each
    assert flushed.returncode == 1 and "Traceback" not in flushed.stderr
    assert [line.split(".toml: ", 1)[1] for line in flushed.stderr.splitlines()] == [
        "[smtp] hots: unknown key; did you mean 'host'?",
        '[smtp] port: must be an integer, not "25"']


def test_spool_without_a_subcommand_shows_its_help(notifier):
    result = notifier.kachecks("spool")
    assert result.returncode == 0 and result.stderr == ""
    assert "Usage: kachecks spool" in result.stdout
    assert all(f"  {sub} " in result.stdout for sub in ("flush", "list", "purge"))


@pytest.mark.parametrize("sub", ["list", "purge"])
def test_spool_list_and_purge_help_offers_only_their_own_options(notifier, sub):
    text = notifier.kachecks("spool", sub, "--help").stdout
    assert "--config FILE" in text and "--spool-dir DIR" in text
    for option in ("--smtp-host", "--smtp-port", "--security", "--to", "--webhook-url", "--batch-window"):
        assert option not in text, option


def test_config_that_cannot_be_read(notifier, tmp_path):
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[smtp]\n")
    for path, why in ((tmp_path / "missing.toml", "configuration file not found"),
                      (tmp_path, "configuration file is not a regular file (a directory)"),
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
