"""The webhook channel against a real HTTP server (pytest-httpserver)."""

import json

import pytest
from werkzeug import Response


def test_generic_json_webhook_gets_text_and_structured_events(notifier, httpserver):
    httpserver.expect_request("/hooks/kachecks", method="POST").respond_with_data("ok")
    notifier.configure(mail={"enabled": False}, webhook={"url": httpserver.url_for("/hooks/kachecks")})
    assert notifier.notify("INSTANCE", "VI_1", "BACKUP", "100").returncode == 0
    notifier.wait_delivered()
    (request, _), = httpserver.log
    body = json.loads(request.get_data())
    assert body["text"].endswith("VI_1: UNKNOWN -> BACKUP (prio 100)")
    (event,) = body["events"]
    assert (event["type"], event["name"], event["state"], event["priority"]) == ("INSTANCE", "VI_1", "BACKUP", 100)
    assert request.headers["X-Kachecks-Message-Id"] == body["message_id"]


@pytest.mark.slow
def test_slack_format_webhook_is_retried_until_accepted(notifier, httpserver):
    answers = iter([Response("busy", status=503), Response("ok", status=200)])
    httpserver.expect_request("/slack").respond_with_handler(lambda request: next(answers))
    notifier.configure(mail={"enabled": False}, webhook={"url": httpserver.url_for("/slack"), "format": "slack"})
    assert notifier.notify("RS", "[192.168.8.101]:tcp:80", "DOWN").returncode == 0
    notifier.wait_delivered()
    assert len(httpserver.log) == 2
    bodies = [json.loads(request.get_data()) for request, _ in httpserver.log]
    assert bodies[0] == bodies[1]
    assert list(bodies[1]) == ["text"]
    assert bodies[1]["text"].endswith("[192.168.8.101]:tcp:80: UNKNOWN -> DOWN")


def test_mail_and_webhook_both_get_the_event(notifier, relay, httpserver):
    httpserver.expect_request("/hook").respond_with_data("ok")
    notifier.configure(relay, webhook={"url": httpserver.url_for("/hook")})
    assert notifier.notify("INSTANCE", "VI_1", "MASTER", "100").returncode == 0
    (msg,) = relay.wait_for(1)
    notifier.wait_delivered()
    assert len(httpserver.log) == 1
    assert json.loads(httpserver.log[0][0].get_data())["message_id"] == msg["Message-ID"]


def test_the_agents_vrrp_problem_reaches_the_webhook_with_its_plain_text(notifier, httpserver):
    from kachecks.agent.pair import Poster
    from kachecks.notify import event

    httpserver.expect_request("/hook").respond_with_data("ok")
    notifier.configure(mail={"enabled": False}, webhook={"url": httpserver.url_for("/hook")})
    title = "SPLIT BRAIN (192.168.8.100 prio 100, 192.168.8.110 prio 50)"
    Poster(str(notifier.config))(event.make(event.VRRP, "VI_1", "SPLIT_BRAIN", source="agent",
                                             title=title, raw="split-brain (critical): …"))
    notifier.wait_delivered()
    (request, _), = httpserver.log
    body = json.loads(request.get_data())
    assert body["text"].endswith(f"] VI_1: {title}")
    (sent,) = body["events"]
    assert (sent["type"], sent["state"], sent["title"]) == ("VRRP", "SPLIT_BRAIN", title)
