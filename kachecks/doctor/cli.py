"""``kachecks doctor``: the command line around kachecks.doctor.audit."""

import json

import click

from kachecks.clickcommand import CONTEXT, Command, Duration
from kachecks.errors import CommandFailed, UsageError
from kachecks.keepalivedconf import DEFAULT_CONFIG, ReadError
from kachecks.status import ExitCode

PROG = "kachecks doctor"

DESCRIPTION = """\
Audit keepalived.conf against the live servers before a reload.

keepalived -t checks syntax only. The doctor reads the configuration as
keepalived reads it (include with globs, $NAME definitions, @host lines,
comments, quoting) and reports, for every check, script and notify:

\b
  syntax            an unknown keyword (keywords are case-sensitive:
                    Nopreempt), a missing brace, a value keepalived rejects;
                    keepalived -t's own messages, when it is installed
  limit             the configuration reaches one of the reader's bounds
                    (a line of 1023 bytes, 16 MiB a file, includes 32
                    deep, ...: docs/doctor.md): the rest is not audited
  digest-mismatch   an HTTP_GET/SSL_GET digest the real server no longer
                    serves, with the live digest and the line to paste
  unreachable       a real server, or the peer of a kachecks check, that
                    does not answer
  check-failed      a kachecks MISC_CHECK/vrrp_script (or an HTTP_GET
                    status) that fails now, with the check's reason
                    (kachecks-vrrp lines are read, not run: they listen)
  bad-option        a kachecks command line the check itself rejects
  misc-timeout      misc_timeout (default: delay_loop) not above the
                    check's --timeout: keepalived kills it first
  dynamic-mismatch  --dynamic without misc_dynamic (healthy exits 2+)
  misplaced-check   kachecks-vrrp in a MISC_CHECK: it judges the directors,
                    so a VRRP problem takes every real server out; or in a
                    vrrp_script tracked with weight 0: a split brain puts
                    both directors in FAULT for good (warning)
  not-executable    a misc_path, script or notify* program that does not
                    exist or cannot run (no #! line: keepalived's failed
                    exec counts as success)
  script-security   scripts as root without enable_script_security, or a
                    path a non-root user can write to
  secret-on-argv    a password on a command line (visible in ps)
  agent-polarity    a kachecks agent track file read so that a healthy 1
                    faults or lowers the priority (weight 0 without
                    reverse, a negative weight)
  agent-orphan      a track file in the agent's directory that no [[check]]
                    of kachecks.toml writes (it reads 0 for ever)
  agent-shared-fault a real server's check tracked with weight 0 in a
                    vrrp_instance: one server failure, both directors FAULT
  agent-config      the agent's kachecks.toml cannot be read, so its track
                    files cannot be audited

With --peer FILE (the other director's keepalived.conf, or - for standard
input), the two files are compared as a pair, at the lines of both sides:

\b
  pair-instance     an instance on one side only, or another VRID: each
                    side is MASTER alone
  pair-advert       version, auth type, password or (VRRPv2) advert_int
                    differ: each side discards the other's adverts
  pair-addresses    virtual_ipaddress(_excluded) differ: keepalived 2.2.7
                    discards the adverts (dual master), 2.3.3 accepts them
                    but a failover changes the addresses held
  pair-unicast      unicast_src_ip / unicast_peer not mirror images
  pair-priority     equal priorities, nopreempt cleared by state MASTER,
                    both state MASTER, nopreempt on one side only (warning)
  pair-services     a virtual_server, real server or check on one side only
                    or different: a failover changes what is served (warning)
  failover          a single failure that leaves the addresses on the
                    director where it happened, with the arithmetic (warning)

With --what-if the doctor prints, for every single failure on either director
(each tracked script, track file, interface and process failing, keepalived
stopped, the director down), each instance's effective priority and state on both
directors and who holds its addresses afterwards, from the steady state (both
started together), by keepalived's rules; without --peer the peer's side is
unknown. It reads the files only: no script or check runs.

One finding a line, FILE:LINE: error|warning: CODE: message; a summary on
stderr. Exit 0 when there is no error (warnings allowed), 1 otherwise, and 1
when the file cannot be read or the command line is wrong."""

EPILOG = """\
\b
Examples:
  kachecks doctor && systemctl reload keepalived
  kachecks doctor --no-run -f /etc/keepalived/keepalived.conf
  kachecks doctor --json | jq -r '.[] | select(.code == "digest-mismatch") | .message'
  kachecks doctor -i lvs2     # as on director lvs2 (@lvs2 lines)
  kachecks doctor --agent-config /etc/kachecks/agent-test.toml

\b
Before reloading lvs1, against what lvs2 runs:
  ssh lvs2 cat /etc/keepalived/keepalived.conf | kachecks doctor --peer - \\
    && systemctl reload keepalived
  kachecks doctor --peer /tmp/lvs2.conf --peer-id lvs2 --no-run
  kachecks doctor --what-if --peer /tmp/lvs2.conf
  kachecks doctor --what-if --json --peer /tmp/lvs2.conf | jq '.[1:][] |
    select(.instances.VI_1.holder == .director) | .failure'

\b
After a content deploy on web1 (one line, cut here):
  /etc/keepalived/keepalived.conf:50: error: digest-mismatch: HTTP_GET
    http://192.168.8.101:80/service.txt serves md5 3a6e... now (19 B, status
    200), not the configured 5f2b...; the line to paste: digest 3a6e...

\b
The reference pair (chk_web1 weight -20, priorities 100/50, nopreempt):
  /etc/keepalived/keepalived.conf:41: warning: failover: vrrp_script
    chk_web1 fails on lvs1: VI_1's addresses stay on lvs1, where it failed:
    priority 100 - 20 (chk_web1) = 80; 80 > lvs2's 50 (...), and lvs2 has
    nopreempt (...): no priority change moves the addresses"""


@click.command(name="doctor", cls=Command, help=DESCRIPTION, epilog=EPILOG,
               short_help="Audit keepalived.conf against the live servers.",
               context_settings=CONTEXT)
@click.option("-f", "--config", "path", default=DEFAULT_CONFIG, show_default=True, metavar="FILE",
              help="keepalived configuration to audit.")
@click.option("--no-run", is_flag=True,
              help="Touch no network: no HTTP_GET fetch, no check run (syntax, scripts, options,"
                   " timeouts and keepalived -t only).")
@click.option("--json", "as_json", is_flag=True,
              help="A JSON list of {file, line, severity, code, message} instead of text.")
@click.option("-i", "--config-id", metavar="ID",
              help="Read @ID lines as director ID would (default: this host's name, like"
                   " keepalived -i).")
@click.option("--timeout", type=Duration(0, 3600), metavar="DURATION",
              help="Time for each HTTP_GET/SSL_GET fetch (2, 500ms) [default: its"
                   " connect_timeout, else 5 s].")
@click.option("--keepalived", "keepalived", metavar="PATH",
              help="keepalived binary for the -t check [default: on PATH, or /usr/sbin/keepalived].")
@click.option("--no-keepalived", is_flag=True, help="Do not run keepalived -t.")
@click.option("--agent-config", metavar="FILE",
              help="The kachecks agent's kachecks.toml, read when keepalived.conf defines track"
                   " files [default: $KACHECKS_CONFIG, else /etc/kachecks/kachecks.toml].")
@click.option("-q", "--quiet", is_flag=True, help="No summary line on stderr.")
@click.option("--peer", metavar="FILE",
              help="The other director's keepalived.conf (a copy, or - for standard input):"
                   " compare the pair (pair-* codes) and warn of failures that move nothing"
                   " (failover).")
@click.option("--peer-id", metavar="ID",
              help="Read the peer's @ID lines as director ID would (required when it has any).")
@click.option("--what-if", "what_if", is_flag=True,
              help="Print every single failure on either director and who holds each instance's"
                   " addresses after it (a table; --json: the scenarios); no script or check is"
                   " run.")
def doctor(path, no_run, as_json, config_id, timeout, keepalived, no_keepalived, agent_config,
           quiet, peer, peer_id, what_if):
    if peer_id is not None and peer is None:
        raise UsageError("--peer-id names the director of --peer FILE, and there is none"
                         " (see kachecks doctor --help)")
    if what_if:
        return what_if_main(path, peer, as_json=as_json, config_id=config_id, peer_id=peer_id,
                            quiet=quiet)
    return main(path, run=not no_run, as_json=as_json, config_id=config_id, timeout=timeout,
                keepalived=keepalived, use_keepalived=not no_keepalived, quiet=quiet,
                agent_config=agent_config, peer=peer, peer_id=peer_id)


def main(path, run=True, as_json=False, config_id=None, timeout=None, keepalived=None,
         use_keepalived=True, quiet=False, agent_config=None, peer=None, peer_id=None):
    """Audit, print, return the exit code (OK: no error); CommandFailed if the
    configuration (or the peer's) cannot be read."""
    from kachecks.doctor.audit import audit

    try:
        peer_config = None
        if peer is not None:
            from kachecks.doctor import peer as pairing

            peer_config = pairing.read_peer(peer, peer_id)
        report = audit(path, run=run, config_id=config_id, keepalived=keepalived,
                       use_keepalived=use_keepalived, timeout=timeout, agent_config=agent_config)
        if peer_config is not None:
            report.findings = pairing.merged(
                report.findings + pairing.pair_findings(report.config, peer_config),
                report.config, peer_config)
    except ReadError as exc:
        raise CommandFailed(str(exc)) from None
    if as_json:
        click.echo(json.dumps([f.as_dict() for f in report.findings], indent=2, ensure_ascii=False))
    else:
        for finding in report.findings:
            click.echo(finding.text())
    if not quiet:
        click.echo(summary(report, run, peer_config), err=True)
    return ExitCode.FAILURE if report.errors else ExitCode.OK


def what_if_main(path, peer=None, as_json=False, config_id=None, peer_id=None, quiet=False):
    """``--what-if``: the scenarios as a table (or JSON), then the findings about the pair."""
    from kachecks.doctor import peer as pairing
    from kachecks.doctor import whatif

    try:
        directors, scenarios, findings = pairing.what_if(path, peer, config_id, peer_id)
    except ReadError as exc:
        raise CommandFailed(str(exc)) from None
    errors, warnings = pairing.counts(findings)
    if as_json:
        click.echo(json.dumps(whatif.as_json(directors, scenarios), indent=2, ensure_ascii=False))
    else:
        click.echo(whatif.table(directors, scenarios))
        if findings:
            click.echo("")
        for finding in findings:
            click.echo(finding.text())
    if not quiet:
        click.echo(f"{PROG}: {len(scenarios) - 1} single failure{'s' * (len(scenarios) != 2)} on"
                   f" {' and '.join(d.name for d in directors)}"
                   f"{'' if peer else ' (peer unknown)'}, {errors} error{'s' * (errors != 1)},"
                   f" {warnings} warning{'s' * (warnings != 1)}", err=True)
    return ExitCode.FAILURE if errors else ExitCode.OK


def summary(report, run, peer_config=None):
    files = len(report.config.files)
    parts = [f"{report.errors} error{'s' * (report.errors != 1)}",
             f"{report.warnings} warning{'s' * (report.warnings != 1)}",
             f"{files} file{'s' * (files != 1)} read"]
    if peer_config is not None:
        theirs = len(peer_config.files)
        parts[-1] += f" and {theirs} of the peer's"
    outcome = report.keepalived
    if outcome is None:
        parts.append("keepalived -t not run")
    elif outcome.failure is None:
        parts.append(f"keepalived {outcome.version_text} -t exit {outcome.status}")
    if not run:
        parts.append("--no-run: servers not contacted")
    elif report.listeners:
        lines = report.listeners
        parts.append(f"{lines} kachecks-vrrp line{'s' * (lines != 1)} not run (each listens for"
                     " seconds: run it yourself; --peer and --what-if audit the pair from the"
                     " files)")
    return f"{PROG}: " + ", ".join(parts)
