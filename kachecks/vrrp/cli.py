"""``kachecks vrrp watch``: tcpdump for VRRP, decoded, with the pair watcher's problems.

One line per advert seen on the wire, a line when a problem starts or ends
(the rules of kachecks-vrrp, watched continuously), ``--json`` for one
object a line; ``--count N`` stops after N adverts; Ctrl-C (or SIGTERM)
ends it cleanly with a summary on stderr, exit 0.
"""

import json
import signal
import sys
import time

import click

from kachecks.clickcommand import CONTEXT, Command, Duration, Group
from kachecks.errors import UsageError
from kachecks.status import ExitCode
from kachecks.vrrp.instances import DEFAULT_CONFIG

PROG = "kachecks vrrp watch"


class Stopped(Exception):
    """SIGINT, SIGTERM or SIGHUP: the watch ends here, cleanly."""


@click.group(name="vrrp", cls=Group, context_settings=CONTEXT,
             short_help="Watch the VRRP pair on the wire (decoded adverts, problems).",
             epilog="""\b
Examples:
  kachecks vrrp watch                       # every instance of keepalived.conf
  kachecks vrrp watch --json --count 10
  kachecks-vrrp                             # the same judgement, once, as a check""")
def vrrp():
    """The VRRP pair seen on the wire.

    The check is kachecks-vrrp (also kachecks check vrrp); `watch` shows the
    adverts as they come and the problems as they start and end.
    """


@vrrp.command(name="watch", cls=Command, context_settings=CONTEXT,
              short_help="Decoded VRRP adverts, one a line, and problems as they start and end.",
              epilog="""\b
Examples (reference deployment, on lvs2):
  kachecks vrrp watch
  kachecks vrrp watch --instance VI_1 --count 5
  kachecks vrrp watch --json | jq -c 'select(.event == "problem")'
  kachecks vrrp watch --interface eth0       # where there is no keepalived.conf: decode only

\b
Output:
  12:00:01.003 eth0 192.168.8.100 > 224.0.0.18 v2 vrid 50 prio 100 int 1s addrs 192.168.8.142 auth pass  VI_1
  12:00:07.812 *** split-brain (critical): VI_1 vrid 50 on eth0: split brain: 192.168.8.100
      prio 100 and 192.168.8.110 prio 50 (this director) both master for 3.0 s (...)
  12:00:20.131 *** split-brain over: VI_1 vrid 50 on eth0, after 12.4 s

\b
The problems are kachecks-vrrp's (split-brain, no-master, filtered, mismatch,
foreign): /usr/share/doc/kachecks/docs/vrrp.md says what each means.
Needs CAP_NET_RAW (root).""")
@click.option("--keepalived-conf", "conf", metavar="FILE",
              help=f"keepalived configuration whose vrrp_instance blocks name the adverts and are"
                   f" judged [default: {DEFAULT_CONFIG}; with --interface, none is needed].")
@click.option("-i", "--config-id", metavar="ID",
              help="Read @ID lines as director ID would [default: this host's name].")
@click.option("--instance", "names", multiple=True, metavar="NAME",
              help="Watch only this vrrp_instance (repeatable).")
@click.option("--interface", "interfaces", multiple=True, metavar="IF",
              help="Watch this interface (repeatable): every advert on it, and only the instances"
                   " on it.")
@click.option("--hold", type=Duration(0, 86400), metavar="DURATION",
              help="How long another master or a firewall's drop must last to be reported"
                   " (6, 1500ms) [default: 3 x advert_int].")
@click.option("--ignore-vrid", "ignore", multiple=True, type=click.IntRange(1, 255), metavar="VRID",
              help="Never report adverts for VRID as foreign (repeatable).")
@click.option("--count", type=click.IntRange(min=1), metavar="N",
              help="Stop after N adverts.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object a line: adverts ({\"event\": \"advert\", …}) and problems"
                   " ({\"event\": \"problem\", \"state\": \"start\"|\"end\", …}).")
def watch(conf, config_id, names, interfaces, hold, ignore, count, as_json):
    """tcpdump for VRRP, decoded: one line per advert seen on the wire (this
    director's own included), and a line when a problem starts or ends."""
    return main(conf, config_id, names, interfaces, hold, ignore, count, as_json)


def main(conf=None, config_id=None, names=(), interfaces=(), hold=None, ignore=(), count=None,
         as_json=False, out=None):
    """Watch until --count adverts, or a terminating signal; returns the exit code."""
    from kachecks.vrrp import instances as configuration
    from kachecks.vrrp.watcher import Watcher

    out = out or sys.stdout
    try:
        everything, watched = configuration.load(conf or DEFAULT_CONFIG, config_id, names)
    except UsageError:
        if conf is not None or not interfaces or names:
            raise
        everything, watched = [], []  # no keepalived.conf here: decode only
    if interfaces:
        watched = [i for i in watched if i.interface in interfaces]
    by_key = {i.key: i for i in everything}
    watcher = Watcher(everything, watched, hold, ignore, interfaces)
    adverts = problems = 0
    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        for event in watcher.events():
            if hasattr(event, "advert"):
                if event.vantage != "wire":
                    continue
                adverts += 1
                line = _advert(event, by_key, as_json)
            elif everything:  # without a configuration every VRID would be "foreign"
                problems += event.started
                line = _change(event, watcher.clock, as_json)
            else:
                continue
            out.write(line + "\n")
            out.flush()
            if count is not None and adverts >= count:
                break
    except (Stopped, KeyboardInterrupt):
        pass
    finally:
        watcher.close()
        for number, handler in previous.items():
            signal.signal(number, handler)
    shown = ", ".join(i.name for i in watcher.instances) or "no instance"
    click.echo(f"{PROG}: {adverts} advert{'s' * (adverts != 1)}, {problems} problem"
               f"{'s' * (problems != 1)} started ({shown})", err=True)
    return ExitCode.OK


def _stop(signum, frame):
    raise Stopped()


def _clock_text(wall):
    return time.strftime("%H:%M:%S", time.localtime(wall)) + f".{int(wall * 1000) % 1000:03d}"


def _iso(wall):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(wall))
    return f"{stamp}.{int(wall * 1000) % 1000:03d}{time.strftime('%z', time.localtime(wall))}"


def _advert(capture, by_key, as_json):
    advert = capture.advert
    instance = by_key.get((capture.interface, advert.family, advert.vrid))
    if as_json:
        return json.dumps({
            "event": "advert", "time": _iso(capture.wall), "epoch": round(capture.wall, 6),
            "interface": capture.interface, "source": advert.src, "destination": advert.dst,
            "version": advert.version, "vrid": advert.vrid, "priority": advert.priority,
            "interval": advert.interval, "addresses": advert.address_texts(),
            "auth": advert.auth_name, "ttl": advert.ttl, "checksum_ok": advert.checksum_ok,
            "instance": instance.name if instance else None, "own": capture.outgoing,
            "mac": capture.mac.hex(":") if capture.mac else None})
    addresses = ",".join(advert.address_texts()) or "none"
    text = (f"{_clock_text(capture.wall)} {capture.interface} {advert.src} > {advert.dst}"
            f" v{advert.version} vrid {advert.vrid} prio {advert.priority}"
            f" int {advert.interval:g}s addrs {addresses}")
    if advert.auth_name is not None:
        text += f" auth {advert.auth_name}"
    if advert.kind != 1:
        text += f" type {advert.kind}"
    if not advert.checksum_ok:
        text += " bad-checksum"
    elif advert.checksum_as_v2:
        text += " checksum-as-v2"
    if advert.ttl != 255:
        text += f" ttl {advert.ttl}"
    return f"{text}  {instance.name if instance else '-'}"


def _change(change, clock, as_json):
    wall = time.time() - (clock() - change.time)
    problem = change.problem
    if as_json:
        return json.dumps({
            "event": "problem", "time": _iso(wall), "epoch": round(wall, 6),
            "state": "start" if change.started else "end", "code": problem.code,
            "severity": problem.severity, "instance": problem.instance,
            "interface": problem.interface, "family": problem.family, "vrid": problem.vrid,
            "message": change.message, "duration": round(change.lasted, 3),
            "sources": [{"address": a, "priority": p} for a, p in problem.sources],
            "fields": [{"source": s, "field": f, "theirs": t, "ours": o}
                       for s, f, t, o in problem.fields]})
    return f"{_clock_text(wall)} *** {change.text()}"
