"""``kachecks notify``, ``kachecks fifo`` and ``kachecks spool`` (docs/notifications.md).

Each click callback returns the exit code of a CLI helper; every command keeps
kachecks' click convention (kachecks.clickcommand: the one guard, usage
mistakes in one line, exit 1), each error line copied to syslog. ``notify`` runs in the process keepalived
waits for (and SIGKILLs for STOP after 1 s): it parses, spools durably, logs,
starts a detached deliverer and returns. asyncio, aiosmtplib and requests are
imported only by the deliverer.
"""

import time

import click

from kachecks import clickcommand
from kachecks.clickcommand import CONTEXT
from kachecks.errors import CommandFailed, KachecksError, UsageError
from kachecks.notify import config as configuration
from kachecks.notify import detach, deliver, event as events
from kachecks.notify import spool as store
from kachecks.notify.log import LOG_ERR, LOG_NOTICE, LOG_WARNING, log
from kachecks.secrets import read_password_file
from kachecks.status import ExitCode


def _report(line):
    log(line, LOG_ERR)


class Command(clickcommand.Command):
    """kachecks' click convention, every error line copied to syslog (daemon.err):
    keepalived runs these commands with nobody watching their stderr."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, report=_report, **kwargs)


class Group(clickcommand.Group):
    """The same for ``kachecks spool``."""

    command_class = Command

    def __init__(self, *args, **kwargs):
        super().__init__(*args, report=_report, **kwargs)


def spool_options(func):
    """--config and --spool-dir: all `spool list` and `purge` need."""
    options = [
        click.option("--config", "config_path", metavar="FILE",
                     help="TOML configuration [default: $KACHECKS_CONFIG or /etc/kachecks/kachecks.toml]."),
        click.option("--spool-dir", metavar="DIR", help="Spool directory (overrides [spool] dir)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def config_options(func):
    """--config, --spool-dir and the delivery overrides: for the commands that deliver."""
    options = [
        click.option("--smtp-host", metavar="HOST", help="Mail relay (overrides [smtp] host)."),
        click.option("--smtp-port", type=int, metavar="PORT", help="Relay port (overrides [smtp] port)."),
        click.option("--security", type=click.Choice(["starttls", "tls", "none"]),
                     help="Relay security (overrides [smtp] security)."),
        click.option("--to", "mail_to", multiple=True, metavar="ADDR",
                     help="Recipient; repeat for several (overrides [mail] to)."),
        click.option("--webhook-url", metavar="URL", help="Webhook URL (overrides [webhook] url)."),
        # checked as [spool] batch_window is, after the event is spooled: never lost for it
        click.option("--batch-window", metavar="DURATION",
                     help="Batch events this close together: 2, 500ms (overrides [spool]"
                          " batch_window)."),
    ]
    for option in reversed(options):
        func = option(func)
    return spool_options(func)


def overrides(opts):
    """The command-line options as ``section.key`` overrides of the file."""
    return {
        "spool.dir": opts.get("spool_dir"), "smtp.host": opts.get("smtp_host"),
        "smtp.port": opts.get("smtp_port"), "smtp.security": opts.get("security"),
        "mail.to": opts.get("mail_to"), "webhook.url": opts.get("webhook_url"),
        "spool.batch_window": opts.get("batch_window"),
    }


def load_config(opts):
    return configuration.load(opts.get("config_path"), overrides(opts))


def spool_dir(opts):
    """``--spool-dir``, else ``[spool] dir`` even from a configuration broken elsewhere."""
    return opts.get("spool_dir") or configuration.spool_dir(opts.get("config_path"))


def fallback_spool_dir(prog, opts):
    """Where an event goes whatever the configuration holds: never nowhere. When ``[spool]
    dir`` cannot be read, the default, said on stderr and in syslog."""
    try:
        return spool_dir(opts)
    except Exception as exc:  # noqa: BLE001 — the one promise: the event is spooled
        warn(prog, f"{_config_problem(exc)}; spooling in the default {configuration.DEFAULT_SPOOL}")
        return configuration.DEFAULT_SPOOL


def _config_problem(exc):
    return str(exc) if isinstance(exc, configuration.ConfigError) else \
        f"cannot read the configuration: {type(exc).__name__}: {exc}"


def warn_from_address(prog, cfg):
    """A mail.from the relay would reject is said when the FIFO reader starts, not at 3 a.m."""
    if "mail" in cfg.channels() and not cfg.mail["from"]:
        from kachecks.notify.channels import DeliveryError, mail

        try:
            mail.from_address(cfg)
        except DeliveryError as exc:
            warn(prog, f"{exc}; mail stays in the spool")


def warn_password_file(prog, cfg):
    """A bad password file is found now, not hours later by the deliverer."""
    path = cfg.smtp["password_file"]
    if "mail" not in cfg.channels() or not cfg.smtp["username"] or not path:
        return
    try:
        read_password_file(path)
    except UsageError as exc:
        warn(prog, f"smtp.password_file: {exc}; mail stays in the spool")


def warn(prog, message):
    click.echo(f"{prog}: warning: {message}", err=True)
    log(f"{prog}: {message}", LOG_ERR)


def put(evt, root):
    """Spool ``evt`` durably, then record it as its instance's last notified state (what the
    agent's reconciliation compares with); the open Spool, or CommandFailed if the event is
    not on disk. A record that cannot be written is said, never fatal: the event is spooled."""
    try:
        spool = store.Spool(root)
        try:
            spool.put(evt)
        except BaseException:
            spool.close()
            raise
    except store.SpoolError as exc:
        raise CommandFailed(f"{exc} — event NOT queued: {events.describe(evt)}") from None
    _record(spool, evt)
    return spool


def _record(spool, evt):
    from kachecks.notify import notified

    try:
        notified.record(spool, evt)
    except (store.SpoolError, OSError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        log(f"event {evt['id']} spooled but not recorded as {evt['name']}'s last notified state"
            f" ({why}): the agent's [vrrp] may spool it again as seen by kachecks", LOG_WARNING)


def announce(prog, evt, spool, cfg, kick=None):
    """Log the spooled event, then make sure a deliverer runs (none while ``cfg`` is None:
    the configuration is broken). Even without channels a deliverer runs, to empty incoming/.
    ``kick``: how (default detach.kick; a process with threads passes detach.launch)."""
    note = "" if cfg else ", not delivered until the configuration is fixed"
    log(f"event {events.describe(evt)} (from {evt['source']}, spooled as {evt['id']}{note})", LOG_NOTICE)
    if cfg:
        try:
            (kick or detach.kick)(spool, cfg)
        except store.SpoolError as exc:
            warn(prog, f"{exc}; the event stays in the spool")


def spool_event(prog, evt, opts, kick=None):
    """Spool ``evt`` before the configuration is even validated, then announce it: ``(root,
    problem, cfg)``: problem is what is wrong with the configuration (the event waits in
    ``root`` until it is fixed; cfg None) or None. CommandFailed when the event is not on disk. `kachecks notify` and the agent's
    [vrrp] notifications both come this way."""
    root = fallback_spool_dir(prog, opts)  # the configured spool, as far as it can be read
    with put(evt, root) as spool:
        try:
            cfg, problem = load_config(opts), None
        except Exception as exc:  # noqa: BLE001 — the event is on disk: say why, deliver later
            cfg, problem = None, _config_problem(exc)
        announce(prog, evt, spool, cfg, kick)
    return root, problem, cfg


def queue_event(prog, event_args, opts):
    """``kachecks notify``: the event is on disk before the configuration is even validated."""
    evt = events.from_argv(event_args)
    root, problem, cfg = spool_event(prog, evt, opts)
    if problem:
        raise CommandFailed(f"{problem} — event kept in {root}; fix it, then run "
                            "`kachecks spool flush`")
    warn_password_file(prog, cfg)
    return ExitCode.OK


NOTIFY_EPILOG = """\b
keepalived.conf (reference deployment, lvs1/lvs2):
  vrrp_instance VI_1 {
      notify "/usr/bin/kachecks notify"      # keepalived appends TYPE NAME STATE PRIORITY
  }
  vrrp_instance VI_1 {                       # or the state-specific hooks, written by hand:
      notify_master "/usr/bin/kachecks notify INSTANCE VI_1 MASTER"
      notify_backup "/usr/bin/kachecks notify INSTANCE VI_1 BACKUP"
  }
  real_server 192.168.8.101 80 {
      notify_up   "/usr/bin/kachecks notify RS [192.168.8.101]:tcp:80 UP"
      notify_down "/usr/bin/kachecks notify RS [192.168.8.101]:tcp:80 DOWN"
  }

\b
Examples:
  kachecks notify INSTANCE VI_1 MASTER 100
  kachecks notify GROUP G1 BACKUP 0
  kachecks notify RS [192.168.8.101]:tcp:80 [192.168.8.142]:tcp:80 DOWN
  kachecks notify --config /tmp/test.toml INSTANCE VI_1 FAULT 100
  kachecks notify --test          # a heartbeat through every channel now, and their answers

\b
  $ kachecks notify --test
  mail (smtp.example.org:587 -> netops@example.org): accepted: 250 2.0.0 Ok: queued as 4XyZ (0.21 s)
  webhook (https://mattermost.example.org/hooks/…): accepted: HTTP 200 OK (0.08 s)

Exit status: 0 once the event is spooled (delivery runs detached and
retries on its own), 1 if it could not be spooled or the input is invalid;
for a test, 0 if every configured channel accepted the heartbeat, 1 naming
each that did not and why (each channel waits at most its timeout:
smtp.timeout, webhook.timeout).
"""


@click.command(cls=Command, context_settings=CONTEXT, epilog=NOTIFY_EPILOG,
               short_help="Queue one keepalived state change for mail/webhook.")
@config_options
@click.option("--test", "test", is_flag=True,
              help="Send a heartbeat through every configured channel now, not through the spool; "
                   "wait for each answer.")
@click.argument("event_args", nargs=-1, metavar="TYPE NAME STATE [PRIORITY]")
@click.pass_context
def notify(ctx, event_args, test, **opts):
    """Queue one keepalived state change and deliver it in the background.

    TYPE is INSTANCE, GROUP, RS or VS; STATE is a keepalived state (MASTER,
    BACKUP, FAULT, STOP, DELETED, UP, DOWN…); PRIORITY is what the generic
    `notify` appends (an instance's effective priority, 0 for a group).
    For RS the real server may be followed by its virtual server.
    The event is written to the spool (fsync) before anything else, so
    keepalived's SIGKILL of STOP scripts cannot lose it. An INSTANCE event
    is then recorded as the instance's last notified state: where the
    agent watches the pair ([vrrp]), a state that keepalived never
    notified is mailed after [notify] reconcile_after, as seen by kachecks.

    With --test (and no event), it checks the way out instead: a
    heartbeat goes to the mail relay and the webhook directly, and each
    answer is printed.
    """
    if test:
        if event_args:
            raise UsageError("--test takes no event: kachecks notify --test (see --help)")
        return test_channels(ctx.command_path, opts)
    return queue_event(ctx.command_path, event_args, opts)


def destination(cfg, channel):
    """Where ``channel`` sends, in words: ``smtp.example.org:587 -> netops@example.org``."""
    if channel == "mail":
        security = cfg.smtp["security"]
        port = cfg.smtp["port"] or (465 if security == "tls" else 25)
        return f"{cfg.smtp['host']}:{port} -> {', '.join(cfg.mail['to'])}"
    return cfg.webhook["url"]


def test_channels(prog, opts):
    """``kachecks notify --test``: 0 if every channel took the heartbeat, 1 naming the others."""
    from kachecks.notify import heartbeat

    cfg = load_config(opts)
    if not cfg.channels():
        raise CommandFailed("no channel to test: mail.enabled is false and webhook.url is not set")
    refused = []

    def said(channel, ok, text):
        where = destination(cfg, channel)
        if ok:
            click.echo(f"{channel} ({where}): accepted: {text}")
            log(f"notify --test: {channel} ({where}) accepted the heartbeat: {text}", LOG_NOTICE)
        else:
            refused.append(channel)
            click.echo(f"{prog}: {channel} ({where}): NOT accepted: {text}", err=True)
            log(f"notify --test: {channel} ({where}) did not accept the heartbeat: {text}", LOG_ERR)

    heartbeat.test(cfg, said)
    if refused:
        raise CommandFailed(f"{' and '.join(refused)} did not accept the heartbeat (see above)")
    return ExitCode.OK


FIFO_EPILOG = """\b
keepalived.conf (reference deployment):
  global_defs {
      vrrp_notify_fifo /run/keepalived/vrrp.fifo
      vrrp_notify_fifo_script "/usr/bin/kachecks fifo"
  }
keepalived appends the FIFO path. Lines understood:
  INSTANCE "VI_1" MASTER 100
  GROUP "G1" BACKUP 0
  VS [192.168.8.142]:tcp:80 UP
  RS [192.168.8.101]:tcp:80 [192.168.8.142]:tcp:80 DOWN
  RS [192.168.8.101]:tcp:80 FWM 5 UP

\b
Examples:
  kachecks fifo /run/keepalived/vrrp.fifo
  kachecks fifo --config /etc/kachecks/kachecks.toml /run/keepalived/notify.fifo
"""


def read_fifo(prog, fifo_path, opts):
    """``kachecks fifo``: spool every line until keepalived closes the FIFO.

    With a broken configuration the lines are still spooled (not delivered):
    keepalived does not wait for this reader, and what it does not read is lost.
    """
    from kachecks.notify import fifo as reader

    try:
        cfg, problem = load_config(opts), None
    except Exception as exc:  # noqa: BLE001 — what keepalived writes is read and spooled anyway
        cfg, problem = None, _config_problem(exc)
        _report(f"{prog}: {problem} — events are kept in the spool until it is fixed")
        click.echo(f"{prog}: {problem} — events are kept in the spool until it is fixed", err=True)
    root = cfg.spool_dir if cfg else fallback_spool_dir(prog, opts)
    if cfg:
        warn_password_file(prog, cfg)
        warn_from_address(prog, cfg)

    def on_line(line):
        try:
            evt = events.from_fifo_line(line)
            with put(evt, root) as spool:
                announce(prog, evt, spool, cfg)
        except events.EventError as exc:
            click.echo(f"{prog}: skipped: {exc}", err=True)
            log(f"{prog}: skipped: {exc}", LOG_WARNING)
        except KachecksError as exc:  # could not spool this one: say so, keep reading
            click.echo(f"{prog}: {exc}", err=True)
            _report(f"{prog}: {exc}")
        except Exception as exc:  # the reader must outlive any one event
            log(f"{prog}: {line[:200]!r}: {type(exc).__name__}: {exc}", LOG_ERR)

    reader.read(fifo_path, root, on_line, log)
    return ExitCode.FAILURE if problem else ExitCode.OK


@click.command(cls=Command, context_settings=CONTEXT, epilog=FIFO_EPILOG,
               short_help="Read keepalived's notify FIFO (notify_fifo_script).")
@config_options
@click.argument("fifo_path", metavar="FIFO")
@click.pass_context
def fifo(ctx, fifo_path, **opts):
    """Read state changes from keepalived's notify FIFO until EOF.

    Each line is spooled and delivered like `kachecks notify`. A malformed
    line is logged and skipped. After SIGTERM (keepalived shutting down) it
    keeps reading until keepalived closes the FIFO, so the STOP lines are not
    lost. Started twice on one FIFO, the second waits and takes over when the
    first exits.
    """
    return read_fifo(ctx.command_path, fifo_path, opts)


SPOOL_EPILOG = """\b
Examples:
  kachecks spool list
  kachecks spool list --json      # counts, ages, attempts and last errors for monitoring
  kachecks spool flush            # what the systemd timer runs
  kachecks spool purge --expired  # forget events that expired undelivered
  kachecks spool list --spool-dir /tmp/spool
"""


@click.group(cls=Group, context_settings=CONTEXT, epilog=SPOOL_EPILOG,
             short_help="List, flush or purge undelivered notifications.")
def spool_group():
    """Undelivered notifications in the spool (/var/spool/kachecks).

    Events wait there until the mail relay or webhook accepts them; a
    detached deliverer retries with back-off and the systemd timer runs
    `kachecks spool flush`. Events older than [spool] expire are logged to
    syslog and kept under expired/ until purged.
    """


spool_group.name = "spool"


def _age(seconds):
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def list_spool(opts, as_json=False):
    """``kachecks spool list``: one line per event, oldest first per queue, then each failing
    channel's attempts; or all of it as one JSON document."""
    from kachecks.notify import summary

    root, now, count = spool_dir(opts), time.time(), 0
    if as_json:
        import json

        click.echo(json.dumps(summary.document(root, now), indent=2))
        return ExitCode.OK
    for where, evt, name, problem in store.listing(root):
        if evt:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(evt["time"]))
            click.echo(f"{where:<16} {when}  {_age(now - evt['time']):>6}  {events.describe(evt)}  "
                       f"[{evt['id']}]")
        else:
            click.echo(f"{where:<16} {'-':<19}  {'-':>6}  (not an event: {problem})  "
                       f"[{events.clean(name)}]")
        count += 1
    if not count:
        click.echo(f"spool {root} is empty")
    for channel, tried in summary.failing(root).items():
        last = time.strftime("%H:%M:%S", time.localtime(tried["last_attempt"] or now))
        upcoming = tried["next_attempt"]
        next_at = time.strftime("%H:%M:%S", time.localtime(upcoming)) if upcoming and upcoming > now \
            else "the next `kachecks spool flush`"
        click.echo(f"{channel}: {tried['attempts']} attempt(s), last at {last}: {tried['last_error']}; "
                   f"next at {next_at}")
    return ExitCode.OK


@spool_group.command(name="list", cls=Command, context_settings=CONTEXT, epilog="""\b
Example (lvs1, relay down since 04:19):
  $ kachecks spool list
  mail             2026-11-26 04:19:40    12s  INSTANCE VI_1 MASTER prio 100  [1795666780…]
  expired:mail     2026-11-23 02:10:05    3.1d  RS [192.168.8.101]:tcp:80 DOWN  […]
  mail: 3 attempt(s), last at 04:19:52: smtp 192.168.8.25: relay answered 451 4.3.0 busy; next at 04:20:00

\b
  $ kachecks spool list --json | jq '.queues.mail.events, .events[0].channels'
  1
  [{"queue": "mail", "status": "sending", "attempts": 3, "last_attempt": "2026-11-26T03:19:52Z",
    "last_error": "smtp 192.168.8.25: relay answered 451 4.3.0 busy",
    "next_attempt": "2026-11-26T03:20:00Z"}]

--json: one document: "queues" (per queue: events, oldest_age_seconds, expired,
and per channel deliveries by result and, while failing, the batch's attempts),
"events" (each once, oldest first: id, created, age_seconds, the event's fields,
and "channels": queue, status incoming|queued|sending|expired, attempts,
last_attempt, last_error, next_attempt: null means the next deliverer, at the
latest the timer's `kachecks spool flush`), "problems" (files that are no event).
""")
@spool_options
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of lines (see below).")
def list_(as_json, **opts):
    """Show queued and expired events, oldest first, one per line."""
    return list_spool(opts, as_json)


def flush_spool(prog, opts):
    """``kachecks spool flush``: one delivery attempt; 1 if events remain."""
    cfg = load_config(opts)
    detach.hand_over(cfg.spool_dir)
    try:
        result = deliver.run(cfg, linger=False, wait_lock=cfg.smtp["timeout"] + 30, heartbeats=True)
    except OSError as exc:
        raise CommandFailed(f"spool {cfg.spool_dir}: {exc.strerror or exc}") from None
    if result is None:
        raise CommandFailed(f"another delivery is still running on {cfg.spool_dir}; try again later")
    left = result.left
    if result.heartbeats:
        click.echo(f"heartbeat spooled for {', '.join(channel for channel, _ in result.heartbeats)}")
    click.echo(f"delivered {result.delivered} event(s), {left} still queued")
    for channel, error in result.errors.items():
        click.echo(f"{prog}: {channel}: {error}", err=True)
    return ExitCode.FAILURE if left else ExitCode.OK


@spool_group.command(cls=Command, context_settings=CONTEXT, epilog="""\b
Examples:
  kachecks spool flush                  # what the systemd timer runs
  kachecks spool flush --smtp-host 192.168.8.25 --security none
""")
@config_options
@click.pass_context
def flush(ctx, **opts):
    """Deliver queued events now (one attempt; exit 1 if some remain).

    First it spools the heartbeats that are due ([notify] heartbeat, one
    per period per channel): the systemd timer running this every minute
    is what sends them.
    """
    return flush_spool(ctx.command_path, opts)


PURGE_WAIT = 90.0  # a deliverer asked to hand over finishes its current attempt first


def purge_spool(expired_only, opts):
    """``kachecks spool purge``: remove events under the lock, each one logged."""
    root = spool_dir(opts)
    detach.hand_over(root)
    wheres = ("expired",) if expired_only else store.EVERYWHERE
    removed = store.purge(root, wheres, wait=PURGE_WAIT)
    if removed is None:
        raise CommandFailed(f"another delivery is still running on {root}; try again later")
    click.echo(f"purged {removed} event(s) from {root}")
    return ExitCode.OK


@spool_group.command(cls=Command, context_settings=CONTEXT, epilog="""\b
Examples:
  kachecks spool purge --expired   # after reading them with `kachecks spool list`
  kachecks spool purge             # everything, queued events too
""")
@spool_options
@click.option("--expired", "expired_only", is_flag=True, help="Remove only expired events.")
def purge(expired_only, **opts):
    """Remove events from the spool (each one is logged to syslog)."""
    return purge_spool(expired_only, opts)


spool = spool_group  # the name kachecks/cli.py loads
