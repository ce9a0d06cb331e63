"""kachecks-ldap --provider against real OpenLDAP replication: syncprov providers, a
refreshOnly consumer whose lag the tests make and end, and multi-provider server IDs."""

import re
import signal
import time

import pytest

from harness import signalled
from harness.checks import BASE, REFERENCE, ldap_check, start_check, wait_for_unanswered_request
from harness.peers import cli
from harness.peers import slapd as ldap_peer

pytestmark = pytest.mark.slow

SLACK = 1.5  # seconds a loaded machine may add to a bounded run
BEHIND = re.compile(r"behind by (\d+\.\d+) s on SID 001 of (\S+) \(max 1 s\)")


def check(repl, *args, server=None, providers=None, env=None):
    """kachecks-ldap on the consumer (or ``server``) with the reference search."""
    providers = repl.providers[:1] if providers is None else providers
    argv = ["--uri", (server or repl.consumer).url, *REFERENCE,
            *[a for p in providers for a in ("--provider", p.url)], *args]
    if "--nagios" not in args:
        return ldap_check(*argv, env=env)
    done = cli.run("kachecks-ldap", *argv, env=env)
    assert done.returncode in (0, 1, 2, 3), (done.returncode, done.stdout, done.stderr)
    assert len(done.stdout.splitlines()) == 1 and not done.stderr, (done.stdout, done.stderr)
    return done


def lag_of(line):
    return float(re.search(r"\blag=([0-9.]+)s", line).group(1))


def test_a_consumer_in_sync_passes_naming_the_provider_and_the_server_id(replication):
    done = check(replication)
    provider = replication.providers[0].url
    assert done.returncode == 0, done.stdout
    assert done.stdout.startswith("LDAP OK - 1 entry, o=mysite.mydmn.org in ")
    assert done.stdout.rstrip().endswith(f"; in sync with {provider} (SID 001)")
    nagios = check(replication, "--nagios")
    assert nagios.returncode == 0 and lag_of(nagios.stdout) == 0, nagios.stdout


def test_a_write_younger_than_max_lag_passes_after_a_quiet_day(replication):
    # The tree was written a day ago: LTB's provider-minus-consumer CSN would say
    # 86400 s now; the staleness is the age of the change the consumer lacks.
    replication.write()
    done = check(replication, "--nagios")
    assert done.returncode == 0, done.stdout
    assert re.search(rf"; [0-9.]+ s behind {replication.providers[0].url} on SID 001"
                     r" \(max 60 s\)", done.stdout), done.stdout
    assert lag_of(done.stdout) < 30


def test_a_write_the_consumer_lacks_longer_than_max_lag_fails_with_the_lag(replication):
    replication.write()
    time.sleep(1.2)
    done = check(replication, "--max-lag", "1")
    assert done.returncode == 1
    found = BEHIND.fullmatch(done.stdout.strip().removeprefix("LDAP FAIL - "))
    assert found, done.stdout
    assert 1.2 <= float(found.group(1)) < 60 and found.group(2) == replication.providers[0].url


def test_a_consumer_stopped_behind_a_busy_provider_is_stale_though_its_newest_change_is_young(
        replication):
    replication.write(dn=f"cn=ldap1,{ldap_peer.SERVERS_BASE}")
    time.sleep(1.5)
    replication.write(dn=f"cn=ldap2,{ldap_peer.SERVERS_BASE}")  # the provider is still busy
    done = check(replication, "--max-lag", "1", "--verbose")
    assert done.returncode == 1
    found = BEHIND.fullmatch(done.stdout.splitlines()[0].removeprefix("LDAP FAIL - "))
    assert found and float(found.group(1)) >= 1.5, done.stdout
    assert re.search(r": change \S+#001#000000 of SID 001 not on this server$", done.stdout,
                     re.MULTILINE), done.stdout


def test_nagios_warning_and_critical_come_from_w_and_c_on_the_lag(replication):
    replication.write()
    time.sleep(1.2)
    ok = check(replication, "--nagios", "-w", "100", "-c", "200")
    warning = check(replication, "--nagios", "-w", "1", "-c", "100")
    critical = check(replication, "--nagios", "-w", "0.5", "-c", "1")
    assert (ok.returncode, warning.returncode, critical.returncode) == (0, 1, 2)
    assert ok.stdout.startswith("LDAP OK: ") and re.search(r" lag=[0-9.]+s;100;200;0;$",
                                                            ok.stdout.strip())
    assert warning.stdout.startswith("LDAP WARNING: ") and "outside 1 |" in warning.stdout
    assert re.search(r" lag=[0-9.]+s;1;100;0;$", warning.stdout.strip()), warning.stdout
    assert critical.stdout.startswith("LDAP CRITICAL: ") and "outside 1 |" in critical.stdout
    assert 1.2 <= lag_of(warning.stdout) <= lag_of(critical.stdout) < 60


def test_max_lag_beyond_the_nagios_thresholds_is_critical_with_its_message(replication):
    replication.write()
    time.sleep(1.2)
    done = check(replication, "--nagios", "-w", "100", "-c", "200", "--max-lag", "1")
    assert done.returncode == 2
    assert done.stdout.startswith("LDAP CRITICAL: behind by "), done.stdout


def test_a_consumer_that_caught_up_passes_again(replication):
    replication.write()
    time.sleep(1.2)
    assert check(replication, "--max-lag", "1").returncode == 1
    replication.catch_up()
    done = check(replication, "--max-lag", "1")
    assert done.returncode == 0, done.stdout
    assert "in sync with" in done.stdout


def test_a_stopped_provider_is_logged_and_skipped_within_the_timeout(replication, syslog_socket):
    replication.write()
    time.sleep(1.2)
    replication.providers[0].pause()
    started = time.monotonic()
    done = check(replication, "--timeout", "1", "--max-lag", "1")
    took = time.monotonic() - started
    provider = replication.providers[0].url
    assert done.returncode == 0, done.stdout
    assert took < 1 + SLACK
    assert done.stdout.strip().endswith(
        f"; provider {provider} unreachable: TCP connection accepted but no LDAP answer"
        " within 1 s (during contextCSN); replication freshness not checked"), done.stdout
    logged = syslog_socket()
    assert len(logged) == 1 and f"provider {provider} unreachable" in logged[0], logged
    assert f"[127.0.0.1]:{replication.consumer.port} UP: " in logged[0]


def test_a_stopped_provider_fails_the_check_with_provider_down_fail(replication):
    replication.providers[0].pause()
    started = time.monotonic()
    done = check(replication, "--timeout", "1", "--provider-down", "fail")
    assert time.monotonic() - started < 1 + SLACK
    assert done.returncode == 1
    assert done.stdout == (f"LDAP FAIL - provider {replication.providers[0].url} unreachable:"
                           " TCP connection accepted but no LDAP answer within 1 s"
                           " (during contextCSN)\n")


def test_sigterm_while_waiting_for_a_stopped_provider_ends_the_run_at_once(replication):
    provider = replication.providers[0]
    provider.pause()
    running = start_check("--uri", replication.consumer.url, *REFERENCE,
                          "--provider", provider.url, "--timeout", "20")
    wait_for_unanswered_request(provider.port)
    started = time.monotonic()
    done = signalled.stop(running, signal.SIGTERM, 10)
    out, err = done.stdout, done.stderr
    assert time.monotonic() - started < SLACK
    assert running.returncode == 1
    assert out == "LDAP FAIL - terminated by SIGTERM\n", out + err


def test_providers_over_ldaps_use_the_tls_options_and_plain_ones_ignore_them(replication):
    provider = replication.providers[0]
    verified = ["--ca-file", provider.ca_file, "--tls-verify"]
    both = ldap_check("--uri", replication.consumer.ldaps_url, *REFERENCE, *verified,
                      "--provider", provider.ldaps_url, "--provider-down", "fail")
    plain = ldap_check("--uri", replication.consumer.ldaps_url, *REFERENCE, *verified,
                       "--provider", provider.url, "--provider-down", "fail")
    assert both.returncode == plain.returncode == 0, both.stdout + plain.stdout
    assert both.stdout.rstrip().endswith(f"; in sync with {provider.ldaps_url} (SID 001)")
    assert plain.stdout.rstrip().endswith(f"; in sync with {provider.url} (SID 001)")


def test_a_provider_whose_certificate_fails_verification_failed_it_was_not_unreachable(
        replication):
    with ldap_peer.Slapd() as stranger:  # a certificate from another CA
        done = ldap_check("--uri", replication.consumer.ldaps_url, *REFERENCE,
                          "--ca-file", replication.consumer.ca_file,
                          "--provider", stranger.ldaps_url)
    assert done.returncode == 0
    assert (f"; provider {stranger.ldaps_url} failed: certificate verification failed:"
            in done.stdout), done.stdout


def test_a_provider_that_refuses_connections_is_skipped_by_default(replication, unused_port):
    down = f"ldap://127.0.0.1:{unused_port}"
    done = ldap_check("--uri", replication.consumer.url, *REFERENCE, "--provider", down)
    assert done.returncode == 0
    assert (f"; provider {down} unreachable: server down: connection refused at"
            f" [127.0.0.1]:{unused_port}; replication freshness not checked") in done.stdout


def test_under_nagios_a_provider_down_is_a_warning_and_unknown_with_thresholds(replication,
                                                                             unused_port):
    down = ["--provider-down", "ok", "--nagios"]
    providers = [ldap_peer.Slapd(port=unused_port)]  # never started: connection refused
    warning = check(replication, *down, providers=providers)
    unknown = check(replication, *down, "-w", "5", providers=providers)
    assert warning.returncode == 1 and warning.stdout.startswith("LDAP WARNING: 1 entry")
    assert "replication freshness not checked | time=" in warning.stdout
    assert unknown.returncode == 3 and unknown.stdout.startswith("LDAP UNKNOWN: 1 entry")
    assert "; no lag figure to compare with -w/-c |" in unknown.stdout


def test_a_server_that_is_not_a_replica_fails_saying_so(replication):
    done = check(replication, server=replication.plain)
    assert done.returncode == 1
    assert done.stdout == (f"LDAP FAIL - not a replica: no contextCSN on {BASE} (no syncrepl"
                           " or syncprov there, or not readable by this bind)\n")


def test_context_csn_comes_from_the_naming_context_when_base_is_below_it(replication):
    replication.write()
    people = f"ou=people,{BASE}"
    done = ldap_check("--uri", replication.consumer.url, "--base", people, "--scope", "base",
                      "--provider", replication.providers[0].url, "--max-lag", "60", "--verbose")
    assert done.returncode == 0, done.stdout
    assert f"this server, {BASE}: contextCSN " in done.stdout
    assert f"{replication.providers[0].url}, {BASE}: contextCSN " in done.stdout
    assert " behind " in done.stdout.splitlines()[0]


def test_the_providers_are_bound_to_with_their_own_dn_and_password(replication, password_file):
    args = ["--provider-bind-dn", ldap_peer.BIND_DN]
    good = check(replication, *args, "--provider-password-file", password_file(ldap_peer.BIND_PASSWORD))
    assert good.returncode == 0 and "in sync with" in good.stdout, good.stdout
    wrong = password_file("not the password", name="wrong.pw")
    skipped = check(replication, *args, "--provider-password-file", wrong)
    failed = check(replication, *args, "--provider-password-file", wrong,
                   "--provider-down", "fail")
    message = (f"provider {replication.providers[0].url} failed: invalid credentials for"
               f" {ldap_peer.BIND_DN}")
    assert skipped.returncode == 0 and f"; {message}; replication freshness" in skipped.stdout
    assert failed.returncode == 1 and failed.stdout == f"LDAP FAIL - {message}\n"


def test_the_run_through_the_worker_says_what_the_run_in_process_says(replication, worker):
    replication.write()
    time.sleep(1.2)
    delegated = check(replication, "--max-lag", "1", "--verbose")
    local = check(replication, "--max-lag", "1", env={"KACHECKS_WORKER_SOCKET": "/nonexistent"})
    assert f"(run by kachecks worker {worker.pid})" in delegated.stdout
    assert delegated.returncode == local.returncode == 1
    assert BEHIND.search(delegated.stdout) and BEHIND.search(local.stdout)


# --- multi-provider: several server IDs --------------------------------------------

def test_every_server_id_of_every_provider_is_compared(multi_provider):
    first, second = multi_provider.providers
    multi_provider.wait_for(first, multi_provider.write(second))
    multi_provider.catch_up()
    done = check(multi_provider, providers=[first, second])
    assert done.returncode == 0, done.stdout
    assert done.stdout.rstrip().endswith(f"; in sync with {first.url}, {second.url}"
                                         " (SIDs 001, 002)")


def test_a_server_id_the_consumer_never_received_fails_with_its_own_message(certs):
    with ldap_peer.Replication(providers=2, certs=certs) as repl:  # no SID 002 anywhere yet
        first, second = repl.providers
        repl.wait_for(first, repl.write(second))
        young = check(repl, providers=[first])
        assert young.returncode == 0
        assert f"; SID 002 of {first.url} not here yet, for " in young.stdout, young.stdout
        time.sleep(1.2)
        done = check(repl, "--max-lag", "1", providers=[first])
    assert done.returncode == 1
    assert re.fullmatch(rf"LDAP FAIL - SID 002 missing: {re.escape(first.url)} holds changes of"
                        r" SID 002 this server never received, for \d+\.\d s"
                        r" \(max 1 s\)\n", done.stdout), done.stdout


def test_a_stopped_provider_leaves_the_other_to_judge(multi_provider):
    first, second = multi_provider.providers
    multi_provider.write(first)
    time.sleep(1.2)
    second.pause()
    started = time.monotonic()
    done = check(multi_provider, "--timeout", "1", "--max-lag", "1", providers=[second, first])
    assert time.monotonic() - started < 1 + SLACK
    assert done.returncode == 1
    assert f"on SID 001 of {first.url} (max 1 s)" in done.stdout, done.stdout
