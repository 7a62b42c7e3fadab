"""Notification inside a real `callscope serve`: alert instances written into the store (the seam's contract, with
the server stopped: it owns the file), a real SMTP server and a real webhook receiver reading back what arrived.

- A firing alert makes exactly one e-mail and one webhook; its resolution exactly one more of each; with the
  server SIGKILLed and restarted in between (also right after the messages went out), still exactly one of each.
- SMTP down: retries, the failure and the next try visible in the API; the server SIGKILLed meanwhile; when SMTP
  comes back, the e-mail arrives once. A webhook answering 500 then 200: delivered once.
- Silences through the API mute and, expired, unmute; bad input is a 400 naming the field.
- A bad notification config stops the start with the field named.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from callscope.cli import main
from core.store import connect
from tests.alert_rows import put_alert, resolve_alert
from tests.helpers import ServerProcess, free_port
from tests.notify_parts import SmtpSink, WebhookReceiver, html_part, text_part, wait_until

# aiosmtpd warns that it allows AUTH without TLS: the test server speaks plain SMTP on 127.0.0.1
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")]

PASSWORD = "Sm7p-pa55word-never-logged"
LABELS = {"alertname": "HighErrorRate", "severity": "critical", "service": "support-bot"}
NOTES = {
    "summary": "error rate 12.5% > 5%",
    "description": "support-bot fails more calls than usual",
    "dashboard_url": "http://dash.example/errors?service=support-bot&from=2026-03-02T08%3A00%3A00Z",
}


def write_config(data: Path, webhook_url: str, *, group_interval: str = "2s", extra: str = "") -> None:
    data.mkdir(parents=True, exist_ok=True)
    (data / "callscope.toml").write_text(
        f"""
smtp_security = "none"
smtp_user = "alerts"
smtp_from = "callscope@example.org"
dashboard_url = "http://dash.example"
notify_interval_seconds = 0.2
notify_retry_seconds = 0.3
notify_retry_max_seconds = 1
ingest_workers = 0
{extra}

[alerts.route]
receiver = "oncall"
group_by = ["alertname", "service"]
group_wait = "1s"
group_interval = "{group_interval}"
repeat_interval = "4h"

[[alerts.receivers]]
name = "oncall"
email_configs = [{{ to = ["oncall@example.com"] }}]
webhook_configs = [{{ url = "{webhook_url}/hook" }}]
"""
    )


def put(data: Path, **kwargs) -> None:
    """Write alert instances with the server stopped (DuckDB lets one process open the file)."""
    db = connect(data / "callscope.duckdb")
    try:
        for labels, fields in kwargs.get("alerts", []):
            put_alert(db, labels, **fields)
        for labels, at in kwargs.get("resolved", []):
            resolve_alert(db, labels, at)
    finally:
        db.close()


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


def test_firing_and_resolve_arrive_exactly_once_across_restarts_and_sigkill(tmp_path):
    sink = SmtpSink(user="alerts", password=PASSWORD).start()
    hooks = WebhookReceiver().start()
    data = tmp_path / "data"
    write_config(data, hooks.url)
    fired = datetime.now(UTC) - timedelta(minutes=2)
    put(data, alerts=[(LABELS, {"starts_at": fired, "value": 0.125, "threshold": 0.05, "annotations": NOTES})])
    logs = []
    try:
        server = serve(data, sink.port)
        [firing] = sink.wait_for(1)
        wait_until(lambda: len(hooks.delivered()) == 1, what="the firing webhook")
        assert firing["Subject"] == "[FIRING:1] HighErrorRate support-bot (critical): error rate 12.5% > 5%"
        assert sink.inbox.envelopes[0] == ("callscope@example.org", ["oncall@example.com"])
        text, html = text_part(firing), html_part(firing)
        assert "value: 0.125   threshold: 0.05" in text
        assert "value <b>0.125</b>, threshold <b>0.05</b>" in html
        assert f"view: {NOTES['dashboard_url']}" in text
        assert 'href="http://dash.example/errors?service=support-bot&amp;from=2026-03-02T08%3A00%3A00Z"' in html
        assert sink.logins == ["alerts"]

        # SIGKILL once the server has recorded both deliveries: nothing is sent again. (Killed in the milliseconds
        # between a receiver's acceptance and that record, a message goes out twice with the same Message-ID or
        # Idempotency-Key: test_notify_channels shows it; it is the one window no SMTP sender can close.)
        wait_until(lambda: api(server, "/alerts/notifications")["counts"] == {"sent": 2}, what="deliveries recorded")
        server.kill()
        logs.append(server.log())
        server = serve(data, sink.port)
        time.sleep(3)  # ~15 dispatcher ticks, the group's interval passes
        assert len(sink.messages) == 1 and len(hooks.delivered()) == 1
        assert server.stop() == 0
        logs.append(server.log())

        put(data, resolved=[(LABELS, datetime.now(UTC))])
        server = serve(data, sink.port)
        resolved = sink.wait_for(2)[1]
        wait_until(lambda: api(server, "/alerts/notifications")["counts"] == {"sent": 4}, what="deliveries recorded")
        server.kill()  # SIGKILL right after the resolve messages went out
        logs.append(server.log())
        server = serve(data, sink.port)
        wait_until(lambda: len(hooks.delivered()) == 2, what="the resolved webhook")
        time.sleep(3)
        assert len(sink.messages) == 2 and len(hooks.delivered()) == 2
        assert resolved["Subject"] == "[RESOLVED] HighErrorRate support-bot (critical): error rate 12.5% > 5%"
        assert "Resolved (1)" in text_part(resolved) and "Firing" not in text_part(resolved)
        assert resolved["Message-ID"] != firing["Message-ID"]
        bodies = [h.body for h in hooks.delivered()]
        assert [b["status"] for b in bodies] == ["firing", "resolved"]
        assert all(b["version"] == "4" and b["alerts"][0]["labels"] == LABELS for b in bodies)

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
    put(data, alerts=[(LABELS, {"starts_at": datetime.now(UTC) - timedelta(minutes=1), "annotations": NOTES})])
    sink = SmtpSink(port=smtp_port, user="alerts", password=PASSWORD)
    try:
        server = serve(data, smtp_port)  # no SMTP server listens yet
        wait_until(lambda: len(hooks.delivered()) == 1, what="the webhook after its 500")
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

        put(data, alerts=[(LABELS, {"starts_at": datetime.now(UTC) - timedelta(minutes=1), "annotations": NOTES})])
        server = serve(data, sink.port)
        time.sleep(3)
        assert sink.messages == []  # silenced
        url = server.http_url + "/api/v1/alerts/silences"
        expired = httpx.delete(f"{url}/{silence['id']}", timeout=10)
        assert expired.status_code == 200 and expired.json()["state"] == "expired"
        assert httpx.delete(f"{url}/{silence['id']}", timeout=10).status_code == 409
        assert httpx.delete(f"{url}/nope", timeout=10).status_code == 404
        sink.wait_for(1)  # no longer muted: told at the group's next flush
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
