"""kachecks checks in misc_path / script: parsed by the check itself, timed, run once.

The check executable is the oracle: what it rejects is a bad-option with its
own words, and a check-failed carries the reason its own status line gives.
"""

import re
import time

import pytest

from harness.checks import MD5_SERVER1, SERVER1, http, one_line
from harness.peers import cli
from harness.peers.hostile import Mute
from harness.peers.rawhttp import RawHTTPServer, http_response

SECURE = "global_defs {\n    enable_script_security\n    script_user root\n}\n"


def misc(command, extra="", delay_loop=10):
    """A virtual server whose one real server runs ``command`` as its MISC_CHECK."""
    return ("virtual_server 192.168.8.142 80 {\n"
            f"    delay_loop {delay_loop}\n    lb_algo wlc\n    lb_kind DR\n    protocol TCP\n"
            "    real_server 192.168.8.101 80 {\n        weight 1\n        MISC_CHECK {\n"
            f'            misc_path "{command}"\n{extra}        }}\n    }}\n}}\n')


def script(command, extra="    interval 10\n"):
    return f'vrrp_script chk {{\n    script "{command}"\n{extra}}}\n'


MISC_LINE = 13  # misc_path's line in SECURE + misc(...)
ENV = "/usr/bin/env --block-signal=HUP,INT,TERM"  # docs/checks.md's form
SCRIPT_LINE = 6  # script's line in SECURE + script(...)


def exe(name):
    return cli.script_command(name)


def codes(run):
    return [(f["line"], f["severity"], f["code"]) for f in run.findings]


@pytest.mark.parametrize("name,args", [
    ("kachecks-http", ["--url", "http://192.168.8.101/service.txt", "--bogus"]),
    ("kachecks-ldap", ["--uri", "ldap://192.168.8.101", "--password", "s3cret"]),
    ("kachecks-tcp", ["--timeout", "2"]),
    ("kachecks-http", ["--url", "http://192.168.8.101/service.txt", "--status", "ok"]),
])
def test_an_option_the_check_rejects_is_a_bad_option_in_its_own_words(doctor, write, name, args):
    conf = write("keepalived.conf", SECURE + misc(" ".join([exe(name), *args])))
    run = doctor("--no-run", "-f", conf)
    [bad] = [f for f in run.findings if f["code"] == "bad-option"]
    assert (bad["line"], bad["severity"], run.code) == (MISC_LINE, "error", 1)
    itself = cli.run(name, *args)
    assert itself.returncode == 1
    said = re.match(rf"{name}: error: (.*) \(see {name} --help\)$", itself.stderr.strip())[1]
    assert bad["message"] == f"{name}: {said}: the check exits 1 at every run"


def test_checks_are_recognised_by_their_name_wherever_installed(doctor, write):
    conf = write("keepalived.conf", SECURE + misc("/opt/kachecks/bin/kachecks-tcp --bogus")
                 + script("/opt/kachecks/bin/kachecks check http --url http://192.168.8.101/ -x"))
    run = doctor("--no-run", "-f", conf)
    assert codes(run) == [(MISC_LINE, "error", "bad-option"), (MISC_LINE, "error", "not-executable"),
                          (MISC_LINE + 5, "error", "bad-option"), (MISC_LINE + 5, "error", "not-executable")]
    assert [f["message"] for f in run.findings if f["code"] == "bad-option"] == [
        "kachecks-tcp: Unknown option --bogus: the check exits 1 at every run",
        "kachecks check http: Unknown option -x: the check exits 1 at every run"]


def test_a_check_whose_path_holds_a_blank_is_read_as_keepalived_groups_it(doctor, write,
                                                                         tmp_path):
    spaced = tmp_path / "my checkout"
    spaced.mkdir()
    (spaced / "kachecks-http").symlink_to(cli.command("kachecks-http")[0])
    word = cli.script_word(spaced / "kachecks-http")
    assert word == f"'{spaced}/kachecks-http'"
    run = doctor("--no-run", "-f", write("keepalived.conf", SECURE + misc(
        f"{word} --url http://192.168.8.101/service.txt --bogus")))
    assert [f["message"] for f in run.findings if f["code"] == "bad-option"] == [
        "kachecks-http: Unknown option --bogus: the check exits 1 at every run"]
    with pytest.raises(ValueError, match="cannot be written in a keepalived script line"):
        cli.script_word(tmp_path / "it's")


@pytest.mark.parametrize("extra,delay_loop,args,late", [
    ("            misc_timeout 3\n", 10, ["--timeout", "5"], True),
    ("            misc_timeout 5\n", 10, ["--timeout", "5"], True),
    ("            misc_timeout 6\n", 10, ["--timeout", "5"], False),
    ("", 4, [], True),  # no misc_timeout: the virtual server's delay_loop 4 against the default 5
    ("", 6, [], False),
    ("            misc_timeout 0\n", 3, ["--timeout", "2.5"], False),  # 0 means delay_loop too
])
def test_misc_timeout_must_leave_the_check_its_timeout(doctor, write, extra, delay_loop, args, late):
    command = " ".join([exe("kachecks-tcp"), "192.168.8.101:80", *args])
    conf = write("keepalived.conf", SECURE + misc(command, extra, delay_loop))
    run = doctor("--no-run", "-f", conf)
    timed = [f for f in run.findings if f["code"] == "misc-timeout"]
    assert [(f["line"], f["severity"]) for f in timed] == ([(MISC_LINE, "error")] if late else [])
    if late and not extra:
        assert f"the virtual server's delay_loop {delay_loop}, line 6" in timed[0]["message"]


@pytest.mark.parametrize("extra,late", [("    interval 2\n", True), ("    interval 2\n    timeout 6\n", False),
                                        ("", True), ("    interval 10\n    timeout 3\n", False)])
def test_a_vrrp_script_timeout_defaults_to_its_interval(doctor, write, extra, late):
    conf = write("keepalived.conf", SECURE + script(f"{exe('kachecks-tcp')} 192.168.8.101:80 --timeout 2.5",
                                                    extra))
    run = doctor("--no-run", "-f", conf)
    assert [f["line"] for f in run.findings if f["code"] == "misc-timeout"] == ([SCRIPT_LINE] if late else [])


@pytest.mark.parametrize("where,flags,expected", [
    ("misc", "--dynamic", [("error", "dynamic-mismatch")]),
    ("misc_dynamic", "--dynamic", []),
    ("script", "--dynamic", [("error", "dynamic-mismatch")]),
    ("misc_dynamic", "--nagios", [("error", "dynamic-mismatch")]),
    ("misc", "--nagios", [("warning", "bad-option")]),
    ("misc_dynamic", "", []),
])
def test_dynamic_exit_codes_mean_something_only_under_misc_dynamic(doctor, write, where, flags, expected):
    command = f"{exe('kachecks-tcp')} 192.168.8.101:80 --timeout 2 {flags}".strip()
    body = script(command) if where == "script" else misc(
        command, "            misc_dynamic\n" if where == "misc_dynamic" else "")
    run = doctor("--no-run", "-f", write("keepalived.conf", SECURE + body))
    assert [(f["severity"], f["code"]) for f in run.findings] == expected


def test_a_check_that_fails_now_says_why_in_the_check_s_own_words(doctor, write):
    page = {"body": SERVER1}
    server = RawHTTPServer(lambda request: [http_response(page["body"])])
    with server:
        args = ["--url", f"http://127.0.0.1:{server.port}/service.txt", "--digest", MD5_SERVER1,
                "--timeout", "2"]
        conf = write("keepalived.conf", SECURE + misc(" ".join([exe("kachecks-http"), *args])))
        assert doctor("-f", conf).findings == []
        page["body"] = b"hello from Server 1, but not the same\n"
        run = doctor("-f", conf)
        itself = http(*args)
    [failed] = run.findings
    assert (failed["line"], failed["severity"], failed["code"]) == (MISC_LINE, "error", "check-failed")
    reason = one_line(itself).split(" - ", 1)[1]  # "HTTP DOWN - md5 mismatch (got …, want …)"
    assert reason.startswith("md5 mismatch")
    assert failed["message"] == f"kachecks-http [127.0.0.1]:{server.port}: L7RSP: {reason}"


def test_a_check_whose_peer_does_not_answer_is_unreachable(doctor, write, unused_port):
    conf = write("keepalived.conf", SECURE + misc(f"{exe('kachecks-tcp')} 127.0.0.1:{unused_port} --timeout 2")
                 + script(f"{exe('kachecks')} check tcp 127.0.0.1:{unused_port} --timeout 2"))
    run = doctor("-f", conf)
    assert codes(run) == [(MISC_LINE, "warning", "unreachable"), (MISC_LINE + 5, "warning", "unreachable")]
    assert run.code == 0
    assert run.findings[1]["message"] == (f"kachecks check tcp [127.0.0.1]:{unused_port}: L4CON:"
                                          " connection refused")


def test_no_run_runs_no_check(doctor, write):
    server = RawHTTPServer(http_response(b"x"))
    with server:
        conf = write("keepalived.conf", SECURE + misc(
            f"{exe('kachecks-http')} --url http://127.0.0.1:{server.port}/ --digest {MD5_SERVER1} --timeout 2"))
        run = doctor("--no-run", "-f", conf)
        assert (run.findings, server.requests) == ([], [])
        assert doctor("-f", conf).findings[0]["code"] == "check-failed"
        assert len(server.requests) == 1


def test_notify_commands_are_not_checks(doctor, write):
    conf = write("keepalived.conf", SECURE + "vrrp_instance VI_1 {\n    state BACKUP\n    interface eth0\n"
                 f'    virtual_router_id 51\n    priority 100\n    notify "{exe("kachecks")} notify"\n}}\n')
    assert doctor("--no-run", "-f", conf).findings == []


def test_a_bad_option_behind_env_block_signal_is_a_bad_option_at_its_line(doctor, write):
    conf = write("keepalived.conf", SECURE + misc(
        f"{ENV} {exe('kachecks-http')} --url http://192.168.8.101/service.txt --timeout 3 --bogus"))
    run = doctor("--no-run", "-f", conf)
    assert codes(run) == [(MISC_LINE, "error", "bad-option")]
    assert run.findings[0]["message"] == (
        "kachecks-http: Unknown option --bogus: the check exits 1 at every run")


def test_a_missing_program_behind_env_is_not_executable_at_its_line(doctor, write, tmp_path):
    missing = tmp_path / "bin" / "kachecks-http"
    conf = write("keepalived.conf", SECURE + misc(
        f"{ENV} {missing} --url http://192.168.8.101/service.txt --timeout 3"))
    run = doctor("--no-run", "-f", conf)
    assert codes(run) == [(MISC_LINE, "error", "not-executable")]
    assert run.findings[0]["message"] == (
        f"{missing}: No such file or directory: env exits 126 or 127 at every run:"
        " keepalived counts each run as a failure")
    fine = write("fine.conf", SECURE + misc(
        f"{ENV} {exe('kachecks-http')} --url http://192.168.8.101/service.txt --timeout 3"))
    assert doctor("--no-run", "-f", fine).findings == []


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_a_line_that_prints_instead_of_checking_is_a_bad_option_never_run(doctor, write, flag):
    with RawHTTPServer(http_response(SERVER1)) as server:
        for where in (misc, script):
            command = f"{exe('kachecks-http')} --url {server.url} --timeout 2 {flag}"
            run = doctor("-f", write("keepalived.conf", SECURE + where(command)))
            line = MISC_LINE if where is misc else SCRIPT_LINE
            assert codes(run) == [(line, "error", "bad-option")]
            assert run.findings[0]["message"] == (
                f"kachecks-http {flag} prints the {'usage' if flag == '--help' else 'version'} and"
                " exits 0 without checking anything: keepalived would see exit 0 (healthy) at every"
                " run, whatever the server does")
        assert server.requests == []


def test_an_option_only_the_server_s_library_rejects_is_a_bad_option_when_run(doctor, write):
    with Mute() as ldap:
        conf = write("keepalived.conf", SECURE + misc(
            f"{exe('kachecks-ldap')} --uri ldap://127.0.0.1:{ldap.port} --filter (cn=x --timeout 2"))
        assert doctor("--no-run", "-f", conf).findings == []
        run = doctor("-f", conf)
    assert codes(run) == [(MISC_LINE, "error", "bad-option")]
    assert run.findings[0]["message"] == (
        "kachecks-ldap: --filter '(cn=x': invalid filter: the check exits 1 at every run")


def vrrp_instance(interface="lo"):
    return ("vrrp_instance VI_1 {\n    state BACKUP\n    interface " + interface + "\n"
            "    virtual_router_id 50\n    priority 100\n    virtual_ipaddress {\n"
            "        192.168.8.142/24\n    }\n}\n")


def test_a_kachecks_vrrp_line_is_read_but_not_run_and_the_summary_says_so(doctor, tmp_path):
    """kachecks-vrrp listens for --listen seconds (here 60) with CAP_NET_RAW: the doctor
    reads its options and the instances it names, and leaves the listening to it; the pair
    in the files is --peer's and --what-if's."""
    conf = tmp_path / "keepalived.conf"
    listening = f"{exe('kachecks-vrrp')} --keepalived-conf {conf} --listen 60 --timeout 62"
    wrong = f"{exe('kachecks')} check vrrp --keepalived-conf {conf} --listen 5 --timeout 3"
    conf.write_text(SECURE + script(listening, "    interval 70\n    timeout 65\n")
                    + script(wrong).replace("chk", "chk_wrong") + vrrp_instance())
    started = time.monotonic()
    run = doctor("-f", conf, timeout=50)  # listening, it would take 60 s
    took = time.monotonic() - started
    assert codes(run) == [(SCRIPT_LINE + 5, "error", "bad-option")], run
    assert run.findings[0]["message"] == ("kachecks check vrrp: --timeout (3 s) must exceed"
                                          " --listen (5 s): the check exits 1 at every run")
    assert "1 kachecks-vrrp line not run (each listens for seconds" in run.stderr, run.stderr
    assert took < 30, took


def test_kachecks_vrrp_in_a_misc_check_is_a_misplaced_check(doctor, write, tmp_path):
    """A real server's MISC_CHECK that judges the director pair: a VRRP problem takes every
    real server it checks out at once."""
    conf = tmp_path / "keepalived.conf"
    conf.write_text(SECURE + misc(f"{exe('kachecks-vrrp')} --keepalived-conf {conf}")
                    + vrrp_instance())
    run = doctor("-f", conf)
    assert codes(run) == [(MISC_LINE, "warning", "misplaced-check")], run
    assert run.findings[0]["message"].startswith(
        "kachecks-vrrp in a MISC_CHECK judges the VRRP pair, not this real server")
    assert run.code == 0


def tracking(weight=None, instance="VI_1", vrid=50):
    """A vrrp_instance that tracks vrrp_script chk (with ``weight`` on its entry, if given)."""
    entry = "chk" if weight is None else f"chk weight {weight}"
    return (f"vrrp_instance {instance} {{\n    state BACKUP\n    interface lo\n"
            f"    virtual_router_id {vrid}\n    priority 100\n    virtual_ipaddress {{\n"
            f"        192.168.8.142/24\n    }}\n    track_script {{\n        {entry}\n    }}\n}}\n")


def test_kachecks_vrrp_in_a_vrrp_script_tracked_with_weight_0_is_a_misplaced_check(doctor,
                                                                                    tmp_path):
    """A failing weight-0 script is FAULT: a split brain seen by both directors takes both
    out, and then nobody holds 192.168.8.142 (no-master), so neither comes back. A weight
    lowers the priority instead, which leaves a master: no finding there."""
    conf = tmp_path / "keepalived.conf"
    line = script(f"{exe('kachecks-vrrp')} --keepalived-conf {conf}",
                  "    interval 10\n    timeout 9\n")
    conf.write_text(SECURE + line + tracking() + tracking(-20, "VI_2", 51))
    run = doctor("-f", conf)
    entry = SCRIPT_LINE + 3 + 10  # vrrp_script chk's 4 lines, then VI_1's track_script entry
    assert codes(run) == [(entry, "warning", "misplaced-check")], run
    assert run.findings[0]["message"] == (
        "kachecks-vrrp (vrrp_script chk) tracked with weight 0 by vrrp_instance VI_1: a problem"
        " of the pair (split brain, filtered, mismatch) puts this director in FAULT, and the"
        " peer too if it runs the same line; nobody holds the addresses then, which is"
        " no-master, so neither leaves FAULT; watch the pair from Icinga/Nagios (kachecks-vrrp"
        " --nagios) or the agent's [vrrp] table, which never change keepalived's state")
    assert run.code == 0
    conf.write_text(SECURE + line.replace("    interval 10\n", "    interval 10\n    weight -20\n")
                    + tracking())
    assert codes(doctor("-f", conf)) == []
