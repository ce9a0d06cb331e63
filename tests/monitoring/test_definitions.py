"""The shipped Icinga 2 and Nagios definitions, fed the reference deployment's values,
give command lines that run the checks against local peers with the right result."""

import re
import shlex
import socket
import subprocess
from pathlib import Path

import pytest

from harness.checks import MD5_SERVER1, MD5_SERVER2, SERVER1, SERVER2
from harness.monitoring import check_commands, icinga_argv, nagios_command_line, nagios_commands
from harness.peers import cli
from harness.peers.rawhttp import RawHTTPServer, http_response
from harness.peers.slapd import BASE, ORGANIZATION, Slapd
from harness.lab import reference as ref

EXAMPLES = Path(__file__).resolve().parents[2] / "packaging/debian/examples"
ICINGA = check_commands((EXAMPLES / "kachecks-icinga2.conf").read_text())
NAGIOS = nagios_commands((EXAMPLES / "kachecks-nagios.cfg").read_text())
HOST = {"name": "web1", "address": "127.0.0.1"}  # web1, on this machine's loopback
PERF = re.compile(r"\| time=[\d.]+s;(?P<warn>[^;]*);(?P<crit>[^;]*);0;")


@pytest.fixture(scope="module")
def web():
    """web1's and web2's /service.txt."""
    with RawHTTPServer(http_response(SERVER1)) as web1, RawHTTPServer(http_response(SERVER2)) as web2:
        yield {"web1": web1.port, "web2": web2.port}


@pytest.fixture(scope="module")
def ldap():
    with Slapd() as server:
        yield server


@pytest.fixture
def listener():
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock.getsockname()[1]


def run_argv(argv):
    """Run a rendered command line, the installed executable swapped for the one under test."""
    done = subprocess.run(cli.command(Path(argv[0]).name) + argv[1:], capture_output=True,
                          text=True, timeout=30)
    return done.returncode, done.stdout.strip(), done.stderr


def run_nagios(name, **macros):
    """Run a Nagios command line through /bin/sh -c, as Nagios runs one holding quotes."""
    line = nagios_command_line(NAGIOS[name], {"HOSTADDRESS": HOST["address"], **macros})
    program = line.split()[0]
    line = line.replace(program, shlex.quote(cli.command(Path(program).name)[0]), 1)
    done = subprocess.run(["/bin/sh", "-c", line], capture_output=True, text=True, timeout=30)
    return done.returncode, done.stdout.strip(), done.stderr


def test_every_argument_is_an_option_of_its_check_and_described():
    assert set(ICINGA) == {"kachecks-http", "kachecks-tcp", "kachecks-ldap", "kachecks-vrrp"}
    for name, command in ICINGA.items():
        # kachecks-vrrp needs CAP_NET_RAW: the monitoring user runs it through sudo
        sudo = ["/usr/bin/sudo", "-n"] if name == "kachecks-vrrp" else []
        assert command["command"] == [*sudo, f"/usr/bin/{name}"]
        help_text = cli.run(name, "--help").stdout
        for key, spec in command["arguments"].items():
            assert re.search(rf"(^|[ ,]){re.escape(key)}\b", help_text, re.M), (name, key)
            assert spec.get("description"), (name, key)
            macros = re.findall(r"\$(\w+)\$", str(spec.get("value", "")) + str(spec.get("set_if", "")))
            prefix = name.replace("-", "_") + "_"
            assert all(m.startswith(prefix) for m in macros), (name, key, macros)


def test_icinga_http_passes_web1s_digest_with_thresholds_in_the_perfdata(web):
    argv = icinga_argv(ICINGA["kachecks-http"], {
        "kachecks_http_port": web["web1"], "kachecks_http_uri": "/service.txt",
        "kachecks_http_digest": [MD5_SERVER1], "kachecks_http_warning": "1",
        "kachecks_http_critical": "2", "kachecks_http_timeout": 2}, HOST)
    assert argv[:2] == ["/usr/bin/kachecks-http", "--nagios"]
    assert ["--server", "127.0.0.1"] == argv[argv.index("--server"):argv.index("--server") + 2]
    assert "--quiet" in argv and "--use-ssl" not in argv
    code, out, err = run_argv(argv)
    assert (code, err) == (0, ""), out
    assert out.startswith("HTTP OK: 200 OK, md5 5f2b…75 matches")
    assert PERF.search(out).group("warn", "crit") == ("1", "2")


def test_icinga_http_is_critical_on_web2_with_web1s_digest_and_repeats_digests(web):
    vars_ = {"kachecks_http_port": web["web2"], "kachecks_http_uri": "/service.txt",
             "kachecks_http_digest": [MD5_SERVER1]}
    code, out, _ = run_argv(icinga_argv(ICINGA["kachecks-http"], vars_, HOST))
    assert code == 2 and out.startswith("HTTP CRITICAL: md5 mismatch")
    both = icinga_argv(ICINGA["kachecks-http"],
                       {**vars_, "kachecks_http_digest": [MD5_SERVER1, MD5_SERVER2]}, HOST)
    assert both.count("--digest") == 2
    assert run_argv(both)[0] == 0


def test_icinga_http_warns_when_the_time_is_in_the_warning_range(web):
    argv = icinga_argv(ICINGA["kachecks-http"], {
        "kachecks_http_port": web["web1"], "kachecks_http_uri": "/service.txt",
        "kachecks_http_warning": "@0:"}, HOST)
    code, out, _ = run_argv(argv)
    assert code == 1 and out.startswith("HTTP WARNING:")


def test_icinga_tcp_and_its_required_port(listener, unused_port):
    command = ICINGA["kachecks-tcp"]
    assert run_argv(icinga_argv(command, {"kachecks_tcp_port": listener}, HOST))[:2][0] == 0
    code, out, _ = run_argv(icinga_argv(command, {"kachecks_tcp_port": unused_port}, HOST))
    assert code == 2 and out.startswith("TCP CRITICAL: connection refused")
    with pytest.raises(ValueError):
        icinga_argv(command, {}, HOST)


def test_icinga_ldap_runs_the_reference_search(ldap):
    command = ICINGA["kachecks-ldap"]
    values = {"kachecks_ldap_port": ldap.port, "kachecks_ldap_base": BASE,
              "kachecks_ldap_filter": ref.LDAP_FILTER, "kachecks_ldap_expect": [ref.LDAP_EXPECT],
              "kachecks_ldap_warning": "2", "kachecks_ldap_critical": "4"}
    argv = icinga_argv(command, values, HOST)
    assert f"ldap://127.0.0.1:{ldap.port}" in argv
    code, out, err = run_argv(argv)
    assert (code, err) == (0, ""), out
    assert out.startswith(f"LDAP OK: 1 entry, o={ORGANIZATION}")
    assert PERF.search(out).group("warn", "crit") == ("2", "4")
    wrong = {**values, "kachecks_ldap_expect": ["o=othersite.mydmn.org"]}
    assert run_argv(icinga_argv(command, wrong, HOST))[0] == 2


def test_nagios_commands_run_through_the_shell(web, ldap, listener):
    assert set(NAGIOS) == {"check_kachecks_http", "check_kachecks_https", "check_kachecks_tcp",
                           "check_kachecks_ldap", "check_kachecks_vrrp"}
    code, out, _ = run_nagios("check_kachecks_http", ARG1=web["web1"], ARG2="/service.txt",
                              ARG3=MD5_SERVER1, ARG4="1", ARG5="2")
    assert code == 0 and out.startswith("HTTP OK:") and PERF.search(out)
    code, out, _ = run_nagios("check_kachecks_http", ARG1=web["web2"], ARG2="/service.txt",
                              ARG3=MD5_SERVER1, ARG4="1", ARG5="2")
    assert code == 2 and out.startswith("HTTP CRITICAL: md5 mismatch")
    assert run_nagios("check_kachecks_tcp", ARG1=listener, ARG2="1", ARG3="2")[0] == 0
    code, out, _ = run_nagios("check_kachecks_ldap", ARG1=ldap.port, ARG2=BASE, ARG3=ref.LDAP_FILTER,
                              ARG4=ref.LDAP_EXPECT, ARG5="2", ARG6="4")
    assert code == 0 and out.startswith("LDAP OK:"), out


def test_nagios_https_speaks_tls(tls_web):
    code, out, err = run_nagios("check_kachecks_https", ARG1=tls_web, ARG2="/service.txt",
                                ARG3=MD5_SERVER1, ARG4="1", ARG5="2")
    assert code == 0 and out.startswith("HTTP OK:"), out + err


def test_the_icinga_renderer_follows_icingas_argument_rules():
    command = check_commands('''
        object CheckCommand "x" {
            command = [ "/bin/x" ]
            arguments = {
                "-b" = { value = "$b$" ; order = 2 }
                "-a" = { value = "$a$"; repeat_key = false }
                "-f" = { set_if = "$f$" }
                "-g" = { set_if = "$g$" }  // g unset: left out
                "-z" = { value = "$z$"; order = -1; description = "x\\"y" }
            }
            vars.b = "$c$-suffix"
            vars.c = 7
        }''')["x"]
    assert icinga_argv(command, {"a": ["1", "2"], "f": True, "z": ""}, {}) == [
        "/bin/x", "-z", "", "-a", "1", "2", "-f", "-b", "7-suffix"]
    assert icinga_argv(command, {"f": False}, {}) == ["/bin/x", "-b", "7-suffix"]


@pytest.fixture
def vrrp_segment(tmp_path):
    """A director (lvs1, its keepalived.conf; no keepalived) hearing VI_1's master, the
    client, advertise once a second: what the VRRP definitions run against."""
    from harness.peers.keepalived import secure_dir, vrrp_config
    from harness.peers.netns import Network, cleanup_stale, run_prefix
    from harness.peers.vrrp import HOSTS, VIP, Advertiser
    from kachecks.vrrp import wire

    cleanup_stale("kcvm")
    conf = secure_dir(tmp_path / "etc") / "keepalived.conf"
    conf.write_text(vrrp_config("lvs1", 100, VIP))
    packet = wire.encode(4, HOSTS["client"], "224.0.0.18", 50, 100, [VIP],
                         auth_type=wire.AUTH_PASS, password=b"toto")
    with Network(run_prefix("kcvm"), {"lvs1": HOSTS["lvs1"], "client": HOSTS["client"]}) as net:
        with Advertiser(net["client"], lambda: [packet]):
            yield net["lvs1"], conf


def without_sudo(argv):
    """The command line as root runs it (sudo is for the monitoring user)."""
    while argv[0].endswith("sudo") or argv[0] == "-n":
        argv = argv[1:]
    return cli.command(Path(argv[0]).name) + argv[1:]


@pytest.mark.netns
def test_icinga_vrrp_hears_the_master_on_the_director(vrrp_segment):
    director, conf = vrrp_segment
    argv = icinga_argv(ICINGA["kachecks-vrrp"], {"kachecks_vrrp_instance": ["VI_1"],
                                                 "kachecks_vrrp_keepalived_conf": str(conf),
                                                 "kachecks_vrrp_critical": "1:1"}, HOST)
    assert argv[:4] == ["/usr/bin/sudo", "-n", "/usr/bin/kachecks-vrrp", "--nagios"]
    assert "--quiet" in argv and argv[argv.index("--instance") + 1] == "VI_1"
    done = director.run(without_sudo(argv))
    assert done.returncode == 0, done
    assert done.stdout.startswith("VRRP OK: VI_1 vrid 50 on eth0: master 192.168.8.10 prio 100")
    assert re.search(r"\| sources=1;;1:1;0; adverts=\d+$", done.stdout.strip()), done.stdout


@pytest.mark.netns
def test_nagios_vrrp_runs_through_the_shell_on_the_director(vrrp_segment):
    director, conf = vrrp_segment
    line = nagios_command_line(NAGIOS["check_kachecks_vrrp"], {"ARG1": "VI_1"})
    argv = without_sudo(line.replace("'", "").split()) + ["--keepalived-conf", str(conf)]
    done = director.run(["/bin/sh", "-c", shlex.join(argv)])
    assert done.returncode == 0 and done.stdout.startswith("VRRP OK: "), done
