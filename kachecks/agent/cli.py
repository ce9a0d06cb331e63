"""``kachecks agent`` and its subcommands: run, --check-config, conf, status, stop, zero.

Every failure is one line on stderr and exit 1 (kachecks.clickcommand's
convention, usage mistakes included): a configuration error names the file,
the check and the key; nothing prints a traceback.
"""

import json
import os
import signal
import sys
import time

import click

from kachecks import configfile, files
from kachecks.agent import config as configuration
from kachecks.agent import lock as locks
from kachecks.agent import status as statuses
from kachecks.agent import trackfile
from kachecks.clickcommand import CONTEXT, Duration, Group
from kachecks.errors import CommandFailed
from kachecks.status import ExitCode

CONFIG_HELP = "TOML configuration [default: $KACHECKS_CONFIG or /etc/kachecks/kachecks.toml]."


def _config_path(ctx, path):
    return path or (ctx.obj or {}).get("config")


@click.group(name="agent", cls=Group, invoke_without_command=True, context_settings=CONTEXT,
             short_help="Run the checks without a fork, into keepalived track files.",
             epilog="""\b
Examples:
  kachecks agent --check-config            # validate [agent] and every [[check]]
  kachecks agent                           # run in the foreground (systemd: kachecks-agent.service)
  kachecks agent conf                      # keepalived.conf blocks for the configured checks
  kachecks agent status                    # per check: state, cause, latency, flapping…
  kachecks agent stop                      # without systemd: stop it, every file to 0
  systemctl reload kachecks-agent          # SIGHUP: reload; same name and file: state kept

\b
/etc/kachecks/kachecks.toml:
  [agent]
  track_dir = "/run/kachecks/track"        # one file per check, named after the check
  metrics = "127.0.0.1:9662"               # Prometheus endpoint; "" for none
  interval = 5                             # defaults for every check
  timeout = 3
  [[check]]
  name = "web1"
  command = "kachecks-http --url http://192.168.8.101/service.txt --digest 5f2b4547f41470dc3e293e7267461575"
  fall = 2
  [[check]]
  name = "uplink"                          # this director's own, not a real server's:
  command = "kachecks-tcp 192.168.8.25:25"
  director = true                          # tracked in its vrrp_instance, vrrp_weight 20
  [vrrp]                                   # also watch the VRRP pair on the wire
  keepalived_conf = "/etc/keepalived/keepalived.conf"
  [notify]                                 # with [vrrp]: a state keepalived's notify never
  reconcile_after = "10s"                  # said is mailed after this, as seen by kachecks (0: off)
""")
@click.option("--config", "config_path", metavar="FILE", help=CONFIG_HELP)
@click.option("--check-config", is_flag=True,
              help="Validate the configuration, print one line per check, exit 0 or 1.")
@click.pass_context
def agent(ctx, config_path, check_config):
    """Run every configured check in-process and write keepalived track files.

    One resident process replaces the MISC_CHECK and vrrp_script forks:
    each [[check]] command is a misc_path line (same options, probes and
    syslog words as the kachecks-* executables), run every interval; its
    state goes to its track file, 1 up and 0 down (the weight with
    --dynamic), which keepalived's track_file / FILE_CHECK follow.
    SIGTERM/SIGINT set every file to 0 and exit 0: stopping the agent takes
    this director's real servers out (fail-closed).

    With a [vrrp] table it also watches the VRRP pair on the wire, as
    kachecks-vrrp judges it, and logs and mails (through the notification
    spool) when a split brain or another problem starts and ends; it never
    changes keepalived's state for it. When this director holds (or no
    longer holds) an instance's addresses and keepalived's notify never said
    so within [notify] reconcile_after, it spools that state, marked as seen
    by kachecks, once.
    """
    ctx.ensure_object(dict)["config"] = config_path
    if ctx.invoked_subcommand is not None:
        return None
    return _check_config(config_path) if check_config else _run(config_path)


def _check_config(path):
    from kachecks.agent import metrics

    cfg = configuration.load(path)
    with trackfile.Directories() as directories:  # judged as the agent would, nothing made
        try:
            directories.open(cfg.track_dir, cfg.files, create=False)
        except OSError as exc:
            raise CommandFailed(f"{cfg.path}: cannot use the track files:"
                                f" {exc.strerror or exc}") from None
    for spec in cfg.checks:
        click.echo(f"{spec.name}: {os.path.basename(spec.argv[0])} {spec.target.identity} every"
                   f" {spec.interval:g} s, timeout {spec.timeout:g} s, rise {spec.rise},"
                   f" fall {spec.fall}{', dynamic' if spec.dynamic else ''} -> {spec.file}")
    if cfg.vrrp is not None:
        _check_pair(cfg.vrrp)
    if cfg.metrics is not None and not metrics.available():
        click.echo(f"warning: metrics endpoint off: {metrics.MISSING}", err=True)
    count = len(cfg.checks)
    click.echo(f"{cfg.path}: OK, {count} check{'s' * (count != 1)}")
    return ExitCode.OK


def _check_pair(settings):
    """The [vrrp] watch tried now: what it watches, or a warning. Not an error: the agent
    runs its checks without the watch (and retries it), so its unit must start."""
    from kachecks.agent import pair

    try:
        labels = pair.trial(settings)
    except pair.Unusable as exc:
        click.echo(f"warning: [vrrp]: not watching the pair: {exc} (the agent runs its checks"
                   f" without it and tries again every {pair.RETRY:g} s)", err=True)
        labels = []
    for label in labels:
        click.echo(f"vrrp: {label} (from {settings.keepalived_conf})")
    after = settings.reconcile_after
    click.echo(f"vrrp: a state keepalived's notify never said is mailed after {after:g} s"
               " ([notify] reconcile_after)" if after else
               "vrrp: missed notifications are not reconciled ([notify] reconcile_after = 0)")


def _run(path):
    from kachecks.agent import daemon, systemd

    cfg = configuration.load(path)
    tracks = daemon.TrackFiles()
    try:
        tracks.open(cfg)
        held = locks.take(tracks.directories.fd(cfg.track_dir))
    except locks.Busy as exc:
        raise CommandFailed(f"another kachecks agent (pid {exc.pid}) writes the track"
                            f" files in {cfg.track_dir}") from None
    except OSError as exc:
        raise CommandFailed(f"cannot use {cfg.track_dir}: {exc.strerror or exc}") from None
    daemon.set_process_name()
    try:
        return daemon.Agent(cfg, notifier=systemd.Notifier(), tracks=tracks).run()
    finally:
        os.close(held)  # the lock, released only now: the files are zeroed


def _options(func):
    func = click.option("--config", "config_path", metavar="FILE", help=CONFIG_HELP)(func)
    return click.pass_context(func)


@agent.command(context_settings=CONTEXT, epilog="""\b
Example:
  kachecks agent conf > /tmp/agent-blocks.conf   # then paste each part where it says
""")
@_options
def conf(ctx, config_path):
    """Print the keepalived.conf blocks for the configured checks.

    track_file blocks (weight 0 reverse, init_file 0: a missing or stale-0
    file fails closed); for each vrrp_instance, what is this director's own:
    the agent's running file (FAULT once it stops), the vrrp_track_process
    that follows the agent (a part of its own: not in a network namespace)
    and the director = true checks, weighted; per real server its
    FILE_CHECK. A real server's check is never tracked in a vrrp_instance:
    both directors see its failure, which would take the VIP off both.
    """
    from kachecks.agent import conf as blocks

    click.echo(blocks.render(configuration.load(_config_path(ctx, config_path))), nl=False)
    return ExitCode.OK


@agent.command(context_settings=CONTEXT, epilog="""\b
Examples:
  kachecks agent status                  # the table; colours on a terminal
  kachecks agent status --json | jq '.checks[] | select(.state == "DOWN") | .name'
  curl -s http://127.0.0.1:9662/status.json   # the same document from the endpoint

\b
Columns: STATE is UP, DOWN, DRAIN (PENDING before the first result), with
"going down 1/3" while failures count towards fall (HAProxy's "UP 1/3") or
"going up 1/2" towards rise; CAUSE the last run's code (L7OK, L4CON, L7STS…:
docs/reference.md); LAST 60 the last 60 latencies; DOWNTIME the time spent
DOWN; DOWNS how often it went DOWN; FLAPPING Nagios' percent state change of
the last 21 results (flapping above 50 %, no longer below 25 %).

\b
Exit status: 0 the agent runs; 3 it does not (its last status is shown); 1 error.
""")
@click.option("--json", "as_json", is_flag=True,
              help="Print the status document (what the status page's /status.json serves)"
                   " instead of the table.")
@_options
def status(ctx, config_path, as_json):
    """Each check: state, cause, latency, last change, downtime, flapping, last result.

    What the agent last wrote beside its track files (at most once a
    second, and when it stops): the columns of its status page, aligned,
    in colour on a terminal (not with NO_COLOR set).
    """
    path = _config_path(ctx, config_path)
    try:
        track_dir = configuration.load(path).track_dir
    except configuration.ConfigError as exc:  # status is read-only: show it anyway
        click.echo(f"kachecks agent status: warning: {exc}", err=True)
        track_dir = _fallback_track_dir(path)
    status_file = os.path.join(track_dir, configuration.STATUS_FILE)
    try:
        document = statuses.read(status_file)
    except files.UnusableFile as exc:
        if exc.reason != "missing":
            raise CommandFailed(str(exc)) from None
        click.echo(f"kachecks agent status: no agent status in {status_file}: the agent has"
                   " not run with this configuration", err=True)
        return ExitCode.NOT_RUNNING
    except ValueError as exc:
        raise CommandFailed(f"{status_file}: not a kachecks agent status file ({exc})") from None
    pid = _holder(track_dir)
    alive = pid is not None
    if alive:
        document["pid"] = pid
    if as_json:
        click.echo(json.dumps(document, indent=1, ensure_ascii=False))
        return ExitCode.OK if alive else ExitCode.NOT_RUNNING
    values = None if alive else _values(document)
    stream = sys.stdout  # not click.get_text_stream: deprecated in click 8.2, gone in 9.0
    colour = stream.isatty() and not os.environ.get("NO_COLOR")
    sparks = statuses.SPARKS if _can_encode(stream, statuses.SPARKS) else statuses.ASCII_SPARKS
    for line in statuses.render(document, alive=alive, values=values, colour=colour,
                                sparks=sparks):
        click.echo(line, color=colour)
    return ExitCode.OK if alive else ExitCode.NOT_RUNNING


def _holder(track_dir):
    """Pid of the agent holding ``track_dir``'s lock (kachecks.agent.lock), or None."""
    try:
        fd = os.open(track_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return locks.holder(fd)
    finally:
        os.close(fd)


def _can_encode(stream, text):
    try:
        text.encode(stream.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


@agent.command(context_settings=CONTEXT, epilog="""\b
Example (what kachecks-agent.service runs after the agent stops, even after a crash):
  ExecStopPost=/usr/bin/kachecks agent zero
""")
@_options
def zero(ctx, config_path):
    """Set every track file to 0 (all checks down) after the agent stopped.

    Covers the files of the configuration and every file the last agent
    wrote (from its status file), so a crash, a SIGKILL or an edited
    kachecks.toml never leaves a stale 1 behind. Refuses while an agent runs.
    """
    return _zero(_config_path(ctx, config_path))


def _zero(path):
    problem = None
    try:
        cfg = configuration.load(path)
        track_dir, paths = cfg.track_dir, cfg.files
    except configuration.ConfigError as exc:
        problem, track_dir, paths = exc, _fallback_track_dir(path), []
    paths.append(os.path.join(track_dir, configuration.ALIVE_FILE))  # "the agent runs": no more
    with trackfile.Directories() as directories:
        try:
            directories.open(track_dir, create=False)
            # no track directory, no agent: nothing to hold
            lock = locks.take(directories.fd(track_dir)) if track_dir in directories else None
        except locks.Busy as exc:
            raise CommandFailed(f"the agent (pid {exc.pid}) is running; stop it first"
                                " (systemctl stop kachecks-agent)") from None
        except OSError as exc:
            raise CommandFailed(f"cannot use {track_dir}: {exc.strerror or exc}") from None
        try:  # holding the lock: no agent starts while we zero
            return _zero_files(directories, track_dir, paths, problem)
        finally:
            if lock is not None:
                os.close(lock)


def _zero_files(directories, track_dir, paths, problem):
    """Zero ``paths`` (the configuration's) and the files the last agent listed in its
    status document that are still track files (see trackfile.unfit), never making one."""
    failed = []
    for bad in _open_all(directories, track_dir, paths):
        failed.append(bad)
        paths.remove(bad[0])
    document = None
    try:
        document = statuses.read(os.path.join(track_dir, configuration.STATUS_FILE))
    except (files.UnusableFile, ValueError):
        pass
    listed = [f for f in (document or {}).get("files", []) if isinstance(f, str)
              and os.path.isabs(f) and not configfile.CONTROL.search(f) and f not in paths]
    for path in listed:
        try:
            directories.open(os.path.dirname(path), create=False)
        except OSError:
            continue  # not a directory the agent may write in: not its file
        directory, name = os.path.split(path)
        if (directory in directories and os.path.lexists(path)
                and trackfile.unfit(name, directories.fd(directory)) is None):
            paths.append(path)
    failed += trackfile.zero(directories, sorted(set(paths)))
    for failed_path, error in failed:
        click.echo(f"kachecks agent zero: could not set {failed_path} to 0: {error}", err=True)
    if document is not None and track_dir in directories:
        _mark_stopped(directories, track_dir, document)
    if problem is not None:
        raise CommandFailed(f"{problem} (zeroed the {len(set(paths))} files the last agent"
                            " wrote)")
    return ExitCode.FAILURE if failed else ExitCode.OK


def _open_all(directories, track_dir, paths):
    """Open the directory of each configured path (dropping those with none); [(path,
    why)] for those refused."""
    refused = []
    for path in list(paths):
        if not os.path.isdir(os.path.dirname(path)):
            paths.remove(path)  # no directory, no file: nothing to zero
            continue
        try:
            directories.open(track_dir, [path], create=False)
        except OSError as exc:
            refused.append((path, exc.strerror or str(exc)))
    return refused


@agent.command(context_settings=CONTEXT, epilog="""\b
Examples:
  kachecks agent stop                  # an agent started by hand, or in a container
  systemctl stop kachecks-agent        # under systemd, the same (its ExecStopPost zeroes)

\b
Exit status: 0 stopped (or none was running) and every file set to 0; 1 otherwise.
""")
@click.option("--timeout", type=Duration(0, 3600, low_ok=True), default=10.0, show_default=True,
              metavar="DURATION",
              help="How long the agent may take to stop before it is killed (10, 30s).")
@_options
def stop(ctx, config_path, timeout):
    """Stop the running agent, then set every track file to 0.

    SIGTERM, as systemd stops it: the agent sets every file to 0 and exits;
    one that does not within --timeout is killed. Then `kachecks agent zero`,
    as the unit's ExecStopPost. Stopping the agent takes this director's
    real servers out and, through its "running" file, hands the VIP to the
    peer: on the active director it is a failover. The package's removal
    runs it.
    """
    path = _config_path(ctx, config_path)
    track_dir = _track_dir(path)
    pid = _holder(track_dir)  # the agent is who holds its lock: never a pid from a file
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        if not _ended(track_dir, timeout):
            click.echo(f"kachecks agent stop: pid {pid} did not stop within {timeout:g} s:"
                       " killed", err=True)
            os.kill(pid, signal.SIGKILL)
            _ended(track_dir, 5.0)
        click.echo(f"kachecks agent (pid {pid}) stopped")
    return _zero(path)


def _ended(track_dir, timeout):
    """Wait until nobody holds ``track_dir``'s lock; False after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while _holder(track_dir) is not None:
        if time.monotonic() >= end:
            return False
        time.sleep(0.05)
    return True


def _track_dir(path):
    try:
        return configuration.load(path).track_dir
    except configuration.ConfigError:
        return _fallback_track_dir(path)


def _values(document):
    """{path: what keepalived reads there now} for the files a stopped agent left: its
    checks' and its own "running" file."""
    paths = {c.get("file") for c in document.get("checks", []) if isinstance(c, dict)}
    track_dir = document.get("track_dir")
    if isinstance(track_dir, str):
        paths.add(os.path.join(track_dir, configuration.ALIVE_FILE))
    return {path: trackfile.read(path) for path in paths
            if isinstance(path, str) and os.path.isabs(path)}


def _fallback_track_dir(path):
    """track_dir from a configuration that no longer validates, else the default."""
    try:
        value = configfile.read(path)[1].get("agent", {}).get("track_dir")
    except (configuration.ConfigError, AttributeError):
        value = None
    if isinstance(value, str) and os.path.isabs(value) and not configfile.CONTROL.search(value):
        return value
    return configuration.DEFAULT_TRACK_DIR


def _mark_stopped(directories, track_dir, document):
    try:
        statuses.write(configuration.STATUS_FILE, statuses.stopped(document),
                       dir_fd=directories.fd(track_dir))
    except OSError:
        pass
