"""The start-up budget cannot silently regress (issue 8, SPEC §1).

keepalived forks every check each delay_loop, so what a check imports is
what it costs. Each check path runs here as keepalived runs it, through
its real console script, against a real local peer, and the modules loaded
by the time it exits must not include the heavy ones it does not need.
"""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support.cli import bin_dir
from tests.support.rawhttp import RawHTTPServer, http_response

# Never on a check path: each costs milliseconds of CPU per fork or is a
# sign that a heavy framework came along (importlib.metadata: entry points
# resolved at run time; pkg_resources: the old setuptools wrappers).
ALWAYS_FORBIDDEN = (
    "click", "requests", "urllib3", "asyncio", "logging", "importlib.metadata",
    "pkg_resources", "dataclasses", "typing", "argparse", "email", "http.client",
)
LDAP_CLIENTS = ("ldap3",)
TLS = ("ssl",)

# Runs an entry-point script in-process, then writes sorted(sys.modules) to
# argv[1] whatever the exit; the script's own lines (its imports) count too.
GUARD = r"""
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
"""

PAGE = b"<html>kachecks import guard</html>\n"


@pytest.fixture(scope="module")
def http_server():
    with RawHTTPServer(http_response(PAGE)) as server:
        yield server


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    from tests.support.certs import self_signed

    cert, key = self_signed(tmp_path_factory.mktemp("pki"), "127.0.0.1")
    with RawHTTPServer(http_response(PAGE), tls=(str(cert), str(key))) as server:
        yield server


@pytest.fixture(scope="module")
def tcp_listener():
    with RawHTTPServer(b"", read_request=False) as server:
        yield server


def entry_script(name, tmp_path):
    """The installed console script, or (no scripts beside this interpreter, e.g. Debian's
    python3 on the dev tree) the wrapper the .deb installs, made from pyproject.toml."""
    installed = bin_dir() / name
    if installed.exists():
        return installed
    with open(Path(__file__).parents[2] / "pyproject.toml", "rb") as handle:
        module, _, attr = tomllib.load(handle)["project"]["scripts"][name].partition(":")
    wrapper = tmp_path / name
    wrapper.write_text(f"import sys\n\nfrom {module} import {attr}\n\nsys.exit({attr}())\n")
    return wrapper


def run_guarded(tmp_path, executable, *args):
    """(CompletedProcess, set of module names loaded at exit)."""
    out = tmp_path / "modules.txt"
    script = entry_script(executable, tmp_path)
    done = subprocess.run([sys.executable, "-c", GUARD, str(out), str(script), *map(str, args)],
                          capture_output=True, text=True, timeout=30)
    assert out.exists(), f"guard wrote nothing; stderr: {done.stderr}"
    return done, set(out.read_text().split())


def assert_absent(modules, forbidden):
    loaded = sorted(name for name in modules
                    if name in forbidden or name.split(".")[0] in forbidden)
    assert not loaded, f"loaded on a path that does not need them: {loaded}"


def test_tcp_connect_loads_no_tls_and_no_framework(tmp_path, tcp_listener):
    done, modules = run_guarded(tmp_path, "kachecks-tcp", "--host", "127.0.0.1",
                                "--port", tcp_listener.port)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kachecks.checks.tcp" in modules
    assert_absent(modules, ALWAYS_FORBIDDEN + LDAP_CLIENTS + TLS)


def test_kachecks_check_tcp_is_dispatched_before_click(tmp_path, tcp_listener):
    done, modules = run_guarded(tmp_path, "kachecks", "check", "tcp", "--host", "127.0.0.1",
                                "--port", tcp_listener.port)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kachecks.checks.tcp" in modules
    assert_absent(modules, ALWAYS_FORBIDDEN + LDAP_CLIENTS + TLS)


def test_tcp_refused_port_loads_no_tls_and_no_framework(tmp_path, unused_port):
    done, modules = run_guarded(tmp_path, "kachecks-tcp", "--host", "127.0.0.1",
                                "--port", unused_port)
    assert done.returncode == 1, done.stdout + done.stderr
    assert_absent(modules, ALWAYS_FORBIDDEN + LDAP_CLIENTS + TLS)


def test_http_plain_with_digest_loads_no_tls_and_no_framework(tmp_path, http_server):
    import hashlib

    done, modules = run_guarded(tmp_path, "kachecks-http", "--url",
                                f"http://127.0.0.1:{http_server.port}/",
                                "--digest", hashlib.md5(PAGE).hexdigest())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kachecks.checks.http" in modules
    assert_absent(modules, ALWAYS_FORBIDDEN + LDAP_CLIENTS + TLS)


def test_http_over_tls_loads_ssl_but_no_framework(tmp_path, tls_server):
    done, modules = run_guarded(tmp_path, "kachecks-http", "--url",
                                f"https://127.0.0.1:{tls_server.port}/")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "_ssl" in modules  # the TLS path really ran
    assert_absent(modules, ALWAYS_FORBIDDEN + LDAP_CLIENTS)


def test_genhash_loads_no_tls_and_no_framework(tmp_path, http_server):
    done, modules = run_guarded(tmp_path, "kachecks", "genhash", "-s", "127.0.0.1",
                                "-p", http_server.port, "-u", "/")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == __import__("hashlib").md5(PAGE).hexdigest()
    assert_absent(modules, ALWAYS_FORBIDDEN + LDAP_CLIENTS + TLS)
