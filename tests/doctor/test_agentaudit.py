"""The doctor audits the agent's side of keepalived.conf: its track files read so that a healthy
check faults (agent-polarity), read but never written (agent-orphan), or a real server's check
tracked with FAULT semantics by the directors (agent-shared-fault), each at its line."""

import os

import pytest

from harness.checks import MD5_SERVER1, MD5_SERVER2
from harness.config import toml_text
from harness.peers import cli
from harness.peers.agent import conf_parts
from harness.peers.keepalived import secure_dir

WEB1, WEB2, GATEWAY = "192.168.8.101", "192.168.8.102", "192.168.8.1"
CHECKS = {
    "web1": f"kachecks-http --url http://{WEB1}/service.txt --digest {MD5_SERVER1}",
    "web2": f"kachecks-http --url http://{WEB2}/service.txt --digest {MD5_SERVER2}",
    "ldap1": f"kachecks-ldap --uri ldap://{WEB1} --base dc=mysite,dc=mydmn,dc=org",
    "uplink": f"kachecks-tcp {GATEWAY}:53",  # the director's own way out: not a real server
}


@pytest.fixture
def agent_toml(tmp_path):
    """agent_toml(*names) -> the path of a kachecks.toml whose [[check]]s are ``names``."""
    def make(*names, extra=None):
        track = tmp_path / "track"
        track.mkdir(exist_ok=True)
        sections = {"agent": {"track_dir": str(track)},
                    "check": [{"name": name, "command": CHECKS[name]} for name in names]}
        path = tmp_path / "kachecks.toml"
        path.write_text(toml_text(sections) + (extra or ""))
        return path
    return make


def keepalived_conf(tmp_path, tracks, instance="", real_server_80="", real_server_389="",
                    sync_group=""):
    """The reference keepalived.conf (lvs1) with track_file blocks ``tracks``
    {name: "weight …" or None}, and lines added inside VI_1 and the real servers."""
    track = tmp_path / "track"
    lines = ["global_defs {", "    router_id lvs1", "}", ""]
    for name, weight in tracks.items():
        lines += [f"track_file {name} {{", f"    file {track / name}"]
        lines += [f"    {weight}"] if weight else []
        lines += ["    init_file 0", "}", ""]
    lines += ["vrrp_instance VI_1 {", "    state BACKUP", "    interface eth0",
              "    virtual_router_id 50", "    priority 100", "    advert_int 1",
              "    virtual_ipaddress {", "        192.168.8.142/24 dev eth0", "    }",
              *instance.splitlines(), "}", ""]
    if sync_group:
        lines += ["vrrp_sync_group G1 {", "    group {", "        VI_1", "    }",
                  *sync_group.splitlines(), "}", ""]
    lines += ["virtual_server 192.168.8.142 80 {", "    delay_loop 4", "    lb_algo wlc",
              "    lb_kind DR", "    protocol TCP",
              f"    real_server {WEB1} 80 {{", "        weight 1", *real_server_80.splitlines(),
              "    }", "}", "",
              "virtual_server 192.168.8.142 389 {", "    delay_loop 4", "    lb_algo wlc",
              "    lb_kind DR", "    protocol TCP",
              f"    real_server {WEB1} 389 {{", "        weight 1", *real_server_389.splitlines(),
              "    }", "}"]
    path = tmp_path / "keepalived.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def line_of(path, text, nth=1):
    """The number of the ``nth`` line of ``path`` that holds ``text``."""
    numbers = [n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    return numbers[nth - 1]


def agent_findings(run):
    return [(f["line"], f["severity"], f["code"], f["message"]) for f in run.findings
            if f["code"].startswith("agent-")]


def audit(doctor, conf, toml, *args):
    run = doctor("--no-run", "-f", conf, "--agent-config", toml, *args)
    assert "Traceback" not in run.stderr, run
    return run


def test_weight_0_without_reverse_faults_while_the_check_is_up(doctor, tmp_path, agent_toml):
    toml = agent_toml("web1", "uplink")
    conf = keepalived_conf(tmp_path, {"uplink": "weight 0"},
                           instance="    track_file {\n        uplink\n    }")
    run = audit(doctor, conf, toml)
    [(line, severity, code, message)] = agent_findings(run)
    assert (line, severity, code) == (line_of(conf, "        uplink"), "error", "agent-polarity")
    assert message == (
        "track_file uplink (kachecks agent check uplink writes 1 while up, 0 while down or"
        " stopped) is read here with weight 0 (from track_file uplink, keepalived.conf:7):"
        " keepalived puts vrrp_instance VI_1 in FAULT while the check is up, and takes it out"
        " of FAULT while the check is down; write `uplink weight 0 reverse` (FAULT while it is"
        " down) or a positive weight (`uplink weight 20 noreverse`: 20 more while it is up)")
    assert run.code == 1


@pytest.mark.parametrize("where,use,fix", [
    ("instance", "uplink weight -20", "write `uplink weight 20 noreverse`"),
    ("instance", "uplink weight 20 reverse", "write `uplink weight 20 noreverse`"),
    ("real_server", "FILE_CHECK {\n    track_file web1\n}",
     "write `weight 0 reverse` in the track_file block"),
    ("real_server", "FILE_CHECK {\n    track_file web1\n    weight -5\n}",
     "write `weight 5 noreverse` in this FILE_CHECK"),
])
def test_every_form_where_a_healthy_1_lowers_or_faults_is_agent_polarity(doctor, tmp_path, agent_toml,
                                                                          where, use, fix):
    toml = agent_toml("web1", "uplink")
    tracks = {"web1": "weight 0", "uplink": None}  # uplink: keepalived's default, weight 1
    if where == "instance":
        conf = keepalived_conf(tmp_path, tracks, instance=f"    track_file {{\n        {use}\n    }}")
        at = line_of(conf, use)
    else:
        conf = keepalived_conf(tmp_path, tracks, real_server_80=use)
        at = line_of(conf, "track_file web1", 2)
    [(line, severity, code, message)] = agent_findings(audit(doctor, conf, toml))
    assert (line, severity, code) == (at, "error", "agent-polarity")
    assert fix in message


def test_the_blocks_agent_conf_prints_pass(doctor, tmp_path, agent_toml):
    """`kachecks agent conf`'s every part, pasted as its headings say, with director checks
    (weighted, and with vrrp_weight = 0) and the agent's own running file: nothing to say."""
    director = "".join(f'[[check]]\nname = "{name}"\ncommand = "{command}"\ndirector = true\n'
                       f"{weight}\n" for name, command, weight in (
                           ("uplink", CHECKS["uplink"], "vrrp_weight = 0"),
                           ("web1-path", CHECKS["web1"], "")))
    toml = agent_toml("web1", "ldap1", extra=director)
    printed = cli.run("kachecks", "agent", "conf", "--config", toml)
    assert printed.returncode == 0, printed
    parts = conf_parts(printed.stdout)
    assert "web1-path weight 20 noreverse" in parts["instance"]
    assert "        uplink\n" in parts["instance"]
    web1 = parts["virtual_server"].split(f"real_server {WEB1} 80 {{\n")[1].split("\n    }\n")[0]
    ldap1 = parts["virtual_server"].split(f"real_server {WEB1} 389 {{\n")[1].split("\n    }\n")[0]
    conf = keepalived_conf(tmp_path, {}, instance=parts["instance"],
                           real_server_80=web1.split("\n", 1)[1],
                           real_server_389=ldap1.split("\n", 1)[1])
    conf.write_text(conf.read_text().replace("vrrp_instance", parts["top"] + "\nvrrp_instance", 1))
    run = audit(doctor, conf, toml)
    text = conf.read_text()
    assert "FILE_CHECK" in text and "kachecks_running" in text and "track_process" in text
    assert agent_findings(run) == [], run
    assert run.code == 0, run


def test_a_track_file_no_check_writes_is_agent_orphan(doctor, tmp_path, agent_toml):
    toml = agent_toml("web1", "web2")
    conf = keepalived_conf(tmp_path, {"web3": "weight 0 reverse", "wbe2": "weight 0 reverse"},
                           real_server_80="FILE_CHECK {\n    track_file web3\n}\n"
                                          "FILE_CHECK {\n    track_file wbe2\n}")
    found = agent_findings(audit(doctor, conf, toml))
    track = tmp_path / "track"
    assert [(line, severity, code) for line, severity, code, _ in found] == [
        (line_of(conf, f"file {track / 'web3'}"), "error", "agent-orphan"),
        (line_of(conf, f"file {track / 'wbe2'}"), "error", "agent-orphan")]
    assert found[0][3] == (
        f"track_file web3: {track / 'web3'} is in the agent's track directory ({track}) but no"
        f" [[check]] of {toml} writes it: keepalived reads a missing or foreign file as 0 for"
        " ever: FAULT under weight 0 reverse, a real server that never comes up under"
        f" FILE_CHECK; add a [[check]] named 'web3' to {toml}, or correct the path"
        f" (did you mean {track / 'web2'}?)")
    assert found[1][3].endswith(f"or correct the path (did you mean {track / 'web2'}?)")


def test_an_orphan_nothing_tracks_yet_is_a_warning(doctor, tmp_path, agent_toml):
    toml = agent_toml("web1")
    conf = keepalived_conf(tmp_path, {"web9": "weight 0 reverse"})
    [(line, severity, code, message)] = agent_findings(audit(doctor, conf, toml))
    assert (severity, code) == ("warning", "agent-orphan") and "tracked nowhere yet" in message


def test_the_agent_s_status_document_is_no_track_file(doctor, tmp_path, agent_toml):
    toml = agent_toml("web1")
    conf = keepalived_conf(tmp_path, {".kachecks-agent.json": "weight 0 reverse"},
                           instance="    track_file {\n        .kachecks-agent.json\n    }")
    [(_, severity, code, message)] = agent_findings(audit(doctor, conf, toml))
    assert (severity, code) == ("error", "agent-orphan")
    assert "it is the agent's status document, not a track file" in message


@pytest.mark.parametrize("how", ["file_check", "address", "sync_group"])
def test_a_real_server_s_check_tracked_with_weight_0_is_agent_shared_fault(doctor, tmp_path,
                                                                           agent_toml, how):
    """What `agent conf` suggested (issue 26): one failed web server, both directors FAULT."""
    toml = agent_toml("web1", "ldap1", "uplink")
    tracks = {"web1": "weight 0 reverse", "ldap1": "weight 0 reverse",
              "uplink": "weight 0 reverse"}
    tracked = "web1" if how == "file_check" else "ldap1"
    block = f"    track_file {{\n        {tracked}\n        uplink\n    }}"
    conf = keepalived_conf(
        tmp_path, tracks, instance=block if how != "sync_group" else "",
        sync_group=block if how == "sync_group" else "",
        real_server_80="FILE_CHECK {\n    track_file web1\n}" if how == "file_check" else "")
    [(line, severity, code, message)] = agent_findings(audit(doctor, conf, toml))
    assert (line, severity, code) == (line_of(conf, f"        {tracked}"), "error",
                                      "agent-shared-fault")
    owner = "vrrp_sync_group G1" if how == "sync_group" else "vrrp_instance VI_1"
    why = (f"real server {WEB1} reads the same file in its FILE_CHECK, keepalived.conf:"
           f"{line_of(conf, 'track_file web1', 2)}" if how == "file_check" else
           f"its target [{WEB1}]:389 is real server {WEB1}, keepalived.conf:"
           f"{line_of(conf, f'real_server {WEB1} 389')}")
    assert message == (
        f"{owner} tracks {tracked} with weight 0 reverse (from track_file {tracked},"
        f" keepalived.conf:{line_of(conf, f'track_file {tracked} {{') + 2}): FAULT while the"
        f" check is down. But kachecks agent check {tracked} checks a real server ({why}), and"
        " the other director tracks the same server: its one failure puts both directors in"
        " FAULT and the VIP on neither. Leave real servers to their FILE_CHECK, or track it with"
        f" a weight (`{tracked} weight 20 noreverse`): a failure both directors see then costs"
        " both the same, and the VIP stays up")


def test_a_real_server_s_check_tracked_with_a_weight_moves_the_vip_and_passes(doctor, tmp_path,
                                                                              agent_toml):
    toml = agent_toml("web1")
    conf = keepalived_conf(tmp_path, {"web1": "weight 0 reverse"},
                           instance="    track_file {\n        web1 weight 20 noreverse\n    }",
                           real_server_80="FILE_CHECK {\n    track_file web1\n}")
    assert agent_findings(audit(doctor, conf, toml)) == []


def test_track_files_of_other_tools_are_not_the_agent_s(doctor, tmp_path, agent_toml):
    toml = agent_toml("web1")
    conf = keepalived_conf(tmp_path, {})
    other = tmp_path / "other" / "maintenance"
    conf.write_text(f"track_file maintenance {{\n    file {other}\n    weight 0\n}}\n"
                    + conf.read_text().replace("    advert_int 1\n", "    advert_int 1\n"
                                               "    track_file {\n        maintenance\n    }\n"))
    assert agent_findings(audit(doctor, conf, toml)) == []


def test_without_track_files_the_agent_s_configuration_is_not_read(doctor, tmp_path):
    broken = tmp_path / "kachecks.toml"
    broken.write_text("[agent]\ntrack_dir = 5\n")
    conf = keepalived_conf(tmp_path, {})
    run = audit(doctor, conf, broken)
    assert run.findings == [] and run.code == 0, run


def test_an_agent_configuration_the_agent_refuses_is_agent_config(doctor, tmp_path, agent_toml):
    toml = agent_toml("web1", extra="[[check]]\nname = \"web2\"\ncommand = \"kachecks-http"
                                    " --digest 5f2b\"\n")
    conf = keepalived_conf(tmp_path, {"web1": "weight 0 reverse"})
    [(line, severity, code, message)] = agent_findings(audit(doctor, conf, toml))
    assert (line, severity, code) == (None, "error", "agent-config")
    assert message.startswith(f"{toml}: check 'web2': command: ")
    assert message.endswith("the agent refuses this configuration (kachecks agent --check-config),"
                            " and the doctor cannot audit its track files")


def test_the_agent_s_configuration_is_found_as_the_agent_finds_it(doctor, tmp_path, agent_toml,
                                                                  monkeypatch):
    toml = agent_toml("uplink")
    conf = keepalived_conf(tmp_path, {"uplink": "weight 0"},
                           instance="    track_file {\n        uplink\n    }")
    monkeypatch.setenv("KACHECKS_CONFIG", str(toml))
    run = doctor("--no-run", "-f", conf)
    assert [code for _, _, code, _ in agent_findings(run)] == ["agent-polarity"], run
    monkeypatch.setenv("KACHECKS_CONFIG", str(tmp_path / "missing.toml"))
    run = doctor("--no-run", "-f", conf)
    assert [code for _, _, code, _ in agent_findings(run)] == ["agent-config"], run
    assert "missing.toml: configuration file not found" in run.findings[0]["message"]


def test_an_agent_configuration_this_user_cannot_read_is_a_warning(doctor, tmp_path, agent_toml,
                                                                   other_user):
    secure_dir(tmp_path)
    toml = agent_toml("web1")
    os.chmod(toml, 0o600)
    conf = keepalived_conf(tmp_path, {"web1": "weight 0 reverse"})
    os.chmod(conf, 0o644)  # nobody reads it whatever the umask: only the agent's file is closed
    run = doctor("--no-run", "-f", conf, "--agent-config", toml,
                 prefix=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
    assert len(agent_findings(run)) == 1, run
    [(line, severity, code, message)] = agent_findings(run)
    assert (line, severity, code) == (None, "warning", "agent-config"), run
    assert message.endswith("the agent's side of the track files is not audited; run the doctor"
                            " as root")
