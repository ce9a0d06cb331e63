"""vrrp_instance lines that keepalived does not take as written, and what it settles them to.

Where the doctor's and the pair watcher's readings of an instance once differed, or
either differed from keepalived, keepalived's code decided (the rules:
docs/reference.md, "A vrrp_instance as keepalived settles it"). Each case is (id, the
lines inside the block,
{field of kachecks.vrrp.instances.Instance: the settled value}); tests/vrrp checks the
model against the values, and against keepalived's own dump of the same blocks
(``keepalived -d``) in a namespace, with the installed release.
"""

import hashlib

VIP = "virtual_ipaddress {\n        192.168.8.142\n    }"


def _auth(kind, password=None):
    line = f"        auth_pass {password}\n" if password is not None else ""
    return f"authentication {{\n        auth_type {kind}\n{line}    }}"


def _digest(password):
    """What kachecks.vrrp.wire.pass_digest gives for ``password`` (computed here: the
    harness does not reuse the code it checks)."""
    return hashlib.sha256(password[:8].ljust(8, b"\0")).digest()


def _packed(*octets):
    return bytes(octets)


CASES = [
    # "Authentication specified but no password given. Ignoring"
    ("pass-without-auth_pass", [_auth("PASS"), VIP],
     {"auth_type": "none", "auth_digest": None, "auth_ignored": "without auth_pass"}),
    # "Strict mode does not support authentication. Ignoring"
    ("strict-mode-auth", ["strict_mode on", _auth("PASS", "secret"), VIP],
     {"auth_type": "none", "auth_digest": None, "auth_ignored": "under strict mode"}),
    # auth_type is PASS or AH, spelt so: anything else is "unknown authentication type"
    ("auth_type-spelling", [_auth("pass", "secret"), VIP], {"auth_type": "none"}),
    # "Truncating auth_pass to 8 characters"
    ("auth_pass-8-bytes", [_auth("PASS", "0123456789"), VIP],
     {"auth_type": "pass", "auth_digest": _digest(b"01234567")}),
    # the first valid `version` stays ("conflicts with configured or deduced version")
    ("first-version", ["version 2", "version 3", VIP], {"version": 2}),
    # `version 2` above the first IPv6 address: VRRPv2 over IPv6
    ("v2-over-ipv6", ["version 2", "virtual_ipaddress {\n        2001:db8::142\n    }"],
     {"family": 6, "version": 2}),
    # below it, ignored: IPv6 is VRRPv3
    ("v3-for-ipv6", ["virtual_ipaddress {\n        2001:db8::143\n    }", "version 2"],
     {"family": 6, "version": 3}),
    # VRRPv2 rounds advert_int to whole seconds (half up, never 0); v3 to centiseconds
    ("v2-advert_int-1.5", ["advert_int 1.5", VIP], {"advert_int": 2.0}),
    ("v2-advert_int-0.4", ["advert_int 0.4", VIP], {"advert_int": 1.0}),
    ("v3-advert_int-cs", ["version 3", "advert_int 0.125", VIP], {"advert_int": 0.13}),
    ("v3-advert_int-max", ["version 3", "advert_int 41", VIP], {"advert_int": 40.95}),
    # values keepalived rejects: advert_int stays 1, priority falls back to 100
    ("advert_int-out-of-range", ["advert_int 300", VIP], {"advert_int": 1.0}),
    ("priority-0", ["priority 0", VIP], {"priority": 100}),
    # every virtual_ipaddress block counts; an address of the other family is skipped
    ("vip-blocks-and-family",
     ["virtual_ipaddress {\n        192.168.8.144\n        2001:db8::144\n    }",
      "virtual_ipaddress {\n        192.168.8.145\n    }"],
     {"addresses": (_packed(192, 168, 8, 144), _packed(192, 168, 8, 145))}),
    # a unicast peer of the other family is skipped
    ("peer-family", ["unicast_src_ip 192.168.8.100",
                     "unicast_peer {\n        2001:db8::110\n        192.168.8.110\n    }", VIP],
     {"unicast_peers": (_packed(192, 168, 8, 110),)}),
    # with unicast peers, mcast_dst_ip is ignored ("multicast destination specified with unicast")
    ("mcast_dst_ip-with-unicast",
     ["mcast_dst_ip 224.0.0.19", "unicast_peer {\n        192.168.8.110\n    }", VIP],
     {"group": _packed(224, 0, 0, 18)}),
    ("mcast_dst_ip", ["mcast_dst_ip 224.0.0.19", VIP], {"group": _packed(224, 0, 0, 19)}),
    # priority 255 without a state line starts as MASTER, which clears preempt_delay
    ("owner-is-master", ["priority 255", "preempt_delay 5", VIP],
     {"state": "MASTER", "preempt_delay": 0.0}),
    # a state other than MASTER or BACKUP is BACKUP, even after MASTER
    ("unknown-state", ["state MASTER", "state master", "priority 100", VIP], {"state": "BACKUP"}),
    # nopreempt and state MASTER: "nopreempt will not work with initial state MASTER - clearing"
    ("master-clears-nopreempt", ["state MASTER", "priority 100", "nopreempt", VIP],
     {"state": "MASTER", "nopreempt": False}),
]


def instance(name, vrid, lines, interface="eth0"):
    """One vrrp_instance block of ``lines``."""
    return (f"vrrp_instance {name} {{\n    interface {interface}\n    virtual_router_id {vrid}\n"
            + "".join(f"    {line}\n" for line in lines) + "}\n")


def config(cases=CASES, first_vrid=1):
    """Every case as an instance of one keepalived.conf, named by its id, a VRID each."""
    return "".join(instance(case_id, first_vrid + i, lines)
                   for i, (case_id, lines, _) in enumerate(cases))
