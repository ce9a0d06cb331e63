"""The webhook channel: one JSON POST per batch with requests.

The payload always has ``text`` (what Slack and Mattermost incoming webhooks
show); ``format = "json"`` adds the structured events for other receivers.
"""

from kachecks.notify.channels import Accepted, DeliveryError
from kachecks.notify.event import headline, public


def payload(events, cfg, msgid):
    lines = [headline(e, cfg.mail["subject"]) for e in events]
    body: dict[str, object] = {"text": "\n".join(lines)}
    if cfg.webhook["format"] == "json":
        body["message_id"] = msgid
        body["events"] = [public(e) for e in events]
    return body


def send(events, cfg, msgid):
    import requests

    hook = cfg.webhook
    verify = hook["cafile"] or hook["verify"]
    try:
        response = requests.post(hook["url"], json=payload(events, cfg, msgid), timeout=hook["timeout"],
                                 verify=verify, headers={"X-Kachecks-Message-Id": msgid})
    except requests.RequestException as exc:
        raise DeliveryError(f"webhook {hook['url']}: {type(exc).__name__}: {exc}") from None
    answer = f"HTTP {response.status_code} {response.reason or ''}".strip()
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"webhook {hook['url']}: {answer}")
    return Accepted(answer)
