"""Beside a running keepalived: the doctor leaves it alone, and predicts what it does.

keepalived (VRRP only, this kernel has no IPVS) runs in a namespace with a
vrrp_script checking web1's page with kachecks-http. The doctor, run on the
same director with keepalived -t merged, neither disturbs it (same pid, no
reload, still MASTER) nor finds anything; after a content deploy on web1 it
reports the check failing with the check's reason, and keepalived, on its own,
faults the instance for that very reason.
"""

import json
import os

import pytest

from harness.checks import MD5_SERVER1, SERVER1
from harness.peers import cli
from harness.peers.keepalived import Keepalived, secure_dir, secure_executables, vrrp_config
from harness.peers.netns import Network, wait_for

WEB1 = "192.168.8.101"
TRACKED = "    track_script {\n        chk_web1\n    }\n"
SCRIPT = """
vrrp_script chk_web1 {{
    script "{check} --url http://{web}/service.txt --digest {digest} --timeout 2"
    interval 3
}}
"""


@pytest.mark.netns
def test_the_doctor_leaves_keepalived_alone_and_foresees_its_fault(tmp_path):
    bindir, _ = secure_executables(cli.bin_dir(), ["kachecks-http"], tmp_path / "bin")
    site = secure_dir(tmp_path / "www")
    page = site / "service.txt"
    page.write_bytes(SERVER1)
    with Network(f"kcdoc{os.getpid() % 10000}", {"lvs1": "192.168.8.100", "web1": WEB1}) as net:
        net["web1"].start(["python3", "-m", "http.server", "80", "--bind", WEB1, "--directory", site],
                          log=tmp_path / "web.log")
        wait_for(lambda: net["lvs1"].run(["python3", "-c", "import socket; socket.create_connection"
                                          f"(('{WEB1}', 80), 1)"]).returncode == 0, 10, interval=0.1,
                 what="web1")
        config = vrrp_config("lvs1", 100, "192.168.8.142", vrid=51, instance_extra=TRACKED)
        script = SCRIPT.format(check=f"{bindir}/kachecks-http", web=WEB1, digest=MD5_SERVER1)
        config = config.replace("\nvrrp_instance", script + "\nvrrp_instance", 1)  # defined first
        ka = Keepalived(net["lvs1"], tmp_path / "ka", config)
        ka.start()
        script_line = 1 + ka.conf.read_text().splitlines().index(
            f'    script "{bindir}/kachecks-http --url http://{WEB1}/service.txt --digest {MD5_SERVER1}'
            ' --timeout 2"')
        try:
            ka.wait_state("MASTER", "VI_1", timeout=20)
            pid, logged = ka.proc.pid, ka.output()

            def doctor():
                done = net["lvs1"].run([*cli.command("kachecks"), "doctor", "-f", ka.conf, "--json"],
                                       env=dict(os.environ), timeout=60)
                return done.returncode, json.loads(done.stdout), done.stderr

            code, findings, said = doctor()
            assert (code, findings) == (0, []), (said, findings)
            assert "-t exit 0" in said
            assert ka.running() and ka.proc.pid == pid and ka.state("VI_1") == "MASTER"
            assert "Reload" not in ka.output()[len(logged):]

            page.write_bytes(b"hello from Server 1, after a deploy that went wrong\n")
            code, findings, said = doctor()
            [failed] = findings
            assert (code, failed["line"], failed["code"]) == (1, script_line, "check-failed"), said
            assert "md5 mismatch" in failed["message"]
            ka.wait_state("FAULT", "VI_1", timeout=15)  # keepalived agrees, on its own
        finally:
            ka.stop()
