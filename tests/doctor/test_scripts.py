"""Programs keepalived would run: found, executable, safe to run as root, no secrets on argv.

Each script is checked the way keepalived checks it at start-up (its path
search, its executable test for the script user, its path security for
scripts run as root), plus what keepalived cannot see: a file without a #!
line, whose failed exec keepalived counts as success.
"""

import os

import pytest

from harness.peers.keepalived import secure_dir
from kachecks.doctor import configtest, scripts
from kachecks.scriptline import Dialect, split_command

KEEPALIVED = configtest.find()
SECURE = "global_defs {\n    enable_script_security\n    script_user root\n}\n"
OPEN = "global_defs {\n    router_id lvs1\n}\n"


def vrrp_script(command, extra=""):
    return f'vrrp_script chk {{\n    script "{command}"\n    interval 4\n{extra}}}\n'


def misc_check(command, extra=""):
    return ("virtual_server 192.168.8.142 80 {\n    delay_loop 4\n    lb_algo wlc\n    lb_kind DR\n"
            "    protocol TCP\n    real_server 192.168.8.101 80 {\n        weight 1\n"
            f'        MISC_CHECK {{\n            misc_path "{command}"\n{extra}        }}\n    }}\n}}\n')


@pytest.fixture
def bin_dir(tmp_path):
    """A directory keepalived's script security accepts, for the tests' programs."""
    return secure_dir(tmp_path / "bin")


def program(directory, name, text="#!/bin/sh\nexit 0\n", mode=0o755):
    path = directory / name
    path.write_text(text)
    os.chmod(path, mode)
    return path


def findings(run, code):
    return [(f["line"], f["severity"], f["message"]) for f in run.findings if f["code"] == code]


def test_a_missing_misc_path_program_drops_the_check(doctor, write, bin_dir):
    conf = write("keepalived.conf", SECURE + misc_check(f"{bin_dir}/check-web --host 192.168.8.101"))
    run = doctor("--no-run", "-f", conf)
    assert findings(run, "not-executable") == [
        (13, "error", f"{bin_dir}/check-web: No such file or directory: keepalived drops this"
                      " MISC_CHECK (the real server is no longer checked by it)")]
    assert run.code == 1


def test_a_program_without_execute_permission(doctor, write, bin_dir):
    program(bin_dir, "chk", mode=0o644)
    conf = write("keepalived.conf", SECURE + vrrp_script(f"{bin_dir}/chk"))
    run = doctor("--no-run", "-f", conf)
    [(line, severity, message)] = findings(run, "not-executable")
    assert (line, severity) == (6, "error")
    assert "is not executable by root (0:0, script_user)" in message
    assert "keepalived disables this vrrp_script" in message


def test_a_script_without_a_shebang_is_said_to_pass_whatever_it_does(doctor, write, bin_dir):
    """keepalived's child exits 0 when execve fails: a check that can never fail."""
    program(bin_dir, "chk", text="exit 1\n")
    conf = write("keepalived.conf", SECURE + vrrp_script(f"{bin_dir}/chk"))
    run = doctor("--no-run", "-f", conf)
    [(line, severity, message)] = findings(run, "not-executable")
    assert (line, severity) == (6, "error")
    assert "has no #! line" in message and "counts that as success" in message


def test_a_shebang_naming_a_missing_interpreter(doctor, write, bin_dir):
    program(bin_dir, "chk", text="#!/usr/bin/no-such-python3\nprint()\n")
    conf = write("keepalived.conf", SECURE + vrrp_script(f"{bin_dir}/chk"))
    run = doctor("--no-run", "-f", conf)
    [(_, _, message)] = findings(run, "not-executable")
    assert "interpreter /usr/bin/no-such-python3 does not exist" in message


def test_a_bare_program_name_is_found_by_path_search_with_a_warning(doctor, write):
    conf = write("keepalived.conf", SECURE + vrrp_script("true") + vrrp_script("no-such-program-kc"))
    run = doctor("--no-run", "-f", conf)
    assert [(line, severity) for line, severity, _ in findings(run, "not-executable")] == [
        (6, "warning"), (10, "error")]
    assert "keepalived finds /usr/bin/true by path search" in findings(run, "not-executable")[0][2]


def test_a_program_the_script_user_cannot_execute(doctor, write, bin_dir):
    program(bin_dir, "chk", mode=0o700)  # root's own
    conf = write("keepalived.conf", SECURE + vrrp_script(f"{bin_dir}/chk", "    user nobody\n"))
    run = doctor("--no-run", "-f", conf)
    [(_, _, message)] = findings(run, "not-executable")
    assert "is not executable by nobody" in message and "its user keyword" in message


def test_an_unknown_script_user(doctor, write, bin_dir):
    program(bin_dir, "chk")
    conf = write("keepalived.conf", SECURE + vrrp_script(f"{bin_dir}/chk", "    user no-such-user-kc\n"))
    run = doctor("--no-run", "-f", conf)
    [(_, _, message)] = findings(run, "not-executable")
    assert "user no-such-user-kc is not a known user/group" in message


def test_a_line_keepalived_cannot_split(doctor, write):
    conf = write("keepalived.conf", SECURE + vrrp_script("/usr/bin/printf 'unterminated"))
    run = doctor("--no-run", "-f", conf)
    [(_, _, message)] = findings(run, "not-executable")
    assert "missing terminating '" in message and "drops the script" in message


def test_notify_scripts_and_dev_tcp_tests(doctor, write, bin_dir):
    program(bin_dir, "notify.sh")
    conf = write("keepalived.conf", SECURE + (
        "vrrp_instance VI_1 {\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n"
        f'    priority 100\n    notify "{bin_dir}/notify.sh generic"\n'
        f"    notify_master {bin_dir}/missing-master.sh\n}}\n")
        + vrrp_script("</dev/tcp/192.168.8.101/80"))
    run = doctor("--no-run", "-f", conf)
    assert [(line, message.split(":")[0]) for line, _, message in findings(run, "not-executable")] == [
        (11, f"{bin_dir}/missing-master.sh")]
    assert "keepalived never runs it" in findings(run, "not-executable")[0][2]


def test_scripts_run_as_root_without_script_security_are_a_warning(doctor, write, bin_dir):
    program(bin_dir, "chk")
    conf = write("keepalived.conf", OPEN + vrrp_script(f"{bin_dir}/chk") + vrrp_script(f"{bin_dir}/chk"))
    run = doctor("--no-run", "-f", conf)
    assert findings(run, "script-security") == [
        (5, "warning", "2 script(s) run as root and global_defs has no enable_script_security:"
                       " keepalived runs them anyway, even from paths other users can write to"
                       " (keepalived -t exits 6: SECURITY VIOLATION)")]
    assert run.code == 0


@pytest.mark.parametrize("security,severity", [(True, "error"), (False, "warning")])
def test_a_path_other_users_can_write_to(doctor, write, tmp_path, security, severity):
    shared = secure_dir(tmp_path / "shared")
    os.chmod(shared, 0o777)
    program(shared, "chk")
    conf = write("keepalived.conf", (SECURE if security else OPEN) + vrrp_script(f"{shared}/chk"))
    run = doctor("--no-run", "-f", conf)
    security_findings = [f for f in findings(run, "script-security") if str(shared) in f[2]]
    [(_, got, message)] = security_findings
    assert got == severity and f"{shared} writable by everyone" in message


def test_a_sticky_directory_like_tmp_is_accepted_and_a_non_root_owner_is_not(doctor, write, tmp_path):
    sticky = secure_dir(tmp_path / "sticky")
    os.chmod(sticky, 0o1777)
    program(sticky, "chk")
    owned = secure_dir(tmp_path / "owned")
    program(owned, "chk")
    os.chown(owned / "chk", 65534, 65534)
    conf = write("keepalived.conf", SECURE + vrrp_script(f"{sticky}/chk") + vrrp_script(f"{owned}/chk"))
    run = doctor("--no-run", "-f", conf)
    assert [(line, severity) for line, severity, _ in findings(run, "script-security")] == [(10, "error")]
    assert f"{owned}/chk owned by uid 65534, not root" in findings(run, "script-security")[0][2]


def test_script_security_without_a_script_user(doctor, write, bin_dir):
    program(bin_dir, "chk")
    conf = write("keepalived.conf", "global_defs {\n    enable_script_security\n}\n"
                 + vrrp_script(f"{bin_dir}/chk"))
    run = doctor("--no-run", "-f", conf)
    try:
        import pwd

        pwd.getpwnam("keepalived_script")
        assert findings(run, "not-executable") == []  # then scripts run as keepalived_script
    except KeyError:
        [(line, severity, message)] = findings(run, "not-executable")
        assert (line, severity) == (5, "error")
        assert "neither a keepalived_script user nor a script_user" in message


@pytest.mark.skipif(KEEPALIVED is None, reason="keepalived is not installed")
def test_keepalived_t_agrees_and_is_not_repeated(doctor, write, tmp_path, bin_dir):
    """keepalived -t fails on an insecure or missing tracked script, and names no line."""
    shared = secure_dir(tmp_path / "shared")
    os.chmod(shared, 0o777)
    program(shared, "chk")
    conf = write("keepalived.conf", SECURE + vrrp_script(f"{shared}/chk")
                 + vrrp_script(f"{bin_dir}/missing").replace("chk", "chk2", 1)
                 + "vrrp_instance VI_1 {\n    state BACKUP\n    interface lo\n"
                   "    virtual_router_id 51\n    priority 100\n"
                   "    virtual_ipaddress {\n        192.168.8.142/32 dev lo\n    }\n"
                   "    track_script {\n        chk\n        chk2\n    }\n}\n")
    alone = doctor("--no-run", "-f", conf)
    merged = doctor("--no-run", "-f", conf, keepalived=True)
    assert "-t exit 5" in merged.stderr
    assert {(f["code"], f["line"]) for f in alone.findings} == {("script-security", 6),
                                                                ("not-executable", 10)}
    # keepalived says the same, without a line (what it says of the interface is its own)
    assert [f for f in merged.findings if f["code"] != "syntax"] == alone.findings
    assert not [f for f in merged.findings if "script" in f["message"] and f not in alone.findings]


@pytest.mark.parametrize("argv,said", [
    (["/usr/bin/ldapsearch", "-x", "-D", "cn=admin", "-w", "s3cret"], ["ldapsearch -w"]),
    (["/usr/bin/ldapsearch", "-x", "-ws3cret"], ["ldapsearch -w"]),
    (["/usr/local/bin/check", "--password=s3cret"], ["check --password"]),
    (["/usr/local/bin/check", "--db-password", "s3cret"], ["check --db-password"]),
    (["/usr/bin/curl", "-u", "admin:s3cret", "http://192.168.8.101/"], ["curl -u USER:PASSWORD"]),
    (["/usr/bin/wget", "http://admin:s3cret@192.168.8.101/service.txt"], ["wget: a user:password@ URL"]),
    (["/usr/bin/mysql", "-ps3cret"], ["mysql -p"]),
    (["/usr/bin/redis-cli", "-a", "s3cret", "ping"], ["redis-cli -a"]),
    (["/usr/bin/env", "PGPASSWORD=s3cret", "/usr/bin/psql"], ["env PGPASSWORD=…"]),
    (["/bin/sh", "-c", "ldapsearch -x -w 's3 cret' | grep -q mysite"], ["ldapsearch -w"]),
    (["/usr/bin/ldapsearch", "-x", "-y", "/etc/kachecks/ldap.pw"], []),
    (["/usr/bin/ldapsearch", "-x", "-W"], []),
    (["/usr/bin/mysql", "-p"], []),
    (["/usr/bin/kachecks-ldap", "--password-file", "/etc/kachecks/ldap.pw"], []),
    (["/usr/bin/kachecks-http", "--url", "http://192.168.8.101/service.txt"], []),
])
def test_passwords_on_a_command_line_are_found_never_repeated(argv, said):
    assert scripts.secrets(argv) == said
    assert not any("s3cret" in text for text in said)


def test_a_password_in_misc_path_is_a_warning_at_its_line(doctor, write):
    conf = write("keepalived.conf", SECURE + misc_check(
        "/usr/bin/ldapsearch -x -H ldap://192.168.8.101 -D cn=admin -w s3cret -b dc=mysite"))
    run = doctor("--no-run", "-f", conf)
    [(line, severity, message)] = findings(run, "secret-on-argv")
    assert (line, severity) == (13, "warning") and "s3cret" not in message
    assert "shows in ps" in message


@pytest.mark.parametrize("line,version,argv", [
    # keepalived 2.2.7 applies escapes twice: once on the line, once splitting the command
    (r'script "/bin/echo c\\x41"', (2, 2, 7), ["/bin/echo", "cA"]),
    (r'script "/bin/echo c\\x41"', (2, 3, 3), ["/bin/echo", r"c\x41"]),
    (r'script "/usr/bin/kachecks-http --regex hello\\s+world"', (2, 2, 7),
     ["/usr/bin/kachecks-http", "--regex", "hellos+world"]),
    (r'script "/usr/bin/kachecks-http --regex hello\\s+world"', (2, 3, 3),
     ["/usr/bin/kachecks-http", "--regex", r"hello\s+world"]),
    # 2.2.7 reads every hex digit of \x; its tab then splits the command again
    (r"script '/bin/echo \x414243 tab\there'", (2, 2, 7), ["/bin/echo", "C", "tab", "here"]),
    (r"script '/bin/echo \x414243 tab\there'", (2, 3, 3), ["/bin/echo", "A4243", "tab\there"]),
])
def test_commands_are_split_as_the_installed_keepalived_splits_them(line, version, argv):
    class Node:
        keyword, raw = "script", line

    assert scripts.script_argv(Node, Dialect(version)) == (argv, None)


def test_splitting_groups_quotes_and_processes_c_escapes():
    assert split_command(r"""a 'b c' "d e" f\ g \101\cA\E""") == ["a", "b c", "d e", "f g", "A\x01\x1b"]


def unblock(fifo):
    """Let a reader stuck opening ``fifo`` go (a writer that closes at once: EOF)."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # ENXIO: no reader waits, nothing to release
        pass


def test_a_program_swapped_for_a_fifo_after_its_stat_does_not_hang_the_doctor(tmp_path,
                                                                             in_thread):
    # The doctor judges a program by its stat, then reads its #! line: a user who can write
    # there swaps in a FIFO in between, and a blocking open() waits for a writer for ever.
    fifo = tmp_path / "check"
    os.mkfifo(fifo, 0o755)
    try:
        got, _took = in_thread(lambda: scripts.exec_problem(str(fifo)), within=10)
    finally:
        unblock(fifo)
    assert got is None  # no longer a program to read: its stat was judged already
