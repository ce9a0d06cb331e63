"""``kachecks notify``, ``kachecks fifo`` and ``kachecks spool`` (docs/notifications.md).

``notify`` runs in the process keepalived waits for (and SIGKILLs for STOP
after 1 s): it parses, spools durably, logs, starts a detached deliverer and
returns. asyncio, aiosmtplib and requests are imported only by the deliverer.
"""

import os
import sys
import time

import click

from kachecks import syslogger
from kachecks.errors import UsageError
from kachecks.notify import config as configuration
from kachecks.notify import deliver, event as events
from kachecks.notify import spool as store
from kachecks.notify.deliver import log
from kachecks.secrets import read_password_file

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def fail(prog, message, code=1):
    """One line on stderr and in syslog, then exit ``code``."""
    click.echo(f"{prog}: {message}", err=True)
    log(f"{prog}: {message}", syslogger.LOG_ERR)
    sys.exit(code)


class OneLineCommand(click.Command):
    """Usage mistakes and unusable files give one line and exit 1 (no traceback, no exit 2)."""

    def prog(self, ctx):
        return ctx.command_path if ctx else f"kachecks {self.name}"

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            fail(self.prog(ctx), f"{exc.format_message()} (see --help)")

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            fail(self.prog(ctx), f"{where}{exc.strerror or exc}")


def config_options(func):
    """--config and the overrides shared by every notify command."""
    options = [
        click.option("--config", "config_path", metavar="FILE",
                     help="TOML configuration [default: $KACHECKS_CONFIG or /etc/kachecks/kachecks.toml]."),
        click.option("--spool-dir", metavar="DIR", help="Spool directory (overrides [spool] dir)."),
        click.option("--smtp-host", metavar="HOST", help="Mail relay (overrides [smtp] host)."),
        click.option("--smtp-port", type=int, metavar="PORT", help="Relay port (overrides [smtp] port)."),
        click.option("--security", type=click.Choice(["starttls", "tls", "none"]),
                     help="Relay security (overrides [smtp] security)."),
        click.option("--to", "mail_to", multiple=True, metavar="ADDR",
                     help="Recipient; repeat for several (overrides [mail] to)."),
        click.option("--webhook-url", metavar="URL", help="Webhook URL (overrides [webhook] url)."),
        click.option("--batch-window", type=float, metavar="SECONDS",
                     help="Batch events this close together (overrides [spool] batch_window)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def load_config(prog, opts, on_error=None):
    """The validated config; on error one line, ``on_error(spool_dir, message)``, exit 1."""
    overrides = {
        "spool.dir": opts.pop("spool_dir"), "smtp.host": opts.pop("smtp_host"),
        "smtp.port": opts.pop("smtp_port"), "smtp.security": opts.pop("security"),
        "mail.to": opts.pop("mail_to"), "webhook.url": opts.pop("webhook_url"),
        "spool.batch_window": opts.pop("batch_window"),
    }
    path = opts.pop("config_path")
    try:
        return configuration.load(path, overrides)
    except configuration.ConfigError as exc:
        message = str(exc)
        if on_error:
            message = on_error(overrides["spool.dir"] or configuration.DEFAULT_SPOOL, message)
        fail(prog, message)


def warn_password_file(prog, cfg):
    """A bad password file is found now, not hours later by the deliverer."""
    path = cfg.smtp["password_file"]
    if "mail" not in cfg.channels() or not cfg.smtp["username"] or not path:
        return
    try:
        read_password_file(path)
    except UsageError as exc:
        click.echo(f"{prog}: warning: smtp.password_file: {exc}; mail stays in the spool", err=True)
        log(f"{prog}: smtp.password_file: {exc}", syslogger.LOG_ERR)


def accept(prog, evt, cfg):
    """Spool durably first, then log, then make sure a deliverer runs."""
    try:
        store.put(cfg.spool_dir, evt)
    except store.SpoolError as exc:
        fail(prog, f"{exc} — event NOT queued: {events.describe(evt)}")
    log(f"event {events.describe(evt)} (from {evt['source']}, spooled as {evt['id']})",
        syslogger.LOG_NOTICE)
    deliver.kick(cfg)  # even without channels: the deliverer empties incoming/


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

Exit status: 0 once the event is spooled (delivery runs detached and
retries on its own), 1 if it could not be spooled or the input is invalid.
"""


@click.command(cls=OneLineCommand, context_settings=CONTEXT, epilog=NOTIFY_EPILOG,
               short_help="Queue one keepalived state change for mail/webhook.")
@config_options
@click.argument("event_args", nargs=-1, metavar="TYPE NAME STATE [PRIORITY]")
def notify(event_args, **opts):
    """Queue one keepalived state change and deliver it in the background.

    TYPE is INSTANCE, GROUP, RS or VS; STATE is a keepalived state (MASTER,
    BACKUP, FAULT, STOP, DELETED, UP, DOWN…); PRIORITY is what the generic
    `notify` appends (an instance's effective priority, 0 for a group).
    For RS the real server may be followed by its virtual server.
    The event is written to the spool (fsync) before anything else, so
    keepalived's SIGKILL of STOP scripts cannot lose it.
    """
    prog = "kachecks notify"
    try:
        evt = events.from_argv(event_args)
    except events.EventError as exc:
        fail(prog, str(exc))

    def keep_event(spool_dir, message):
        """A broken config must not lose the event: spool it where we can, deliver later."""
        try:
            store.put(spool_dir, evt)
        except store.SpoolError:
            return f"{message} — event NOT queued: {events.describe(evt)}"
        log(f"event {events.describe(evt)} (from notify, spooled as {evt['id']}, not delivered "
            "until the configuration is fixed)", syslogger.LOG_NOTICE)
        return f"{message} — event kept in {spool_dir}; fix it, then run `kachecks spool flush`"

    cfg = load_config(prog, opts, on_error=keep_event)
    accept(prog, evt, cfg)
    warn_password_file(prog, cfg)


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


@click.command(cls=OneLineCommand, context_settings=CONTEXT, epilog=FIFO_EPILOG,
               short_help="Read keepalived's notify FIFO (notify_fifo_script).")
@config_options
@click.argument("fifo_path", metavar="FIFO")
def fifo(fifo_path, **opts):
    """Read state changes from keepalived's notify FIFO until EOF.

    Each line is spooled and delivered like `kachecks notify`. A malformed
    line is logged and skipped. After SIGTERM (keepalived shutting down) it
    keeps reading until keepalived closes the FIFO, so the STOP lines are not
    lost. Started twice on one FIFO, the second waits and takes over when the
    first exits.
    """
    from kachecks.notify import fifo as reader

    prog = "kachecks fifo"
    cfg = load_config(prog, opts)
    warn_password_file(prog, cfg)

    def on_line(line):
        try:
            evt = events.from_fifo_line(line)
        except events.EventError as exc:
            click.echo(f"{prog}: skipped: {exc}", err=True)
            log(f"{prog}: skipped: {exc}", syslogger.LOG_WARNING)
            return
        try:
            accept(prog, evt, cfg)
        except SystemExit:  # could not spool: already said and logged; keep reading
            pass
        except Exception as exc:  # the reader must outlive any one event
            log(f"{prog}: {events.describe(evt)}: {type(exc).__name__}: {exc}", syslogger.LOG_ERR)

    try:
        reader.read(fifo_path, cfg.spool_dir, on_line, log)
    except (reader.FifoError, store.SpoolError) as exc:
        fail(prog, str(exc))


SPOOL_EPILOG = """\b
Examples:
  kachecks spool list
  kachecks spool flush            # what the systemd timer runs
  kachecks spool purge --expired  # forget events that expired undelivered
  kachecks spool list --spool-dir /tmp/spool
"""


@click.group(context_settings=CONTEXT, epilog=SPOOL_EPILOG,
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


@spool_group.command(name="list", cls=OneLineCommand, context_settings=CONTEXT, epilog="""\b
Example (lvs1, relay down since 04:19):
  $ kachecks spool list
  mail             2026-11-26 04:19:40    12s  INSTANCE VI_1 MASTER prio 100  [1795666780…]
  expired:mail     2026-11-23 02:10:05    3.1d  RS [192.168.8.101]:tcp:80 DOWN  […]
""")
@config_options
def list_(**opts):
    """Show queued and expired events, oldest first, one per line."""
    cfg = load_config("kachecks spool list", opts)
    root, now, count = cfg.spool_dir, time.time(), 0
    for where in ("incoming",) + store.CHANNELS + ("expired",):
        for name in store.names(root, where):
            evt = store.read_json(os.path.join(root, where, name)) or {}
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(evt.get("time", 0)))
            label = where if where != "expired" else "expired:" + name[:-5].rsplit(".", 1)[-1]
            text = events.describe(evt) if evt.get("type") else "(unreadable)"
            click.echo(f"{label:<16} {when}  {_age(now - evt.get('time', now)):>6}  {text}  [{evt.get('id', name)}]")
            count += 1
    if not count:
        click.echo(f"spool {root} is empty")


@spool_group.command(cls=OneLineCommand, context_settings=CONTEXT, epilog="""\b
Examples:
  kachecks spool flush                  # what the systemd timer runs
  kachecks spool flush --smtp-host 192.168.8.25 --security none
""")
@config_options
def flush(**opts):
    """Deliver queued events now (one attempt; exit 1 if some remain)."""
    prog = "kachecks spool flush"
    cfg = load_config(prog, opts)
    deliver.hand_over(cfg)
    try:
        result = deliver.run(cfg, linger=False, wait_lock=cfg.smtp["timeout"] + 30)
    except OSError as exc:
        fail(prog, f"spool {cfg.spool_dir}: {exc.strerror or exc}")
    if result is None:
        fail(prog, f"another delivery is still running on {cfg.spool_dir}; try again later")
    left = result.pending()
    click.echo(f"delivered {result.delivered} event(s), {left} still queued")
    for channel, error in result.errors.items():
        click.echo(f"{prog}: {channel}: {error}", err=True)
    sys.exit(1 if left else 0)


@spool_group.command(cls=OneLineCommand, context_settings=CONTEXT, epilog="""\b
Examples:
  kachecks spool purge --expired   # after reading them with `kachecks spool list`
  kachecks spool purge             # everything, queued events too
""")
@config_options
@click.option("--expired", "expired_only", is_flag=True, help="Remove only expired events.")
def purge(expired_only, **opts):
    """Remove events from the spool (each one is logged to syslog)."""
    prog = "kachecks spool purge"
    cfg = load_config(prog, opts)
    root = cfg.spool_dir
    deliver.hand_over(cfg)
    lock = store.Lock(root)
    if not lock.acquire(wait=cfg.smtp["timeout"] + 30, record=False):  # not a deliverer: no SIGUSR1
        fail(prog, f"another delivery is still running on {root}; try again later")
    removed = 0
    try:
        for where in (("expired",) if expired_only else ("incoming",) + store.CHANNELS + ("expired",)):
            for name in store.names(root, where):
                path = os.path.join(root, where, name)
                evt = store.read_json(path) or {}
                store.remove(path)
                removed += 1
                log(f"purged from {where}: {events.describe(evt) if evt.get('type') else name}",
                    syslogger.LOG_WARNING)
            store.remove(os.path.join(root, where, ".batch"))
    finally:
        lock.release()
    click.echo(f"purged {removed} event(s) from {root}")


spool = spool_group  # the name kachecks/cli.py loads
