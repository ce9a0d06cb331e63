"""The real keepalived: two directors (lvs1, lvs2) in namespaces, mails for every transition.

Each director reports through both paths keepalived offers: the generic
``notify "…kachecks notify"`` and ``vrrp_notify_fifo`` + ``vrrp_notify_fifo_script
"…kachecks fifo"``. Each path has its own config and spool (and a subject
prefix saying which), so each must produce the full, ordered story by itself:
BACKUP at startup, MASTER, and STOP when keepalived is stopped.
"""

import mailbox
import os
import shlex
import sys
from pathlib import Path

import pytest

from harness.config import toml_text
from harness.peers.cli import command
from harness.peers.keepalived import Keepalived, secure_dir, vrrp_config, write_script
from harness.peers.netns import Network, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.slow]

PREFIX = "kcnt"
HOSTS = {"lvs1": "192.168.8.1", "lvs2": "192.168.8.2", "mail": "192.168.8.25"}
VIP = "192.168.8.100"
PRIORITY = {"lvs1": 100, "lvs2": 50}


@pytest.fixture
def lab(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the keepalived end-to-end test needs root (network namespaces)")
    with Network(PREFIX, HOSTS) as net:
        yield net


def wrapper(directory):
    """keepalived runs scripts as root only from root-owned, 0755 paths
    (docs/reference.md, "Script security")."""
    kachecks = shlex.join(command("kachecks"))
    return write_script(Path(directory) / "kachecks",
                        f'#!/bin/sh\nexec {kachecks} "$@"\n')


def director_config(name, workdir, mbox_port, script):
    """keepalived.conf plus one kachecks config (and spool) per notification path."""
    for path in ("notify", "fifo"):
        (workdir / f"{path}.toml").write_text(toml_text({
            "smtp": {"host": HOSTS["mail"], "port": mbox_port, "security": "none", "timeout": 5,
                     "helo": f"{name}.example.org"},
            "mail": {"from": f"kachecks@{name}.example.org", "to": ["admin@example.org"],
                     "subject": f"[{name} {path}] {{name}}: {{previous}} -> {{state}}{{prio}}"},
            "spool": {"dir": str(workdir / f"spool-{path}"), "batch_window": 0.5, "retry_for": "60s"},
        }))
    return vrrp_config(
        name, PRIORITY[name], VIP, peers=[a for h, a in HOSTS.items() if h not in (name, "mail")],
        global_extra=(f"    vrrp_notify_fifo {workdir / 'vrrp.fifo'}\n"
                      f"    vrrp_notify_fifo_script \"{script} fifo --config {workdir / 'fifo.toml'}\"\n"),
        instance_extra=f"    notify \"{script} notify --config {workdir / 'notify.toml'}\"\n",
    )


def subjects(mbox_path):
    if not mbox_path.exists():
        return []
    return [msg["Subject"] for msg in mailbox.mbox(str(mbox_path))]


def test_failover_and_shutdown_mail_every_transition_in_order_from_both_paths(lab, tmp_path):
    base = secure_dir(tmp_path / "e2e")
    script = wrapper(secure_dir(base / "bin"))
    mbox_path = base / "mail.mbox"
    port = 2525
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    lab["mail"].start([sys.executable, "-m", "harness.peers.smtp", "--host", HOSTS["mail"],
                       "--port", port, "--mbox", mbox_path], log=base / "smtp.log", env=env,
                      cwd=Path(__file__).resolve().parents[2])
    wait_for(lambda: "SMTP sink on" in (base / "smtp.log").read_text(), 20, what="the SMTP sink")

    directors = {}
    for name in ("lvs1", "lvs2"):
        workdir = secure_dir(base / name)
        directors[name] = Keepalived(lab[name], workdir, director_config(name, workdir, port, script))
    def mailed(name, transition):
        want = {f"[{name} {path}] VI_1: {transition} (prio {PRIORITY[name]})" for path in ("notify", "fifo")}
        wait_for(lambda: want <= set(subjects(mbox_path)), 30, what=f"{name} {transition} mails")

    directors["lvs1"].start()
    directors["lvs1"].wait_state("MASTER", timeout=20)
    mailed("lvs1", "BACKUP -> MASTER")
    directors["lvs2"].start()
    directors["lvs2"].wait_state("BACKUP", timeout=20)
    mailed("lvs2", "UNKNOWN -> BACKUP")

    directors["lvs1"].stop()                       # forced failover: lvs1 STOPs, lvs2 takes over
    directors["lvs2"].wait_state("MASTER", timeout=20)
    mailed("lvs2", "BACKUP -> MASTER")
    directors["lvs2"].stop()

    story = {"lvs1": ["VI_1: UNKNOWN -> BACKUP (prio 100)", "VI_1: BACKUP -> MASTER (prio 100)",
                      "VI_1: MASTER -> STOP (prio 100)"],
             "lvs2": ["VI_1: UNKNOWN -> BACKUP (prio 50)", "VI_1: BACKUP -> MASTER (prio 50)",
                      "VI_1: MASTER -> STOP (prio 50)"]}
    wanted = sum(len(s) for s in story.values()) * 2
    try:
        wait_for(lambda: len(subjects(mbox_path)) >= wanted, 60, what=f"{wanted} mails")
    finally:
        got = subjects(mbox_path)
        for name, director in directors.items():
            print(f"--- {name} keepalived.log\n{director.output()[-3000:]}")
        print("--- mails\n" + "\n".join(got))
    for name in ("lvs1", "lvs2"):
        for path in ("notify", "fifo"):
            prefix = f"[{name} {path}] "
            mine = [s[len(prefix):] for s in got if s.startswith(prefix)]
            assert mine == story[name], (name, path, got)
    assert len(got) == wanted
    for director in directors.values():  # scripts were run, not silently disabled
        assert "Unsafe permissions" not in director.output()
        assert "SECURITY VIOLATION" not in director.output()
