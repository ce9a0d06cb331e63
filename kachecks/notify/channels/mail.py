"""The mail channel: one message per batch over SMTP with aiosmtplib.

Works with aiosmtplib 2.0 (Debian bookworm) and the newest: STARTTLS is driven
by hand (ehlo, then starttls when offered) because the connect-time
``start_tls`` default changed between versions.
"""

import email.utils
import socket
from email.message import EmailMessage

from kachecks.errors import UsageError
from kachecks.notify.channels import Accepted, DeliveryError
from kachecks.notify.event import body, headline
from kachecks.secrets import read_password_file


def password(path):
    """The SMTP password from ``smtp.password_file`` (mode 0600/0640 at most)."""
    try:
        return read_password_file(path)
    except UsageError as exc:
        raise DeliveryError(f"smtp.password_file: {exc}") from None


def from_address(cfg):
    """``mail.from``, else kachecks@ this host's fully qualified name.

    A name without a domain (``kachecks@lvs1``) is what relays reject, so
    rather than send that, the mail waits and the error asks for mail.from.
    """
    if cfg.mail["from"]:
        return cfg.mail["from"]
    short = socket.gethostname()
    name = short if "." in short else socket.getfqdn(short)
    if "." not in name or name.startswith("localhost") or name.endswith(".localdomain"):
        raise DeliveryError(f"mail.from is not set and this host's name ({short}) has no domain "
                            "(see `hostname -f`); set it in the configuration, e.g. "
                            f'from = "kachecks@{short}.example.org"')
    return f"kachecks@{name}"


def compose(events, cfg, msgid):
    mail = cfg.mail
    subject = headline(events[0], mail["subject"])
    if len(events) > 1:
        subject += f" (+{len(events) - 1} more)"
    separator = "\n" + "-" * 60 + "\n\n"
    text = separator.join(body(e, mail["body"]) for e in events)
    msg = EmailMessage()
    msg["From"] = from_address(cfg)
    msg["To"] = ", ".join(mail["to"])
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg["Message-ID"] = msgid
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Kachecks-Events"] = " ".join(e["id"] for e in events)
    msg.set_content(text)
    return msg


def tls_context(cafile, verify):
    import ssl

    ctx = ssl.create_default_context(cafile=cafile or None)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def _send(msg, cfg):
    import aiosmtplib

    smtp = cfg.smtp
    security = smtp["security"]
    port = smtp["port"] or (465 if security == "tls" else 25)
    ctx = tls_context(smtp["cafile"], smtp["verify"]) if security != "none" else None
    client = aiosmtplib.SMTP(
        hostname=smtp["host"], port=port, timeout=smtp["timeout"],
        use_tls=security == "tls", start_tls=False, tls_context=ctx,
        local_hostname=smtp["helo"] or None,
    )
    await client.connect()
    try:
        await client.ehlo()
        if security == "starttls" and client.supports_extension("starttls"):
            await client.starttls(tls_context=ctx)
        if smtp["username"]:
            secret = password(smtp["password_file"]) if smtp["password_file"] else ""
            await client.login(smtp["username"], secret)
        refused, answer = await client.send_message(msg, recipients=cfg.mail["to"])
        # 250 is the one success reply to the end of DATA (RFC 5321); aiosmtplib keeps only its text
        return Accepted(f"250 {answer}".strip(),
                        {address: f"{reply.code} {reply.message}" for address, reply in refused.items()})
    finally:
        try:
            await client.quit()
        except Exception:  # the message is already accepted (or not); QUIT is courtesy
            client.close()


def send(events, cfg, msgid):
    """Deliver one batch: the relay's Accepted, or DeliveryError with one readable line."""
    import asyncio

    msg = compose(events, cfg, msgid)
    try:
        return asyncio.run(_send(msg, cfg))
    except DeliveryError:
        raise
    except Exception as exc:  # aiosmtplib, ssl and OS errors all mean "not delivered"
        raise DeliveryError(f"smtp {cfg.smtp['host']}: {_why(exc, cfg.smtp['timeout'])}") from None


def _why(exc, timeout=None):
    """The relay's answer in one line: ``relay answered 451 4.3.0 busy``, every refused
    recipient with its answer, or what went wrong on the way."""
    if isinstance(getattr(exc, "recipients", None), list):  # SMTPRecipientsRefused: all of them
        text = "relay refused every recipient: " + "; ".join(
            f"{getattr(r, 'recipient', '?')}: {getattr(r, 'code', '?')} {getattr(r, 'message', r)}"
            for r in exc.recipients)
    elif isinstance(getattr(exc, "code", None), int) and getattr(exc, "message", None):
        text = f"relay answered {exc.code} {exc.message}"  # SMTPResponseException
    else:
        text = str(exc).strip() or type(exc).__name__
        if isinstance(exc, TimeoutError) and timeout is not None:
            text += f" (smtp.timeout = {timeout:g} s)"
    return " ".join(text.split())
