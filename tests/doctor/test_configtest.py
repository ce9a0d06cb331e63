"""What keepalived -t says, read by its frame only: ``(FILE: Line N) text``, ``(Line N) text``
or a bare line; its wording differs between releases (2.2.7 on Debian 12, 2.3.3 on 13)."""

from pathlib import Path

import pytest

from kachecks import keepalivedconf as reader
from kachecks.doctor import configtest, syntax
from kachecks.doctor.findings import Finding


def outcome(lines, status=5, version=(2, 3, 3)):
    return configtest.Outcome("/usr/sbin/keepalived", version, status, lines)


def config(write):
    write("conf.d/web.conf", "virtual_server 192.168.8.142 80 {\n}\n")
    main = write("keepalived.conf", "global_defs {\n}\ninclude conf.d/*.conf\n")
    return reader.read(str(main), "lvs1")


def test_each_frame_names_our_file_and_line(write):
    conf = config(write)
    got = configtest.findings(outcome([
        "(Line 2) Unknown keyword 'router_idd'",
        "(conf.d/web.conf: Line 1) WARNING - default user 'keepalived_script' for script execution"
        " does not exist - please create.",
        f"({conf.path}: Line 1) Extra '}}' found",
        "Non-existent interface specified in configuration",
        "(Line 3) Config files missing 'conf.d/*.conf'.",
    ]), conf, [])
    web = conf.files[1]
    assert [(f.file, f.line, f.severity, f.code) for f in got] == [
        (conf.path, 2, "error", "syntax"),
        (web, 1, "warning", "script-security"),
        (conf.path, 1, "error", "syntax"),
        (conf.path, None, "error", "syntax"),
        (conf.path, 3, "warning", "syntax"),
    ]
    assert got[0].message == "keepalived 2.3.3 -t: Unknown keyword 'router_idd'"


def test_what_we_already_said_is_not_repeated(write):
    conf = config(write)
    ours = [Finding(conf.path, 2, "error", "syntax", "unknown keyword 'router_idd' …"),
            Finding(conf.path, 5, "error", "not-executable", "/usr/local/bin/chk: …")]
    got = configtest.findings(outcome([
        "(Line 2) Unknown keyword 'router_idd'",
        "Disabling track script chk since not found/accessible",
        "(VI_1) the virtual router id must be set",
    ]), conf, ours)
    assert [g.message for g in got] == ["keepalived 2.3.3 -t: (VI_1) the virtual router id must be set"]


def test_a_keyword_too_new_for_the_installed_keepalived_says_so(write):
    conf = config(write)
    [got] = configtest.findings(outcome(["(Line 2) Unknown keyword 'tls_compliant'"], version=(2, 2, 7)),
                                conf, [], syntax.since)
    assert got.message.endswith("(added in keepalived 2.2.8; this director runs 2.2.7)")


def test_a_keepalived_that_dies_or_says_nothing_is_reported(write):
    conf = config(write)
    [killed] = configtest.findings(outcome([], status=-15, version=(2, 2, 7)), conf, [])
    assert killed.severity == "warning" and "killed by SIGTERM" in killed.message
    [silent] = configtest.findings(outcome([], status=4), conf, [])
    assert silent.severity == "error" and "exited 4 without saying why" in silent.message
    assert configtest.findings(outcome([], status=0), conf, []) == []
    [missing] = configtest.findings(configtest.Outcome("/nowhere", None, None, [], "cannot run /nowhere:"
                                                       " No such file or directory"), conf, [])
    assert missing.severity == "warning" and "keepalived's own check was not run" in missing.message


@pytest.mark.skipif(configtest.find() is None, reason="keepalived is not installed")
def test_keepalived_t_leaves_no_pid_file_behind(write):
    """keepalived -t writes no pid file (a running keepalived's stay its own)."""
    conf = config(write)
    binary = configtest.find()
    before = {p.name for p in Path("/run").iterdir()}
    result = configtest.run(binary, conf.path, "lvs1", configtest.version(binary))
    after = {p.name for p in Path("/run").iterdir()}
    assert result.status is not None and result.failure is None
    assert after - before == set()
