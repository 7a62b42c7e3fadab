"""Channels and the delivery worker against real servers: an aiosmtpd SMTP server (plain, STARTTLS with a login,
implicit TLS) and an HTTP webhook receiver. Outbox rows are queued by the real dispatcher from alert_instances."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta

import pytest

from alerts import outbox
from alerts.delivery import DeliveryWorker, EmailSender, RetryPolicy, WebhookSender
from alerts.dispatch import Dispatcher
from alerts.email_render import alert_email, message_id
from alerts.notify_config import parse_notify_config
from alerts.smtp import DeliveryError, SmtpSettings, send
from core.store import connect
from tests.alert_rows import put_alert, resolve_alert
from tests.helpers import free_port
from tests.notify_parts import SmtpSink, WebhookReceiver, html_part, self_signed_cert, text_part

LABELS = {"alertname": "HighErrorRate", "severity": "critical", "service": "support-bot"}
# aiosmtpd warns about AUTH without STARTTLS on its implicit-TLS port (it cannot see the transport's TLS)
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

NOTES = {
    "summary": "error rate 12.5% > 5%",
    "description": "support-bot fails more calls than usual",
    "dashboard_url": "http://dash.example/errors?service=support-bot",
}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db(tmp_path):
    conn = connect(tmp_path / "s.duckdb")
    yield conn
    conn.close()


def queue_firing(db, config: dict, now: datetime) -> list[int]:
    put_alert(db, LABELS, starts_at=now - timedelta(minutes=5), value=0.125, threshold=0.05, annotations=NOTES)
    return Dispatcher(db, parse_notify_config(config), external_url="http://dash.example").tick(now).enqueued


def email_config(to: str = "oncall@example.com") -> dict:
    return {"receivers": [{"name": "oncall", "email_configs": [{"to": [to]}]}]}


def test_alert_email_over_starttls_with_login_and_a_private_ca(db, tmp_path):
    cert, key = self_signed_cert(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    sink = SmtpSink(user="alerts", password="s3cret-Passw0rd", tls_context=server_tls).start()
    try:
        now = datetime.now(UTC)
        [row_id] = queue_firing(db, email_config(), now)
        smtp = SmtpSettings(
            "localhost", sink.port, "starttls", "alerts", "s3cret-Passw0rd", "cs@example.org", str(cert)
        )
        assert "s3cret" not in repr(smtp)
        counts = DeliveryWorker(db, {"email": EmailSender(smtp)}).run_once(now)
        assert (counts.sent, counts.retrying, counts.failed) == (1, 0, 0)
        [msg] = sink.wait_for(1)
        assert sink.logins == ["alerts"]
        assert sink.inbox.envelopes == [("cs@example.org", ["oncall@example.com"])]
        assert msg["Subject"] == "[FIRING:1] HighErrorRate (support-bot critical): error rate 12.5% > 5%"
        assert msg["From"] == "cs@example.org" and msg["To"] == "oncall@example.com"
        row = outbox.get(db, row_id)
        assert row is not None and row.status is outbox.Status.SENT and row.attempts == 1
        assert msg["Message-ID"] == message_id(row, "example.org")
        # the same row renders the same Message-ID on a retry; another row another one
        assert alert_email(row, "cs@example.org", "example.org")["Message-ID"] == msg["Message-ID"]
        text, html = text_part(msg), html_part(msg)
        for part in (text, html):
            assert "0.125" in part and "0.05" in part
            assert "support-bot fails more calls than usual" in part
        assert "view: http://dash.example/errors?service=support-bot" in text
        assert 'href="http://dash.example/errors?service=support-bot"' in html
    finally:
        sink.stop()


def test_implicit_tls_and_a_wrong_password(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    sink = SmtpSink(user="alerts", password="right-one", implicit_tls=server_tls).start()
    try:
        from email.message import EmailMessage

        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = "hello", "cs@example.org", "a@example.com"
        msg.set_content("body")
        ok = SmtpSettings("localhost", sink.port, "tls", "alerts", "right-one", ca_file=str(cert))
        assert send(ok, msg) is None
        assert [m["Subject"] for m in sink.wait_for(1)] == ["hello"]
        wrong = SmtpSettings("localhost", sink.port, "tls", "alerts", "wrong-password-xyz", ca_file=str(cert))
        with pytest.raises(DeliveryError) as exc:
            send(wrong, msg)
        assert "refused the login of 'alerts'" in str(exc.value) and not exc.value.permanent
        assert "wrong-password-xyz" not in str(exc.value)
        unverified = SmtpSettings("localhost", sink.port, "tls")  # the system CAs do not know this certificate
        with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            send(unverified, msg)
    finally:
        sink.stop()


def test_smtp_down_retries_with_backoff_then_delivers_once(db):
    port = free_port()
    clock = Clock(datetime.now(UTC))
    [row_id] = queue_firing(db, email_config(), clock.now)
    policy = RetryPolicy(timedelta(seconds=10), timedelta(seconds=40), timedelta(hours=1))
    worker = DeliveryWorker(db, {"email": EmailSender(SmtpSettings("127.0.0.1", port, "none"))}, policy, clock)
    retry_at = []
    for _ in range(4):
        counts = worker.run_once(clock.now)
        assert counts.retrying == 1
        row = outbox.get(db, row_id)
        assert row is not None and row.status is outbox.Status.RETRYING
        assert "Connection refused" in (row.last_error or "")
        retry_at.append(row.next_attempt_at - clock.now)
        assert worker.run_once(clock.now).retrying == 0  # not due yet
        clock.now = row.next_attempt_at
    assert retry_at == [timedelta(seconds=s) for s in (10, 20, 40, 40)]  # doubling, capped
    sink = SmtpSink(port=port).start()
    try:
        assert worker.run_once(clock.now).sent == 1
        assert len(sink.wait_for(1)) == 1
        assert worker.run_once(clock.now + timedelta(hours=1)).sent == 0
        row = outbox.get(db, row_id)
        assert row is not None and row.status is outbox.Status.SENT and row.attempts == 5
        assert len(sink.messages) == 1
    finally:
        sink.stop()


def test_a_crash_between_acceptance_and_its_record_resends_the_same_message_id(db, monkeypatch):
    """The one window left: the SMTP server accepted the message, the process died before recording it. The next
    attempt sends it again, as the same message (same Message-ID), so a receiver can drop the copy."""
    sink = SmtpSink().start()
    try:
        now = datetime.now(UTC)
        [row_id] = queue_firing(db, email_config(), now)
        worker = DeliveryWorker(db, {"email": EmailSender(SmtpSettings("127.0.0.1", sink.port, "none"))})

        def die(*args, **kwargs):
            raise SystemExit("killed after the server accepted the message")

        monkeypatch.setattr(outbox, "mark_sent", die)
        with pytest.raises(SystemExit):
            worker.run_once(now)
        monkeypatch.undo()
        row = outbox.get(db, row_id)
        assert row is not None and row.status is outbox.Status.PENDING and row.attempts == 1
        assert worker.run_once(now).sent == 1
        first, second = sink.wait_for(2)
        assert first["Message-ID"] == second["Message-ID"]
        assert first["Message-ID"].startswith(f"<callscope.{row_id}.")
        assert worker.run_once(now + timedelta(hours=1)).sent == 0
    finally:
        sink.stop()


def test_delivery_gives_up_after_the_give_up_age(db):
    clock = Clock(datetime.now(UTC))
    [row_id] = queue_firing(db, email_config(), clock.now)
    policy = RetryPolicy(timedelta(minutes=10), timedelta(minutes=10), timedelta(minutes=20))
    worker = DeliveryWorker(db, {"email": EmailSender(SmtpSettings("127.0.0.1", free_port(), "none"))}, policy, clock)
    for _ in range(3):
        worker.run_once(clock.now)
        clock.now += timedelta(minutes=10)
    row = outbox.get(db, row_id)
    assert row is not None and row.status is outbox.Status.FAILED and row.attempts == 3
    assert row.last_error is not None and row.last_error.startswith("gave up after 3 attempts: cannot deliver")


def test_refused_recipient_fails_at_once(db):
    sink = SmtpSink().start()

    async def refuse(server, session, envelope, address, rcpt_options):
        return "550 no such user"

    sink.inbox.handle_RCPT = refuse  # type: ignore[attr-defined]
    sink.stop()
    sink.start()
    try:
        now = datetime.now(UTC)
        [row_id] = queue_firing(db, email_config("nobody@example.com"), now)
        counts = DeliveryWorker(db, {"email": EmailSender(SmtpSettings("127.0.0.1", sink.port, "none"))}).run_once(now)
        assert counts.failed == 1
        row = outbox.get(db, row_id)
        assert row is not None and row.status is outbox.Status.FAILED
        assert "refused every recipient: nobody@example.com (550 no such user)" in (row.last_error or "")
    finally:
        sink.stop()


def test_webhook_alertmanager_v4_and_slack_and_a_500_then_200(db):
    hooks = WebhookReceiver([500, 200]).start()
    slack = WebhookReceiver([200]).start()
    try:
        clock = Clock(datetime.now(UTC))
        config = {
            "route": {"receiver": "hooks", "group_by": ["alertname", "service"]},
            "receivers": [
                {
                    "name": "hooks",
                    "webhook_configs": [
                        {"url": hooks.url + "/alertmanager", "headers": {"authorization": "Bearer hook-token"}},
                        {"url": slack.url + "/services/T000/B000/XXXX", "format": "slack"},
                    ],
                }
            ],
        }
        ids = queue_firing(db, config, clock.now)
        worker = DeliveryWorker(db, {"webhook": WebhookSender()}, RetryPolicy(timedelta(seconds=5)), clock)
        counts = worker.run_once(clock.now)
        assert (counts.sent, counts.retrying) == (1, 1)
        failed = outbox.get(db, ids[0])
        assert failed is not None and failed.status is outbox.Status.RETRYING
        assert (
            failed.last_error
            == "http://127.0.0.1:" + hooks.url.rsplit(":", 1)[1] + "/… answered HTTP 500: receiver failed on purpose"
        )
        clock.now += timedelta(seconds=5)
        assert worker.run_once(clock.now).sent == 1
        clock.now += timedelta(minutes=30)
        assert worker.run_once(clock.now).sent == 0
        assert [h.status for h in hooks.all()] == [500, 200]
        delivered = hooks.delivered()
        assert len(delivered) == 1
        body = delivered[0].body
        assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "hooks"
        assert body["groupLabels"] == {"alertname": "HighErrorRate", "service": "support-bot"}
        assert body["commonLabels"] == LABELS and body["externalURL"] == "http://dash.example"
        assert body["truncatedAlerts"] == 0 and body["groupKey"].startswith("{}:{alertname=")
        [alert] = body["alerts"]
        assert alert["labels"] == LABELS and alert["annotations"] == NOTES
        assert alert["endsAt"] == "0001-01-01T00:00:00Z" and alert["startsAt"].endswith("Z")
        assert alert["generatorURL"] == NOTES["dashboard_url"] and alert["value"] == 0.125
        assert delivered[0].headers["authorization"] == "Bearer hook-token"
        assert delivered[0].headers["x-callscope-notification"] == str(ids[0])
        # the retry carried the same idempotency key as the failed attempt
        assert len({h.headers["idempotency-key"] for h in hooks.all()}) == 1
        [slack_post] = slack.delivered()
        assert slack_post.path == "/services/T000/B000/XXXX"
        assert slack_post.body["text"] == "[FIRING:1] HighErrorRate support-bot (critical): error rate 12.5% > 5%"
        [attachment] = slack_post.body["attachments"]
        assert attachment["color"] == "danger"
        assert f"<{NOTES['dashboard_url']}|error rate 12.5% > 5%>" in attachment["text"]
        # resolved: Alertmanager's "resolved" status and a real endsAt
        resolve_alert(db, LABELS, clock.now)
        d = Dispatcher(db, parse_notify_config(config), external_url="http://dash.example")
        d.tick(clock.now + timedelta(minutes=6))
        worker.run_once(clock.now + timedelta(minutes=6))
        resolved = hooks.delivered()[-1].body
        assert resolved["status"] == "resolved" and resolved["alerts"][0]["endsAt"].endswith("Z")
        assert slack.delivered()[-1].body["attachments"][0]["color"] == "good"
    finally:
        hooks.stop()
        slack.stop()


def test_webhook_4xx_is_final_and_the_url_secret_is_masked(db):
    hooks = WebhookReceiver([404]).start()
    try:
        now = datetime.now(UTC)
        config = {"receivers": [{"name": "h", "webhook_configs": [{"url": hooks.url + "/secret-token-123"}]}]}
        [row_id] = queue_firing(db, config, now)
        assert DeliveryWorker(db, {"webhook": WebhookSender()}).run_once(now).failed == 1
        row = outbox.get(db, row_id)
        assert row is not None and row.status is outbox.Status.FAILED and "HTTP 404" in (row.last_error or "")
        shown = row.as_dict()
        assert "secret-token-123" not in str(shown) and shown["target"]["url"].endswith("/…")
    finally:
        hooks.stop()
