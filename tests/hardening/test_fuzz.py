"""Real peers' replies, mangled: every run still ends the way the contract says.

A harness.peers.mangler proxy sits between each check and a real peer (web1's
page from a RawHTTPServer, with a Content-Length or chunked; slapd with the
reference tree, answering the reference search) and mutates what the peer says,
connection k from (SEED, k): bit flips, replaced bytes, truncation, random and huge
insertions, duplicated segments, CR/LF games, huge lengths, pieces and drips.
Whatever arrives, a check ends with a code its mode allows (0 or 1; under
--nagios 0 or 2 CRITICAL; under --dynamic 1 or 2 + weight), never by a signal, with
one printable status line, no traceback or internal error, within its --timeout
and a margin. ``python -m harness.redteam --only fuzz`` runs the same cases by the
thousand and prints the counts.
"""

import collections
import socket

import pytest

from harness.peers.mangler import KINDS, Mangler
from harness.peers.rawhttp import RawHTTPServer
from harness.redteam import NAGIOS, WEB_REPLIES, fuzz_cases, fuzz_runs

pytestmark = pytest.mark.slow

SEED = 2025
RUNS = 60  # per check: 20 of each of its three command lines
MARGIN = 2.0  # beyond --timeout: interpreter start and exit on a loaded machine


@pytest.mark.parametrize("check", ["http", "tcp", "ldap"])
def test_a_mangled_reply_ends_in_an_allowed_code_with_one_status_line(check):
    runs = fuzz_runs(check, range(RUNS), seed=SEED, lanes=3)
    assert [run.index for run in runs] == list(range(RUNS))
    faulty = [f"{run!r}: {', '.join(run.faults(MARGIN).values())}" for run in runs if run.faults(MARGIN)]
    assert not faulty, "\n".join(faulty)
    # The peer was really there: the replies passed on untouched were healthy ...
    controls = [run for run in runs if run.control]
    assert controls, "no connection was left untouched"
    assert all(run.finished.returncode == run.case.healthy for run in controls), controls
    # ... and the mangling really bit: many runs failed, and said so.
    failed = [run for run in runs if run.finished.returncode != run.case.healthy]
    assert len(failed) >= RUNS // 4, collections.Counter(r.finished.returncode for r in runs)
    drawn = {note.split()[2].rstrip(":") for run in runs for note in run.mutations
             if note.startswith("frame ")}
    assert drawn == set(KINDS), f"never drawn: {set(KINDS) - drawn}"


@pytest.mark.parametrize("check", ["http", "tcp", "ldap"])
def test_under_nagios_a_mangled_reply_that_fails_is_critical(check):
    cases = fuzz_cases(check)
    nagios = [k for k in range(RUNS, 2 * RUNS) if cases[k % len(cases)].codes is NAGIOS]
    runs = fuzz_runs(check, nagios, seed=SEED, lanes=3)
    assert len(runs) == len(nagios) == RUNS // 3
    faulty = [f"{run!r}: {', '.join(run.faults(MARGIN).values())}" for run in runs if run.faults(MARGIN)]
    assert not faulty, "\n".join(faulty)
    critical = [run for run in runs if run.finished.returncode == 2]
    assert critical, [run.finished for run in runs]
    name = check.upper()
    for run in critical:
        assert run.finished.stdout.startswith(f"{name} CRITICAL: "), run


def _exchange(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"GET /service.txt HTTP/1.0\r\n\r\n")
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    return received


def test_a_connections_mangling_is_reproducible_from_seed_and_index():
    seen = []
    with RawHTTPServer(WEB_REPLIES[0]) as web:
        for seed in (SEED, SEED, SEED + 1):
            with Mangler([(web.host, web.port)], seed, drip_limit=0.5) as mangler:
                exchanges = []
                for index in (3, 17, 40):
                    mangler.expect(index)
                    exchanges.append((_exchange(mangler.port), mangler.mutations(index)))
                seen.append(exchanges)
    assert seen[0] == seen[1]
    assert seen[0] != seen[2]
    assert any(received != WEB_REPLIES[0] for received, _ in seen[0]), seen[0]
