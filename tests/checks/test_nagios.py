"""--nagios for Icinga/Nagios: -w/-c ranges on the main figure, perfdata with thresholds,
the monitoring-plugins spellings -H/-I where genhash's do not claim them."""

import re

import pytest

from harness.checks import MD5_SERVER1, SERVER1, http, one_line, tcp
from harness.peers import cli
from harness.peers.rawhttp import RawHTTPServer, http_response
from kachecks.checks.result import Result
from kachecks.checks.thresholds import Range
from kachecks.checks.verdict import judge
from kachecks.checks import registry

PERFDATA = re.compile(r"\| time=(\d+(?:\.\d+)?)s;([^;]*);([^;]*);0; size=20B$")


@pytest.fixture(scope="module")
def web1():
    """web1's /service.txt on a loopback port."""
    with RawHTTPServer(http_response(SERVER1)) as server:
        yield f"http://127.0.0.1:{server.port}/service.txt"


@pytest.mark.parametrize("text, alerting, quiet", [
    ("10", [-1, 10.5, 25], [0, 5, 10]),
    ("10:", [-1, 0, 9.9], [10, 25]),
    ("~:10", [10.1, 25], [-100, 0, 10]),
    ("10:20", [-1, 9, 21], [10, 15, 20]),
    ("@10:20", [10, 15, 20], [9, 21, -1]),
    ("0.5", [0.6], [0.004, 0.5]),
])
def test_ranges_alert_as_the_monitoring_plugins_guidelines_say(text, alerting, quiet):
    limit = Range(text)
    assert [v for v in alerting if not limit.alerts(v)] == []
    assert [v for v in quiet if limit.alerts(v)] == []


@pytest.mark.parametrize("text", ["", ":", "x", "20:10", "@", "1:x", "nan"])
def test_a_malformed_range_is_refused(text):
    with pytest.raises(ValueError):
        Range(text)


def test_a_warning_range_around_every_time_warns_with_thresholds_in_the_perfdata(web1):
    proc = http("--url", web1, "--digest", MD5_SERVER1, "--nagios", "-w", "@0:", "-c", "1000")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = one_line(proc)
    assert line.startswith("HTTP WARNING: 200 OK, md5 5f2b…75 matches, 20 B in ")
    assert re.search(r"; time \d+(\.\d+)?s inside 0: \|", line), line
    assert PERFDATA.search(line).group(2, 3) == ("@0:", "1000")


def test_critical_wins_over_warning(web1):
    proc = http("--url", web1, "--nagios", "--warning", "~:0", "--critical", "~:0")
    assert proc.returncode == 2
    assert one_line(proc).startswith("HTTP CRITICAL: 200 OK")
    assert PERFDATA.search(one_line(proc)).group(2, 3) == ("~:0", "~:0")


def test_a_time_inside_both_ranges_is_ok(web1):
    proc = http("--url", web1, "--nagios", "-w", "10", "-c", "20")
    assert proc.returncode == 0
    time, warn, crit = PERFDATA.search(one_line(proc)).groups()
    assert float(time) < 10 and (warn, crit) == ("10", "20")


def test_without_thresholds_the_perfdata_is_unchanged(web1):
    proc = http("--url", web1, "--nagios")
    assert proc.returncode == 0
    assert re.search(r"\| time=\d+(\.\d+)?s size=20B$", one_line(proc))


def test_a_failed_check_is_critical_whatever_the_thresholds(unused_port):
    proc = tcp("-H", "127.0.0.1", "-p", unused_port, "--nagios", "-w", "100", "-c", "200")
    assert proc.returncode == 2
    assert re.fullmatch(r"TCP CRITICAL: connection refused \| time=\S+s;100;200;0;", one_line(proc))


def test_thresholds_without_nagios_are_a_usage_error_never_2(web1):
    for flag in ("-w", "-c"):
        proc = http("--url", web1, flag, "1")
        assert proc.returncode == 1
        assert "need --nagios" in proc.stderr


def test_a_bad_range_is_unknown_under_nagios(web1):
    proc = http("--url", web1, "--nagios", "-w", "20:10")
    assert proc.returncode == 3
    assert one_line(proc).startswith("HTTP UNKNOWN: -w: '20:10' is not a range")


def test_the_threshold_judges_the_figure_the_result_names():
    """A probe that reports another main figure (replication lag) is judged on it."""
    target = registry.load("ldap").parse(["--uri", "ldap://192.168.8.101", "--nagios",
                                          "-w", "60", "-c", "300"])
    lagging = Result(True, summary="in sync", figure="lag",
                     perfdata=(("time", 0.01, "s"), ("lag", 120.0, "s")))
    judged = judge(lagging, target)
    assert (judged.code, judged.word, judged.note) == (1, "WARNING", "lag 120s outside 60")
    assert judge(Result(True, perfdata=(("time", 0.01, "s"),)), target).word == "OK"
    missing = judge(Result(True, figure="lag", perfdata=(("time", 0.01, "s"),)), target)
    assert (missing.code, missing.word) == (3, "UNKNOWN")


def test_http_takes_check_https_host_spelling_h(web1):
    port = web1.split(":")[2].split("/")[0]
    proc = http("-H", "127.0.0.1", "-p", port, "-u", "/service.txt", "--digest", MD5_SERVER1)
    assert proc.returncode == 0, proc.stderr
    assert "-I, --sni" in http("--help").stdout  # genhash's -I keeps its meaning


def test_tcp_takes_i_as_the_host_and_ldap_a_bare_host_for_h(unused_port):
    assert tcp("-I", "127.0.0.1", "-p", unused_port, "-q").stdout.startswith("TCP FAIL - connection refused")
    done = cli.run("kachecks-ldap", "-H", f"127.0.0.1:{unused_port}", "-q", "-t", "2")
    assert done.returncode == 1
    assert done.stdout.startswith(f"LDAP FAIL - server down: connection refused at [127.0.0.1]:{unused_port}")
