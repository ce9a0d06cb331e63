"""The start-up budget cannot silently regress (issue 8; docs/reference.md, "The check contract").

keepalived forks every check each delay_loop, so what a check imports is
what it costs. Each check path runs here as keepalived runs it, through
its real console script, against a real local peer, and the modules loaded
by the time it exits must not include the heavy ones it does not need.
"""

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from harness import entrypoints
from harness.checks import REFERENCE
from harness.imports import HEAVY, LDAP3_BRINGS, NEVER, TLS, among
from harness.peers import slapd as ldap_peer
from harness.peers.cli import bin_dir
from harness.peers.rawhttp import RawHTTPServer, http_response
from harness.peers.worker import Worker

# Runs an entry-point script in-process, then writes sorted(sys.modules) to
# argv[1] whatever the exit; the script's own lines (its imports) count too.
# Beside it, in argv[1].gc: how many objects the collector was told to leave
# alone (gc.freeze) and whether it still runs.
GUARD = r"""
import gc
import sys
out, script = sys.argv[1], sys.argv[2]
sys.argv = sys.argv[2:]
try:
    with open(script) as f:
        code = compile(f.read(), script, "exec")
    exec(code, {"__name__": "__main__", "__file__": script})
finally:
    with open(out, "w") as f:
        f.write("\n".join(sorted(sys.modules)))
    with open(out + ".gc", "w") as f:
        f.write(f"{gc.get_freeze_count()} {gc.isenabled()}")
"""

PAGE = b"<html>kachecks import guard</html>\n"


@pytest.fixture(scope="module")
def http_server():
    with RawHTTPServer(http_response(PAGE)) as server:
        yield server


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    from harness.peers.certs import self_signed

    cert, key = self_signed(tmp_path_factory.mktemp("pki"), "127.0.0.1")
    with RawHTTPServer(http_response(PAGE), tls=(str(cert), str(key))) as server:
        yield server


@pytest.fixture(scope="module")
def slapd():
    with ldap_peer.Slapd() as server:
        yield server


@pytest.fixture(scope="module")
def worker_socket(tmp_path_factory):
    """A running `kachecks worker`; its socket path (tests pass it per run)."""
    directory = Path(tempfile.mkdtemp(prefix="kcw-"))  # short: a UNIX socket path
    script = entry_script("kachecks", tmp_path_factory.mktemp("bin"))
    try:
        with Worker([sys.executable, script], directory / "worker.sock") as worker:
            yield worker.socket
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def tcp_listener():
    with RawHTTPServer(b"", read_request=False) as server:
        yield server


def entry_script(name, tmp_path):
    """The installed console script, or (no scripts beside this interpreter, e.g. Debian's
    python3 on the dev tree) the wrapper the .deb installs, made by its own writer."""
    installed = bin_dir() / name
    if installed.exists():
        return installed
    return entrypoints.write(tmp_path / "wrappers") / name


def run_guarded(tmp_path, executable, *args, worker=None):
    """(CompletedProcess, set of module names loaded at exit).

    Without ``worker`` the check runs in-process (tests/conftest.py points
    KACHECKS_WORKER_SOCKET at nothing); with it, it is handed to that worker.
    """
    out = tmp_path / "modules.txt"
    script = entry_script(executable, tmp_path)
    env = dict(os.environ, KACHECKS_WORKER_SOCKET=str(worker)) if worker else None
    done = subprocess.run([sys.executable, "-c", GUARD, str(out), str(script), *map(str, args)],
                          capture_output=True, text=True, timeout=30, env=env)
    assert out.exists(), f"guard wrote nothing; stderr: {done.stderr}"
    return done, set(out.read_text().split())


@functools.lru_cache(maxsize=1)
def interpreter_start():
    """What this interpreter loads before running anything (a venv's .pth hooks
    may import enum or re): not ours to answer for."""
    done = subprocess.run([sys.executable, "-c", "import sys; print(*sys.modules)"],
                          capture_output=True, text=True, timeout=30, check=True)
    return frozenset(done.stdout.split())


def assert_absent(modules, forbidden):
    loaded = among(modules - interpreter_start(), forbidden)
    assert not loaded, f"loaded on a path that does not need them: {loaded}"


def test_tcp_connect_loads_no_tls_and_no_framework(tmp_path, tcp_listener):
    done, modules = run_guarded(tmp_path, "kachecks-tcp", "--host", "127.0.0.1",
                                "--port", tcp_listener.port)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kachecks.checks.tcp" in modules
    assert_absent(modules, HEAVY | TLS)


def test_kachecks_check_tcp_is_dispatched_before_click(tmp_path, tcp_listener):
    done, modules = run_guarded(tmp_path, "kachecks", "check", "tcp", "--host", "127.0.0.1",
                                "--port", tcp_listener.port)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kachecks.checks.tcp" in modules
    assert_absent(modules, HEAVY | TLS)


def test_tcp_refused_port_loads_no_tls_and_no_framework(tmp_path, unused_port):
    done, modules = run_guarded(tmp_path, "kachecks-tcp", "--host", "127.0.0.1",
                                "--port", unused_port)
    assert done.returncode == 1, done.stdout + done.stderr
    assert_absent(modules, HEAVY | TLS)


@pytest.mark.parametrize("executable, args", [
    ("kachecks-tcp", ()),
    ("kachecks", ("check", "tcp")),
])
def test_a_forked_check_leaves_what_it_loaded_out_of_the_collector(tmp_path, tcp_listener,
                                                                   executable, args):
    """Modules and option tables live until exit: a collection would walk them in vain."""
    done, _modules = run_guarded(tmp_path, executable, *args, "--host", "127.0.0.1",
                                 "--port", tcp_listener.port)
    assert done.returncode == 0, done.stdout + done.stderr
    frozen, enabled = (tmp_path / "modules.txt.gc").read_text().split()
    assert int(frozen) > 0  # frozen once the check and the contract were loaded
    assert enabled == "True"  # the run's own garbage is still collected


def test_http_plain_with_digest_loads_no_tls_and_no_framework(tmp_path, http_server):
    import hashlib

    done, modules = run_guarded(tmp_path, "kachecks-http", "--url",
                                f"http://127.0.0.1:{http_server.port}/",
                                "--digest", hashlib.md5(PAGE).hexdigest())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kachecks.checks.http" in modules
    assert_absent(modules, HEAVY | TLS)


def test_http_over_tls_loads_ssl_and_no_framework(tmp_path, tls_server):
    done, modules = run_guarded(tmp_path, "kachecks-http", "--url",
                                f"https://127.0.0.1:{tls_server.port}/")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ssl" in modules  # the TLS path really ran
    assert_absent(modules, HEAVY)


def test_genhash_loads_no_tls_and_no_framework(tmp_path, http_server):
    done, modules = run_guarded(tmp_path, "kachecks", "genhash", "-s", "127.0.0.1",
                                "-p", http_server.port, "-u", "/")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == __import__("hashlib").md5(PAGE).hexdigest()
    assert_absent(modules, HEAVY | TLS)


def ldap_args(server, url=None):
    return ("--uri", url or server.url, *REFERENCE)


def test_ldap_usage_error_loads_no_ldap_library_and_no_tls(tmp_path):
    done, modules = run_guarded(tmp_path, "kachecks-ldap", "--base", ldap_peer.BASE)
    assert done.returncode == 1, done.stdout + done.stderr
    assert_absent(modules, HEAVY | TLS)


# In-process, a search needs ldap3, which brings ssl, logging, dataclasses
# and pyasn1 with it (docs/performance.md): that is what the worker is for.
def test_ldap_search_in_process_loads_ldap3_and_no_framework(tmp_path, slapd):
    done, modules = run_guarded(tmp_path, "kachecks-ldap", *ldap_args(slapd))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ldap3" in modules
    assert_absent(modules, NEVER - LDAP3_BRINGS)


def test_ldap_handed_to_the_worker_loads_neither_ldap3_nor_ssl(tmp_path, slapd, worker_socket):
    done, modules = run_guarded(tmp_path, "kachecks-ldap", *ldap_args(slapd),
                                "--verbose", worker=worker_socket)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "run by kachecks worker" in done.stdout  # the worker really ran it
    assert_absent(modules, HEAVY | TLS)


def test_tls_handed_to_the_worker_loads_no_ssl(tmp_path, tls_server, worker_socket):
    done, modules = run_guarded(tmp_path, "kachecks-http", "--url",
                                f"https://127.0.0.1:{tls_server.port}/", "--verbose",
                                worker=worker_socket)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "run by kachecks worker" in done.stdout
    assert_absent(modules, HEAVY | TLS)


# In the worker, each request runs in a child forked from the preloaded parent:
# a module first imported there is imported again by every child, every run.
IN_WORKER = r"""
import os, sys
from kachecks.worker import server
server.preload()
module, args = sys.argv[1], sys.argv[2:]
before = set(sys.modules)
code = sys.modules[module].main(args)
new = sorted(set(sys.modules) - before)
os.write(2, ("NEW " + " ".join(new) + "\n").encode())
sys.exit(code)
"""


@pytest.mark.parametrize("module", ["kachecks.checks.http", "kachecks.checks.ldap"])
def test_worker_children_import_nothing_the_worker_did_not_preload(module, tls_server, slapd):
    args = (["--url", f"https://127.0.0.1:{tls_server.port}/"] if module.endswith("http")
            else list(ldap_args(slapd, slapd.ldaps_url)))
    done = subprocess.run([sys.executable, "-c", IN_WORKER, module, *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    new = done.stderr.rsplit("NEW ", 1)[1].split()
    assert new == [], f"imported in every worker child: {new}"


def test_the_vrrp_check_loads_no_framework(tmp_path):
    """kachecks-vrrp is a Nagios plugin run every minute: the same budget (on lo, 0.3 s)."""
    from harness.peers.keepalived import vrrp_config

    conf = tmp_path / "keepalived.conf"
    conf.write_text(vrrp_config("lvs1", 100, "192.168.8.142", interface="lo"))
    done, modules = run_guarded(tmp_path, "kachecks-vrrp", "--keepalived-conf", conf,
                                "--listen", "0.3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kachecks.vrrp.watcher" in modules and "kachecks.vrrp.bpf" in modules
    assert_absent(modules, HEAVY | TLS)
