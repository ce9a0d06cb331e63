"""harness.peers.keepalived.dumped: reading keepalived's ``-d`` dump out of its log.

keepalived's parent process logs to the same output as the VRRP process that dumps, and
logs "Startup complete" as soon as that process says it has read its configuration,
just before it dumps it: on a loaded machine the line lands inside the dump. The log
below is keepalived 2.3.3's (Debian 13, under load), trimmed to the lines the reader
uses; the peer listing gets the same interruption.
"""

from harness.peers.keepalived import dumped, dumped_lines

T = "Tue Dec  8 00:19:13 2026: "
LOG = "".join(T + line + "\n" for line in [
    "Startup complete",  # where it lands on an idle machine: before the dump
    "------< VRRP Topology >------",
    " VRRP Instance = pass-without-auth_pass",
    "   VRRP Version = 2",
    "   Wantstate = BACKUP",
    "   Interface = eth0",
    "   Multicast address 224.0.0.18",
    "   Priority = 100",
    "   Advert interval = 1 sec",
    "   Preempt = enabled",
    "   Authentication type = none",
    "   Virtual IP (1):",
    "Startup complete",
    "     192.168.8.142 dev eth0 scope global",
    "   No sockets allocated",
    " VRRP Instance = peer-family",
    "   VRRP Version = 2",
    "   Virtual IP (1):",
    "     192.168.8.142 dev eth0 scope global",
    "   Unicast Peer :",
    "Startup complete",
    "     192.168.8.110 min_ttl 0 max_ttl 255",
    "   Unicast checksum compatibility = no",
    "------< Interfaces >------",
    " Name = eth0",
])


def test_a_line_another_keepalived_process_logs_inside_the_dump_cuts_no_listing():
    dump = dumped(LOG)
    assert sorted(dump) == ["pass-without-auth_pass", "peer-family"]
    first = dump["pass-without-auth_pass"]
    assert (first["vips"], first["peers"], first["priority"], first["auth"]) == (
        ["192.168.8.142"], [], 100, "none")
    assert (dump["peer-family"]["vips"], dump["peer-family"]["peers"]) == (
        ["192.168.8.142"], ["192.168.8.110"])


def test_dumped_lines_shows_one_instance_as_logged_interruptions_included():
    lines = dumped_lines(LOG, "pass-without-auth_pass").splitlines()
    assert lines[0] == T + " VRRP Instance = pass-without-auth_pass"
    assert lines[-1] == T + "   No sockets allocated"
    assert T + "Startup complete" in lines
