"""The keyword table against the installed keepalived: what it accepts, what it rejects.

Every keyword of every block is written once, each followed by a sentinel
keyword keepalived cannot know; keepalived -t must report every sentinel
(so it read each keyword at the right level) and no keyword of its own
release or older. Keywords of later releases must be rejected: the doctor
accepts them (a Debian 13 director runs 2.3.3) and keepalived -t says so.
"""

import re
import subprocess

import pytest

from kachecks.doctor import configtest, keywords

KEEPALIVED = configtest.find()
pytestmark = pytest.mark.skipif(KEEPALIVED is None, reason="keepalived is not installed")
UNKNOWN = re.compile(r"Line (\d+)\) Unknown keyword '([^']*)'")
# Block lines need arguments keepalived accepts.
HEADS = {"vrrp_instance": "vrrp_instance VI_1", "virtual_server": "virtual_server 192.168.8.142 80",
         "real_server": "real_server 192.168.8.101 80", "vrrp_script": "vrrp_script chk",
         "vrrp_sync_group": "vrrp_sync_group G", "track_file": "track_file tf",
         "vrrp_track_file": "vrrp_track_file vtf", "vrrp_track_process": "vrrp_track_process tp",
         "bfd_instance": "bfd_instance b1", "track_group": "track_group tg"}
# Keywords Debian's build leaves out (no iptables/ipset support): the table keeps them.
BUILD_OPTIONS = {"vrrp_ipsets", "vrrp_iptables"}


def release(since):
    """The release tuple of a keyword's ``since`` (None: every release; dev: none yet)."""
    if since is None:
        return (0,)
    return (99,) if since == "dev" else tuple(int(x) for x in since.split("."))


def layout(name, keyword, path, lines, sentinels, value_blocks, installed):
    """Lines for block ``name`` and everything in it, a sentinel after each keyword.

    A block keyword newer than ``installed`` is written without its block:
    keepalived would read an unknown block's content one level too high.
    """
    lines.append(HEADS.get(name, name) + " {")
    for key, inner in keyword.block.items():
        where = (*path, key)
        if inner.block and release(inner.since) <= installed:
            layout(key, inner, where, lines, sentinels, value_blocks, installed)
        elif where in value_blocks:
            lines += [f"{key} {{", "}"]
        else:
            lines.append(f"{key} 1")
        sentinels.append((where, inner, f"zz_sentinel_{len(sentinels)}"))
        lines.append(sentinels[-1][2])
    lines.append("}")


@pytest.mark.parametrize("name", sorted(k for k, v in keywords.root().items() if v.block))
def test_the_installed_keepalived_knows_what_the_table_says_it_knows(tmp_path, name):
    installed = configtest.version(KEEPALIVED)
    value_blocks = set()
    path = tmp_path / "keepalived.conf"
    for _ in range(60):  # each round finds one more keyword that reads a { } block
        lines, sentinels = [], []
        layout(name, keywords.root()[name], (name,), lines, sentinels, value_blocks, installed)
        path.write_text("\n".join(lines) + "\n")
        done = subprocess.run([KEEPALIVED, "-t", "-f", path], capture_output=True, text=True,
                              timeout=60)
        unknown = {word: int(line) for line, word in UNKNOWN.findall(done.stdout + done.stderr)}
        lost = [where for where, _, sentinel in sentinels if sentinel not in unknown]
        if not lost or lost[0] in value_blocks:
            break
        value_blocks.add(lost[0])
    assert not lost, f"keepalived lost its place after {lost[0]}"
    too_new = {where[-1] for where, kw, _ in sentinels if release(kw.since) > installed}
    rejected = {word for word in unknown if not word.startswith("zz_sentinel_")}
    assert rejected - BUILD_OPTIONS == too_new, lines


def test_keywords_are_case_sensitive_for_keepalived_as_for_the_table(tmp_path):
    path = tmp_path / "keepalived.conf"
    path.write_text("vrrp_instance VI_1 {\n    Nopreempt\n    nopreempt\n}\n")
    done = subprocess.run([KEEPALIVED, "-t", "-f", path], capture_output=True, text=True, timeout=60)
    assert UNKNOWN.findall(done.stderr + done.stdout) == [("2", "Nopreempt")]
    table = keywords.root()["vrrp_instance"].block
    assert "nopreempt" in table and "Nopreempt" not in table
