"""The shipped keepalived.conf passes `keepalived -t`, script security included.

keepalived -t only logs (and does not count) a missing or insecure MISC_CHECK
or notify script, but fails (exit 5) on an insecure vrrp_script. So every
command of the example is also put in a vrrp_script of a second
configuration: keepalived itself then judges their paths
(docs/reference.md, "Script security" and "keepalived -t").
"""

import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.peers.keepalived import KEEPALIVED
from harness.peers.netns import cleanup, create_namespace

EXAMPLE = Path("/usr/share/doc/kachecks/examples/keepalived.conf")
SCRIPT_LINE = re.compile(r'^\s*(?:misc_path|script|notify\w*)\s+"([^"]+)"', re.M)
PREFIX = f"kcdeb{os.getpid()}"
# keepalived -t runs in a namespace of ours holding the interface the configuration names
pytestmark = pytest.mark.netns


@contextmanager
def namespace_with(interface):
    """A network namespace holding a link called ``interface``; deleted after."""
    cleanup(PREFIX)
    try:
        ns = create_namespace(f"{PREFIX}-kt")
        ns.ip("link", "add", interface, "type", "veth", "peer", "name", "peer0")
        yield ns
    finally:
        cleanup(PREFIX)


def config_test(config):
    """``keepalived -t`` on ``config`` in a namespace with the interface it names."""
    interface = re.search(r"^\s*interface\s+(\S+)", config.read_text(), re.M).group(1)
    with namespace_with(interface) as ns:
        return ns.run([KEEPALIVED, "-t", "-f", config], timeout=60)


def tracked_scripts_config(path, commands):
    """A configuration running each of ``commands`` as a tracked vrrp_script, as root."""
    scripts = "".join(f'vrrp_script chk_{i} {{\n    script "{c}"\n}}\n'
                      for i, c in enumerate(commands))
    tracked = "".join(f"        chk_{i}\n" for i in range(len(commands)))
    path.write_text(f"""\
global_defs {{
    enable_script_security
    script_user root
}}
{scripts}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 100
    virtual_ipaddress {{
        192.168.8.142/24 dev eth0
    }}
    track_script {{
{tracked}    }}
}}
""")
    return path


def example_commands():
    return sorted(set(SCRIPT_LINE.findall(EXAMPLE.read_text())))


def test_example_passes_keepalived_config_test(installed):
    done = config_test(EXAMPLE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_example_is_the_reference_deployment(installed):
    text = EXAMPLE.read_text()
    for needle in ("state BACKUP", "nopreempt", "priority 100", "192.168.8.142",
                   "lb_kind DR", "lb_algo wlc", "persistence_timeout 120",
                   "enable_script_security", "script_user root",
                   'notify "/usr/bin/kachecks notify"',
                   "5f2b4547f41470dc3e293e7267461575", "fe020663a9ac3e61b71f6921d423251d",
                   "--base dc=mysite,dc=mydmn,dc=org --filter '(dc=mysite)' "
                   "--expect o=mysite.mydmn.org"):
        assert needle in text, needle


def test_every_example_script_passes_keepalived_script_security(installed, tmp_path):
    commands = example_commands()
    programs = {c.split()[0] for c in commands}
    assert programs == {"/usr/bin/kachecks", "/usr/bin/kachecks-http", "/usr/bin/kachecks-ldap"}
    done = config_test(tracked_scripts_config(tmp_path / "scripts.conf", commands))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Disabling" not in done.stdout + done.stderr


def test_script_security_check_refuses_a_check_in_a_writable_directory(installed, tmp_path):
    unsafe = tmp_path / "unsafe"
    unsafe.mkdir()
    unsafe.chmod(0o777)
    shutil.copy2("/usr/bin/kachecks-http", unsafe / "kachecks-http")
    done = config_test(tracked_scripts_config(tmp_path / "unsafe.conf",
                                              [f"{unsafe}/kachecks-http --help"]))
    assert done.returncode == 5
    assert "insecure" in done.stdout + done.stderr
