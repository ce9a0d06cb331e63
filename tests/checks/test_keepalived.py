"""kachecks-http under the real keepalived: vrrp_script end to end, MISC_CHECK by ``keepalived -t``.

The LVS checker cannot run on this kernel (no IPVS), so MISC_CHECK is covered by
keepalived's own config test of the lines we document plus the exact exit codes
``misc_dynamic`` acts on; vrrp_script runs for real in network namespaces.
"""

import os
import re
import subprocess
import textwrap
from pathlib import Path

import pytest

from harness.checks import MD5_SERVER1, MD5_SERVER2, SERVER1, SERVER2, http
from harness.peers import cli
from harness.peers.keepalived import (KEEPALIVED, SCRIPT_SECURITY, Keepalived, config_test,
                                     secure_dir, secure_executables)
from harness.peers.netns import Network, create_namespace, wait_for
from harness.peers.rawhttp import RawHTTPServer, http_response

WEB1 = "192.168.8.101"
CHECKS = ("kachecks-http", "kachecks-tcp")


@pytest.fixture(scope="module")
def bindir(tmp_path_factory):
    """Where keepalived finds the checks: theirs, or exec wrappers on a path it accepts.

    keepalived refuses scripts on a path that is not root-owned and write-protected
    all the way up (docs/reference.md, "Script security"); a CI checkout may not be.
    """
    directory, _ = secure_executables(cli.bin_dir(), CHECKS, tmp_path_factory.mktemp("bin"))
    return str(directory)


def misc_check_config(groups, security=SCRIPT_SECURITY):
    """The reference deployment's virtual server, one VIP (.100, .101…) per group of real servers."""
    text = "global_defs {\n    router_id lvs1\n" + security + "}\n"
    for vip, real_servers in enumerate(groups, start=100):
        text += (
            f"\nvirtual_server 192.168.8.{vip} 80 {{\n    delay_loop 6\n    lb_algo wlc\n"
            "    lb_kind DR\n    persistence_timeout 120\n    protocol TCP\n\n"
            + textwrap.indent(real_servers, "    ") + "}\n")
    return text


def documented_real_servers(name, bindir):
    """The real_server blocks of ``name --help``, pointed at ``bindir``."""
    text = cli.run(name, "--help").stdout
    conf = text.split("keepalived.conf:\n", 1)[1]
    blocks = re.findall(r"^  real_server .*?^  }\n", conf, re.M | re.S)
    assert blocks, conf
    return textwrap.dedent("".join(blocks)).replace("/usr/bin/", bindir + "/")


def test_documented_misc_check_lines_pass_keepalived_config_test(tmp_path, bindir):
    servers = [documented_real_servers(name, bindir) for name in CHECKS]
    servers.append(
        "real_server 192.168.8.102 80 {\n    weight 1\n    MISC_CHECK {\n"
        f'        misc_path "{bindir}/kachecks-http -s 192.168.8.102 -p 80 -u /service.txt'
        f' --digest {MD5_SERVER2} --digest {MD5_SERVER1} --dynamic --weight 10"\n'
        "        misc_timeout 5\n        misc_dynamic\n    }\n}\n")
    conf = tmp_path / "keepalived.conf"
    conf.write_text(misc_check_config(servers))
    proc = config_test(conf)
    assert proc.returncode == 0, proc.stderr + conf.read_text()
    # the same lines without script security are flagged: keepalived really saw the scripts
    conf.write_text(misc_check_config(servers, security=""))
    assert config_test(conf).returncode == 6


def test_config_test_rejects_a_missing_check_path(tmp_path):
    conf = tmp_path / "keepalived.conf"
    conf.write_text(
        "global_defs {\n" + SCRIPT_SECURITY + "}\n"
        f'vrrp_script chk {{\n    script "{tmp_path}/no-such-check --url http://{WEB1}/"\n}}\n'
        "vrrp_instance VI_1 {\n    state BACKUP\n    interface lo\n    virtual_router_id 50\n"
        "    priority 100\n    virtual_ipaddress {\n        192.168.8.100/32\n    }\n"
        "    track_script {\n        chk\n    }\n}\n")
    assert config_test(conf).returncode == 5


@pytest.mark.parametrize("headers, args, code", [
    ({}, [], 3),                                   # healthy, default weight 1
    ({}, ["--weight", "0"], 2),                    # healthy, weight 0: keepalived keeps it, no traffic
    ({}, ["--weight", "253"], 255),
    ({}, ["--weight", "900"], 255),                # clamped: exit codes stop at 255
    ({"X-Weight": "25%"}, ["--weight", "40", "--weight-header", "X-Weight"], 12),
    ({"X-Weight": "-3"}, ["--weight-header", "X-Weight"], 1),
    ({}, ["--digest", MD5_SERVER2], 1),            # unhealthy is 1, never 2
    ({}, ["--status", "404"], 1),
])
def test_misc_dynamic_exit_codes(headers, args, code):
    with RawHTTPServer(http_response(SERVER1, headers=headers)) as srv:
        proc = http("--url", f"http://{srv.address}/service.txt", "--dynamic", *args)
    assert proc.returncode == code, proc.stdout


VRRP = """\
global_defs {{
    router_id lvs1
{security}}}

vrrp_script chk_web {{
    script "{check} --url http://{web}/service.txt --digest {digest} --timeout 1"
    interval 1
    timeout 2
    fall 1
    rise 1
}}

vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    nopreempt
    virtual_ipaddress {{
        192.168.8.100/32 dev eth0
    }}
    track_script {{
        chk_web
    }}
}}

vrrp_instance VI_2 {{
    state BACKUP
    interface eth0
    virtual_router_id 52
    priority 100
    advert_int 1
    nopreempt
    virtual_ipaddress {{
        192.168.8.200/32 dev eth0
    }}
    track_script {{
        chk_web weight -60
    }}
}}
"""


@pytest.mark.netns
def test_vrrp_script_digest_mismatch_faults_and_lowers_priority_then_recovers(tmp_path, bindir):
    site = secure_dir(tmp_path / "www")
    page = site / "service.txt"
    page.write_bytes(SERVER1)
    with Network(f"kcck{os.getpid() % 10000}", {"lvs1": "192.168.8.1", "web1": WEB1}) as net:
        net["web1"].start(["python3", "-m", "http.server", "80", "--bind", WEB1,
                           "--directory", site], log=tmp_path / "web.log")
        wait_for(lambda: net["lvs1"].run(["python3", "-c", "import socket; socket.create_connection"
                                          f"(('{WEB1}', 80), 1)"]).returncode == 0,
                 10, interval=0.1, what="the backend")
        config = VRRP.format(security=SCRIPT_SECURITY, check=f"{bindir}/kachecks-http",
                             web=WEB1, digest=MD5_SERVER1)
        ka = Keepalived(net["lvs1"], tmp_path / "ka", config).start()
        try:
            ka.wait_state("MASTER", "VI_1", timeout=20)
            ka.wait_state("MASTER", "VI_2", timeout=20)
            page.write_bytes(SERVER2)  # a deploy went wrong: the digest no longer matches
            ka.wait_state("FAULT", "VI_1", timeout=15)
            ka.wait_log(r"\(VI_2\) Changing effective priority from 100 to 40", timeout=15)
            assert ka.state("VI_2") == "MASTER"  # negative weight: lower priority, still up
            page.write_bytes(SERVER1)
            ka.wait_log(r"\(VI_2\) Changing effective priority from 40 to 100", timeout=15)
            ka.wait_state("MASTER", "VI_1", timeout=20)
        finally:
            ka.stop()
        log = ka.output()
    assert "Script `chk_web` now returning 1" in log, log
    assert "VRRP_Script(chk_web) succeeded" in log


def documented_conf_blocks(bindir):
    """The keepalived.conf blocks of docs/checks.md, made whole and pointed at ``bindir``."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "checks.md").read_text()
    blocks = re.findall(r"^```\n(.*?)^```", text, re.M | re.S)
    whole = []
    for block in blocks:
        block = block.replace("/usr/bin/", bindir + "/")
        if block.lstrip().startswith("real_server") or block.startswith("    real_server"):
            block = misc_check_config([textwrap.dedent(block)])
        elif "global_defs" not in block:
            block = "global_defs {\n" + SCRIPT_SECURITY + "}\n" + block
        whole.append(block)
    return whole


@pytest.mark.netns
def test_documented_keepalived_conf_blocks_pass_config_test(tmp_path, bindir):
    blocks = documented_conf_blocks(bindir)
    assert len(blocks) == 3
    ns = create_namespace(f"kcck-conf-{os.getpid()}")
    try:
        ns.ip("link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
        for i, block in enumerate(blocks):
            conf = tmp_path / f"doc{i}.conf"
            conf.write_text(block)
            proc = ns.run([KEEPALIVED, "-t", "-f", conf])
            assert proc.returncode == 0, proc.stderr + block
    finally:
        subprocess.run(["ip", "netns", "del", ns.name], check=False)
