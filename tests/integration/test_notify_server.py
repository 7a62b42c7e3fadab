"""Notification inside a real `callscope serve`, driven end to end: calls sent over OTLP (the OpenTelemetry SDK's
exporter, with their own timestamps) breach a real rule of the alerts YAML file, evaluation fires it, and a real
SMTP server and a real webhook receiver read back what arrived.

- Breaching calls make exactly one e-mail and one webhook with the value (checked against numpy over the calls
  sent and against the read API), the threshold and the dashboard link; calls that bring the error rate back under
  the threshold make exactly one more of each; with the server SIGKILLed and restarted in between (also right
  after the messages went out), still exactly one of each.
- SMTP down: retries, the failure and the next try visible in the API; the server SIGKILLed meanwhile; when SMTP
  comes back, the e-mail arrives once. A webhook answering 500 then 200: delivered once.
- Silences through the API mute a real firing alert and, expired, unmute it; bad input is a 400 naming the field.
- A bad notification config stops the start with the field named.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import numpy as np
import pytest

from callscope.cli import main
from tests.alert_calls import SentCall, calls_in_slot, export_calls, slot_start
from tests.helpers import ServerProcess, free_port
from tests.notify_parts import SmtpSink, WebhookReceiver, html_part, notify_toml, text_part, wait_until

# aiosmtpd warns that it allows AUTH without TLS: the test server speaks plain SMTP on 127.0.0.1
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")]

PASSWORD = "Sm7p-pa55word-never-logged"
RULE = "HighErrorRate"
LABELS = {"alertname": RULE, "severity": "critical", "service": "support-bot"}
# Evaluated every 10 s over the last 5 minutes: calls placed in one 10 s slot stay in the window for the whole test.
RULES = f"""\
rules:
  - name: {RULE}
    metric: error_rate
    filters: {{service: support-bot}}
    group_by: [service]
    window: 5m
    op: ">"
    critical: 0.05
    min_calls: 10
    for: 0s
    interval: 10s
    summary: "error rate {{{{value}}}} over {{{{window}}}} (threshold {{{{threshold}}}})"
    description: "{{{{group}}}}: {{{{calls}}}} calls in the window"
"""
# 3 of 24 support-bot calls fail (12.5% > 5%); another service's failures are outside the rule's filter.
BREACH = [i % 8 == 5 for i in range(24)]
NOISE = [True] * 10
# 56 more calls that succeed: 3 of 80 fail (3.75% <= 5%), the alert resolves.
CLEAR = [False] * 56


def write_config(data: Path, webhook_url: str, *, group_interval: str = "2s", extra: str = "") -> None:
    data.mkdir(parents=True, exist_ok=True)
    (data / "alerts.yaml").write_text(RULES)  # the default alerts_file: <data-dir>/alerts.yaml
    (data / "callscope.toml").write_text(
        notify_toml(webhook_url, group_interval=group_interval, extra='smtp_user = "alerts"\n' + extra)
    )


def serve(data: Path, smtp_port: int) -> ServerProcess:
    env = {
        "CALLSCOPE_SMTP_HOST": "127.0.0.1",
        "CALLSCOPE_SMTP_PORT": str(smtp_port),
        "CALLSCOPE_SMTP_PASSWORD": PASSWORD,
    }
    return ServerProcess(data, env=env).start()


def api(server: ServerProcess, path: str, **params) -> dict:
    response = httpx.get(server.http_url + "/api/v1" + path, params=params, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def send(server: ServerProcess, errors: list[bool]) -> list[SentCall]:
    """support-bot calls (and another service's failures) in the last whole 10 s slot; returns those sent."""
    slot = slot_start(datetime.now(UTC))
    calls = calls_in_slot(slot, errors) + calls_in_slot(slot, NOISE, service="search-rerank")
    export_calls(server.http_url, calls)
    return calls


def error_rate(calls: list[SentCall]) -> float:
    """The rule's value computed independently: the failed share of the support-bot calls."""
    return float(np.mean([c.error for c in calls if c.service == "support-bot"]))


def instance(server: ServerProcess) -> dict | None:
    found = api(server, "/alerts/instances", rule=RULE)["instances"]
    return next((i for i in found if i["labels"] == LABELS), None)


def firing_instance(server: ServerProcess) -> dict:
    return wait_until(
        lambda: (i := instance(server)) is not None and i["state"] == "firing" and i,
        timeout=30,
        what="the alert firing",
    )


def evaluated_after(server: ServerProcess, instant: str) -> None:
    """Wait for an evaluation later than `instant` (an ISO last_eval_at), i.e. one made by this server process."""
    wait_until(
        lambda: (i := instance(server)) is not None and datetime.fromisoformat(i["last_eval_at"]) > at(instant),
        timeout=30,
        what="an evaluation by the restarted server",
    )


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def pct(ratio: float) -> str:
    return f"{ratio * 100:.2f}%"


def test_firing_and_resolve_arrive_exactly_once_across_restarts_and_sigkill(tmp_path):
    sink = SmtpSink(user="alerts", password=PASSWORD).start()
    hooks = WebhookReceiver().start()
    data = tmp_path / "data"
    write_config(data, hooks.url)
    logs = []
    try:
        server = serve(data, sink.port)
        sent = send(server, BREACH)
        rate = error_rate(sent)
        assert rate == 0.125
        [firing] = sink.wait_for(1)
        wait_until(lambda: len(hooks.delivered()) == 1, what="the firing webhook")
        inst = firing_instance(server)
        starts = at(inst["starts_at"])
        assert inst["value"] == rate and inst["threshold"] == 0.05
        # the value is the read API's number for the rule's window and filter
        window = {"from": (starts - timedelta(minutes=5)).isoformat(), "to": starts.isoformat()}
        stats = api(server, "/stats", **window, service="support-bot", metrics="error_rate,calls")["data"]
        assert stats == [{"error_rate": rate, "calls": 24}]

        summary = f"error rate {pct(rate)} over 5m (threshold 5.00%)"
        assert firing["Subject"] == f"[FIRING:1] HighErrorRate support-bot (critical): {summary}"
        assert sink.inbox.envelopes[0] == ("callscope@example.org", ["oncall@example.com"])
        text, html = text_part(firing), html_part(firing)
        assert "value: 0.125   threshold: 0.05" in text
        assert "value <b>0.125</b>, threshold <b>0.05</b>" in html
        assert "service=support-bot: 24 calls in the window" in text
        # the Errors page over the evaluated window, filtered to the instance's service
        query = [("from", window["from"]), ("to", window["to"]), ("service", "support-bot")]
        link = "http://dash.example/errors?" + urlencode([(k, v.replace("+00:00", "Z")) for k, v in query])
        assert f"view: {link}" in text
        assert f'href="{link.replace("&", "&amp;")}"' in html
        assert sink.logins == ["alerts"]
        [hook] = hooks.delivered()
        assert hook.body["alerts"][0]["startsAt"] == starts.isoformat().replace("+00:00", "Z")
        assert hook.body["alerts"][0]["generatorURL"] == link
        assert (hook.body["alerts"][0]["value"], hook.body["alerts"][0]["threshold"]) == (rate, 0.05)

        # SIGKILL once the server has recorded both deliveries: nothing is sent again. (Killed in the milliseconds
        # between a receiver's acceptance and that record, a message goes out twice with the same Message-ID or
        # Idempotency-Key: test_notify_channels shows it; it is the one window no SMTP sender can close.)
        wait_until(lambda: api(server, "/alerts/notifications")["counts"] == {"sent": 2}, what="deliveries recorded")
        last_eval = instance(server)["last_eval_at"]
        server.kill()
        logs.append(server.log())
        server = serve(data, sink.port)
        evaluated_after(server, last_eval)  # the restarted server finds the alert still firing...
        time.sleep(3)  # ...and its group's interval passes (~15 dispatcher ticks): nothing new to tell
        assert len(sink.messages) == 1 and len(hooks.delivered()) == 1
        assert instance(server)["starts_at"] == inst["starts_at"]  # the same alert, not a new one
        assert server.stop() == 0
        logs.append(server.log())

        server = serve(data, sink.port)
        sent += send(server, CLEAR)
        resolved_rate = error_rate(sent)
        assert resolved_rate == 0.0375
        resolved = sink.wait_for(2)[1]
        wait_until(lambda: api(server, "/alerts/notifications")["counts"] == {"sent": 4}, what="deliveries recorded")
        last_eval = instance(server)["last_eval_at"]
        server.kill()  # SIGKILL right after the resolve messages went out
        logs.append(server.log())
        server = serve(data, sink.port)
        evaluated_after(server, last_eval)
        wait_until(lambda: len(hooks.delivered()) == 2, what="the resolved webhook")
        time.sleep(3)
        assert len(sink.messages) == 2 and len(hooks.delivered()) == 2
        ended = instance(server)
        assert ended["state"] == "normal" and ended["value"] == resolved_rate and ended["ends_at"] is not None
        summary = f"error rate {pct(resolved_rate)} over 5m (threshold 5.00%)"  # as it read when it resolved
        assert resolved["Subject"] == f"[RESOLVED] HighErrorRate support-bot (critical): {summary}"
        assert "Resolved (1)" in text_part(resolved) and "Firing" not in text_part(resolved)
        assert "value: 0.0375   threshold: 0.05" in text_part(resolved)
        assert "service=support-bot: 80 calls in the window" in text_part(resolved)
        assert resolved["Message-ID"] != firing["Message-ID"]
        bodies = [h.body for h in hooks.delivered()]
        assert [b["status"] for b in bodies] == ["firing", "resolved"]
        assert all(b["version"] == "4" and b["alerts"][0]["labels"] == LABELS for b in bodies)
        assert bodies[1]["alerts"][0]["startsAt"] == bodies[0]["alerts"][0]["startsAt"]
        assert bodies[1]["alerts"][0]["endsAt"] == at(ended["ends_at"]).isoformat().replace("+00:00", "Z")
        history = api(server, "/alerts/history", rule=RULE)["history"]
        changes = [(h["from_state"], h["to_state"]) for h in reversed(history) if h["labels"] == LABELS]
        assert changes == [("normal", "firing"), ("firing", "normal")]

        shown = api(server, "/alerts/notifications")
        assert shown["counts"] == {"sent": 4}
        assert sorted((n["channel_type"], n["reason"], n["attempts"]) for n in shown["notifications"]) == [
            ("email", "all_alerts_resolved", 1),
            ("email", "first_notification", 1),
            ("webhook", "all_alerts_resolved", 1),
            ("webhook", "first_notification", 1),
        ]
        receivers = api(server, "/alerts/receivers")
        assert receivers["smtp"]["password"] == "<set>"
        assert "/hook" not in str(receivers) and PASSWORD not in str(receivers)
        assert server.stop() == 0
        logs.append(server.log())
        assert all(PASSWORD not in log for log in logs)
        assert "sent notification" in logs[0]
    finally:
        sink.stop()
        hooks.stop()


def test_smtp_down_then_back_and_a_webhook_500_then_200_deliver_once(tmp_path):
    smtp_port = free_port()
    hooks = WebhookReceiver([500, 200]).start()
    data = tmp_path / "data"
    write_config(data, hooks.url)
    sink = SmtpSink(port=smtp_port, user="alerts", password=PASSWORD)
    try:
        server = serve(data, smtp_port)  # no SMTP server listens yet
        send(server, BREACH)
        wait_until(lambda: len(hooks.delivered()) == 1, timeout=30, what="the webhook after its 500")
        assert [h.status for h in hooks.all()] == [500, 200]

        def email_retrying():
            rows = api(server, "/alerts/notifications", status="retrying")["notifications"]
            return rows if rows and rows[0]["attempts"] >= 2 else None

        [row] = wait_until(email_retrying, what="retries of the e-mail")
        assert row["channel_type"] == "email" and "Connection refused" in row["last_error"]
        assert row["next_attempt_at"] is not None and row["sent_at"] is None
        hook_row = api(server, "/alerts/notifications", status="sent")["notifications"][0]
        assert hook_row["channel_type"] == "webhook" and hook_row["attempts"] == 2
        detail = api(server, f"/alerts/notifications/{row['id']}")
        assert detail["payload"]["alerts"][0]["labels"] == LABELS

        server.kill()  # the queued e-mail survives a SIGKILL
        server = serve(data, smtp_port)
        sink.start()  # SMTP back
        [msg] = sink.wait_for(1)
        assert msg["Subject"].startswith("[FIRING:1] HighErrorRate")
        wait_until(lambda: api(server, f"/alerts/notifications/{row['id']}")["status"] == "sent", what="sent")
        time.sleep(2)
        assert len(sink.messages) == 1 and len(hooks.all()) == 2
        sent = api(server, f"/alerts/notifications/{row['id']}")
        assert sent["attempts"] >= 3 and sent["last_error"] is None
        assert server.stop() == 0
    finally:
        sink.stop()
        hooks.stop()


def test_silences_through_the_api(tmp_path):
    sink = SmtpSink(user="alerts", password=PASSWORD).start()
    hooks = WebhookReceiver().start()
    data = tmp_path / "data"
    write_config(data, hooks.url, group_interval="1s")
    try:
        server = serve(data, sink.port)
        url = server.http_url + "/api/v1/alerts/silences"
        bad = [
            ({"matchers": [], "duration": "1h", "created_by": "a", "comment": "b"}, "matchers: required"),
            ({"matchers": ['service=~"("'], "duration": "1h", "created_by": "a", "comment": "b"}, "matchers[0]:"),
            ({"matchers": ['service=""'], "duration": "1h", "created_by": "a", "comment": "b"}, "matchers: at least"),
            ({"matchers": ["service=x"], "created_by": "a", "comment": "b"}, "ends_at: give ends_at or duration"),
            ({"matchers": ["service=x"], "duration": "1h", "comment": "b"}, "created_by: required"),
            (
                {"matchers": ["service=x"], "ends_at": "tomorrow", "created_by": "a", "comment": "b"},
                "ends_at: 'tomorrow'",
            ),
            ({"matchers": ["service=x"], "duration": "1h", "created_by": "a", "comment": "b", "x": 1}, "x: unknown"),
        ]
        for body, error in bad:
            response = httpx.post(url, json=body, timeout=10)
            assert response.status_code == 400 and response.json()["error"].startswith(error), response.text
        created = httpx.post(
            url,
            json={
                "matchers": [{"name": "service", "value": "support-.*", "isRegex": True}],
                "duration": "2h",
                "created_by": "sre@example.com",
                "comment": "maintenance",
            },
            timeout=10,
        )
        assert created.status_code == 201, created.text
        silence = created.json()
        assert silence["state"] == "active" and silence["matchers"][0]["text"] == 'service=~"support-.*"'
        assert [s["id"] for s in api(server, "/alerts/silences", state="active")["silences"]] == [silence["id"]]
        assert server.stop() == 0

        server = serve(data, sink.port)  # the silence is kept in the store
        send(server, BREACH)
        firing_instance(server)
        # the dispatcher sees the alert in its group and flushes it every second, but the silence mutes it
        group = wait_until(lambda: api(server, "/alerts/groups")["groups"], what="the alert's group")
        assert [g["labels"] for g in group] == [{"alertname": RULE, "service": "support-bot"}]
        time.sleep(3)
        assert sink.messages == [] and hooks.all() == []  # silenced
        assert [g["log"] for g in api(server, "/alerts/groups")["groups"]] == [[]]
        assert api(server, "/alerts/notifications")["notifications"] == []
        url = server.http_url + "/api/v1/alerts/silences"
        expired = httpx.delete(f"{url}/{silence['id']}", timeout=10)
        assert expired.status_code == 200 and expired.json()["state"] == "expired"
        assert httpx.delete(f"{url}/{silence['id']}", timeout=10).status_code == 409
        assert httpx.delete(f"{url}/nope", timeout=10).status_code == 404
        [msg] = sink.wait_for(1)  # no longer muted: told at the group's next flush
        assert msg["Subject"].startswith("[FIRING:1] HighErrorRate support-bot (critical): error rate 12.50%")
        wait_until(lambda: len(hooks.delivered()) == 1, what="the webhook")
        reasons = [n["reason"] for n in api(server, "/alerts/notifications")["notifications"]]
        assert reasons == ["first_notification", "first_notification"]
        assert server.stop() == 0
    finally:
        sink.stop()
        hooks.stop()


def test_bad_notification_config_stops_the_start_naming_the_field(tmp_path, capsys):
    data = tmp_path / "data"
    write_config(data, "http://127.0.0.1:9")
    config = (data / "callscope.toml").read_text().replace('"oncall@example.com"', '"not-an-address"')
    (data / "callscope.toml").write_text(config)
    assert main(["serve", "--data-dir", str(data), "--smtp-host", "127.0.0.1"]) == 2
    assert "alerts.receivers[0].email_configs[0].to[0]: 'not-an-address' is not an e-mail address" in (
        capsys.readouterr().err
    )
    write_config(data, "http://127.0.0.1:9")
    assert main(["serve", "--data-dir", str(data)]) == 2  # e-mail receiver, no smtp_host
    assert "receiver 'oncall' sends e-mail, but smtp_host is not set" in capsys.readouterr().err
