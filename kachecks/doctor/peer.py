"""``kachecks doctor --peer FILE|-`` and ``--what-if``: this director's file beside the other's.

The peer's file is a copy (``scp lvs2:/etc/keepalived/keepalived.conf``) or
standard input (``ssh lvs2 cat /etc/keepalived/keepalived.conf | kachecks
doctor --peer -``), read by kachecks.keepalivedconf with the peer's ``@ID``
(``--peer-id``). Its includes name files on the peer: an absolute one, or any
include read from standard input, is not read here (reading this director's
file of that name would compare the director with itself); a relative one is
read beside the copy. Only the peer's syntax is audited: its scripts and
checks live on the other machine.
"""

import os
import sys

from kachecks import keepalivedconf
from kachecks.doctor import pair, syntax, vrrp, whatif
from kachecks.doctor.audit import ordered
from kachecks.doctor.findings import ERROR, WARNING, noted

STDIN = "-"
LIMIT = keepalivedconf.MAX_FILE_BYTES  # bytes of a peer's file on standard input, as of any file
KNOWN = ("global_defs", "vrrp_instance", "vrrp_script", "vrrp_sync_group", "virtual_server",
         "virtual_server_group", "track_file", "vrrp_track_file", "vrrp_track_process",
         "static_ipaddress", "static_routes", "static_rules", "linkbeat_interfaces",
         "garp_group", "bfd_instance")


class PeerError(keepalivedconf.ReadError):
    """The peer's file cannot be used; one line."""


def read_peer(spec, peer_id=None, stdin=None):
    """The peer's Config: ``spec`` a path or ``-``; PeerError (one line) when unusable."""
    data = None
    if spec == STDIN:
        data = _stdin(stdin if stdin is not None else sys.stdin)
        follow = _from_stdin
    else:
        follow = _absolute
    try:
        config = keepalivedconf.read(spec, peer_id if peer_id is not None else "", data=data, follow=follow)
    except keepalivedconf.ReadError as exc:
        raise PeerError(f"--peer {exc}") from None
    named = {n.keyword for n in config.nodes}
    what = "standard input" if spec == STDIN else spec
    if not named and not config.findings:
        raise PeerError(f"--peer {what}: no configuration in it, nothing to compare")
    if named and not named & set(KNOWN):
        raise PeerError(f"--peer {what}: not a keepalived configuration (no global_defs,"
                        " vrrp_instance or virtual_server in it)")
    ids = sorted(config.conditionals)
    if ids and peer_id is None:
        raise PeerError(f"--peer {spec}: its @ID lines ({', '.join('@' + i for i in ids)}) depend"
                        " on which director reads it: say which one with --peer-id ID")
    return config


def _stdin(stream):
    if stream is None or stream.closed:
        raise PeerError("--peer -: standard input is closed: pipe the peer's configuration in"
                        " (ssh lvs2 cat /etc/keepalived/keepalived.conf | kachecks doctor --peer -)")
    if stream.isatty():
        raise PeerError("--peer -: standard input is a terminal: pipe the peer's configuration in"
                        " (ssh lvs2 cat /etc/keepalived/keepalived.conf | kachecks doctor --peer -)")
    raw = getattr(stream, "buffer", stream)
    data = raw.read(LIMIT + 1)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    if len(data) > LIMIT:
        raise PeerError(f"--peer -: more than {LIMIT} bytes on standard input: not a keepalived"
                        " configuration")
    if not data.strip():
        raise PeerError("--peer -: nothing on standard input: pipe the peer's configuration in"
                        " (ssh lvs2 cat /etc/keepalived/keepalived.conf | kachecks doctor --peer -)")
    return data


def _from_stdin(pattern):
    return ("not read: the peer's included files are on the peer, and standard input holds only"
            " its main file; what they define is not compared (copy the files next to a copy of"
            " the main file and give its path)")


def _absolute(pattern):
    if os.path.isabs(pattern):
        return ("not read: an absolute include names a file on the peer, and reading this"
                " director's would compare it with itself; what it defines is not compared"
                " (include it relatively, beside the copy)")
    return None


def directors(config, peer_config=None):
    """The Director of each file; two of the same name are told apart."""
    mine = vrrp.director(config)
    if peer_config is None:
        return [mine]
    peer = vrrp.director(peer_config, _label(peer_config))
    if peer.name == mine.name:
        peer.name = f"{peer.name} (peer)"
    return [mine, peer]


def _label(config):
    return "standard input" if config.path == STDIN else config.path


def pair_findings(config, peer_config, ds=None, scenarios=None):
    """The peer's syntax findings, the pair codes and the failover warnings."""
    typos, _ = syntax.check(peer_config)
    ds = ds or directors(config, peer_config)
    found = noted(peer_config) + typos + pair.compare(*ds)
    found += whatif.findings(ds, scenarios or whatif.simulate(ds))
    return found


def merged(findings, config, peer_config):
    return ordered(findings, list(config.files) + [f for f in peer_config.files
                                                   if f not in config.files])


def what_if(path, peer_spec, config_id=None, peer_id=None, stdin=None):
    """(directors, scenarios, findings) for ``--what-if``; ReadError when a file cannot be read."""
    config = keepalivedconf.read(path, config_id)
    peer_config = read_peer(peer_spec, peer_id, stdin) if peer_spec is not None else None
    ds = directors(config, peer_config)
    scenarios = whatif.simulate(ds)
    typos, _ = syntax.check(config)
    found = noted(config) + typos
    if peer_config is not None:
        found += pair_findings(config, peer_config, ds, scenarios)
        found = merged(found, config, peer_config)
    else:
        found = ordered(found, config.files)
    return ds, scenarios, found


def counts(findings):
    return (sum(1 for f in findings if f.severity == ERROR),
            sum(1 for f in findings if f.severity == WARNING))
