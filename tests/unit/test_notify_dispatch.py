"""The dispatcher over a real store file with a controlled clock: grouping, group_wait, group_interval,
repeat_interval, resolve messages, silences, inhibition, routing, and one transaction per decision.

Alert instances are written into alert_instances directly (the seam between evaluation and notification);
what the dispatcher decided is read back from the outbox and the notification log.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from alerts import silences
from alerts.dispatch import Dispatcher, Reason
from alerts.notify_config import parse_notify_config
from core.store import connect
from tests.alert_rows import put_alert, resolve_alert

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
S = timedelta(seconds=1)

CONFIG = {
    "route": {"receiver": "team", "group_by": ["alertname", "service"]},
    "receivers": [
        {
            "name": "team",
            "email_configs": [{"to": ["team@example.com"]}],
            "webhook_configs": [{"url": "http://127.0.0.1:9/hook", "send_resolved": False}],
        }
    ],
}


def alert_labels(service: str = "support-bot", severity: str = "warning", **extra: str) -> dict[str, str]:
    return {"alertname": "HighErrorRate", "severity": severity, "service": service, **extra}


@pytest.fixture
def db(tmp_path):
    conn = connect(tmp_path / "s.duckdb")
    yield conn
    conn.close()


def outbox(db, channel: str | None = None) -> list[dict]:
    rows = db.execute("SELECT id, channel, reason, payload, group_key FROM notify_outbox ORDER BY id").fetchall()
    out = [{"id": i, "channel": c, "reason": r, "payload": orjson.loads(p), "group_key": g} for i, c, r, p, g in rows]
    return [o for o in out if channel is None or o["channel"] == channel]


def statuses(entry: dict) -> list[tuple[str, str]]:
    return [(a["labels"].get("model", a["labels"]["service"]), a["status"]) for a in entry["payload"]["alerts"]]


def run(dispatcher: Dispatcher, start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """Tick from start to end (inclusive); the instants at which something was queued."""
    when = []
    t = start
    while t <= end:
        if dispatcher.tick(t).enqueued:
            when.append(t)
        t += step
    return when


def test_group_wait_then_one_notification_per_channel(db):
    d = Dispatcher(db, parse_notify_config(CONFIG), external_url="http://dash")
    put_alert(db, alert_labels(), starts_at=T0, annotations={"summary": "error rate 12% > 5%"})
    assert run(d, T0, T0 + 29 * S, S) == []
    assert outbox(db) == []
    assert run(d, T0 + 30 * S, T0 + 120 * S, S) == [T0 + 30 * S]
    sent = outbox(db)
    assert [o["channel"] for o in sent] == ["team/email/0", "team/webhook/0"]
    assert {o["reason"] for o in sent} == {Reason.FIRST.value}
    payload = sent[0]["payload"]
    assert payload["status"] == "firing"
    assert payload["group_labels"] == {"alertname": "HighErrorRate", "service": "support-bot"}
    assert payload["external_url"] == "http://dash"
    assert payload["alerts"][0]["value"] == 0.12 and payload["alerts"][0]["threshold"] == 0.05


def test_alert_older_than_group_wait_is_flushed_at_once(db):
    d = Dispatcher(db, parse_notify_config(CONFIG))
    put_alert(db, alert_labels(), starts_at=T0 - 10 * 60 * S)  # fired while no dispatcher was running
    assert run(d, T0, T0 + 5 * S, S) == [T0]


def test_grouping_by_labels(db):
    d = Dispatcher(db, parse_notify_config(CONFIG))
    put_alert(db, alert_labels(model="gpt-4.1"), starts_at=T0)
    put_alert(db, alert_labels(model="gpt-4o-mini"), starts_at=T0 + 5 * S)
    put_alert(db, alert_labels(service="summarizer", model="gpt-4.1"), starts_at=T0 + 5 * S)
    run(d, T0, T0 + 60 * S, S)
    emails = outbox(db, "team/email/0")
    assert len(emails) == 2  # one per (alertname, service), the two models together
    by_service = {e["payload"]["group_labels"]["service"]: e for e in emails}
    assert sorted(statuses(by_service["support-bot"])) == [("gpt-4.1", "firing"), ("gpt-4o-mini", "firing")]
    assert statuses(by_service["summarizer"]) == [("gpt-4.1", "firing")]
    assert by_service["support-bot"]["payload"]["common_labels"] == {
        "alertname": "HighErrorRate",
        "service": "support-bot",
        "severity": "warning",
    }


def test_group_interval_holds_new_alerts_until_the_next_flush(db):
    d = Dispatcher(db, parse_notify_config(CONFIG))
    put_alert(db, alert_labels(model="a"), starts_at=T0)
    assert run(d, T0, T0 + 40 * S, S) == [T0 + 30 * S]
    put_alert(db, alert_labels(model="b"), starts_at=T0 + 60 * S)
    # the group flushed at T0+30 s; the next flush is group_interval (5 min) later
    assert run(d, T0 + 41 * S, T0 + 400 * S, S) == [T0 + 330 * S]
    latest = outbox(db, "team/email/0")[-1]
    assert latest["reason"] == Reason.NEW_ALERTS.value
    assert sorted(statuses(latest)) == [("a", "firing"), ("b", "firing")]


def test_repeat_interval(db):
    cfg = {**CONFIG, "route": {**CONFIG["route"], "repeat_interval": "1h"}}
    d = Dispatcher(db, parse_notify_config(cfg))
    put_alert(db, alert_labels(), starts_at=T0)
    sent_at = run(d, T0, T0 + 3 * 3600 * S, 30 * S)
    # first at +30 s; flushes every 5 min; a repeat at the first flush more than 1 h after the last notification
    first = T0 + 30 * S
    assert sent_at == [first, first + 65 * 60 * S, first + 130 * 60 * S]
    reasons = [o["reason"] for o in outbox(db, "team/email/0")]
    assert reasons == [Reason.FIRST.value, Reason.REPEAT.value, Reason.REPEAT.value]


def test_resolve_message_per_channel_and_group_closes(db):
    d = Dispatcher(db, parse_notify_config(CONFIG))
    labels = alert_labels()
    put_alert(db, labels, starts_at=T0)
    run(d, T0, T0 + 60 * S, S)
    resolve_alert(db, labels, T0 + 100 * S)
    assert run(d, T0 + 70 * S, T0 + 700 * S, 10 * S) == [T0 + 330 * S]
    emails = outbox(db, "team/email/0")
    hooks = outbox(db, "team/webhook/0")
    assert [e["reason"] for e in emails] == [Reason.FIRST.value, Reason.ALL_RESOLVED.value]
    assert emails[-1]["payload"]["status"] == "resolved"
    assert statuses(emails[-1]) == [("support-bot", "resolved")]
    assert len(hooks) == 1  # send_resolved = false: no resolve message ...
    log = db.execute("SELECT channel, firing FROM notify_log ORDER BY channel").fetchall()
    assert log == [("team/email/0", []), ("team/webhook/0", [])]  # ... but its log forgets the alert
    assert db.execute("SELECT count(*) FROM notify_groups").fetchone()[0] == 0
    # firing again later is a new group: group_wait, then a first notification on every channel
    put_alert(db, labels, starts_at=T0 + 1000 * S)
    assert run(d, T0 + 1000 * S, T0 + 1100 * S, S) == [T0 + 1030 * S]
    assert [o["reason"] for o in outbox(db)[-2:]] == [Reason.FIRST.value, Reason.FIRST.value]


def test_a_resolve_committed_after_a_later_flush_is_still_told(db):
    """Evaluation stamps ends_at with its evaluation instant and commits a moment later (its queries take time):
    a flush of the group in that moment must not make the dispatcher overlook the resolve for good."""
    d = Dispatcher(db, parse_notify_config(CONFIG))
    labels = alert_labels()
    put_alert(db, labels, starts_at=T0)
    assert run(d, T0, T0 + 330 * S, S) == [T0 + 30 * S]  # told at +30 s; the group flushed again at +330 s
    resolve_alert(db, labels, T0 + 329 * S)  # the evaluation of +329 s, committed after that flush
    assert run(d, T0 + 331 * S, T0 + 700 * S, S) == [T0 + 630 * S]
    assert [e["reason"] for e in outbox(db, "team/email/0")] == [Reason.FIRST.value, Reason.ALL_RESOLVED.value]
    assert statuses(outbox(db, "team/email/0")[-1]) == [("support-bot", "resolved")]
    assert db.execute("SELECT channel, firing FROM notify_log ORDER BY channel").fetchall() == [
        ("team/email/0", []),
        ("team/webhook/0", []),
    ]


def test_partial_resolve_is_told_once(db):
    d = Dispatcher(db, parse_notify_config(CONFIG))
    put_alert(db, alert_labels(model="a"), starts_at=T0)
    put_alert(db, alert_labels(model="b"), starts_at=T0)
    run(d, T0, T0 + 60 * S, S)
    resolve_alert(db, alert_labels(model="a"), T0 + 90 * S)
    run(d, T0 + 61 * S, T0 + 2000 * S, 10 * S)
    emails = outbox(db, "team/email/0")
    assert [e["reason"] for e in emails] == [Reason.FIRST.value, Reason.NEW_RESOLVED.value]
    assert sorted(statuses(emails[1])) == [("a", "resolved"), ("b", "firing")]
    assert len(outbox(db, "team/webhook/0")) == 1  # no resolved messages there, and nothing new firing


def test_silence_mutes_until_it_expires(db):
    d = Dispatcher(db, parse_notify_config(CONFIG))
    silence = silences.parse_silence(
        {
            "matchers": ['service=~"support.*"', {"name": "severity", "value": "critical", "isEqual": False}],
            "duration": "10m",
            "created_by": "sre@example.com",
            "comment": "deploying",
        },
        T0,
    )
    silences.insert(db, silence)
    put_alert(db, alert_labels(), starts_at=T0)  # severity=warning: both matchers match
    put_alert(db, alert_labels(service="summarizer"), starts_at=T0)  # not silenced
    run(d, T0, T0 + 590 * S, 10 * S)
    assert [e["payload"]["group_labels"]["service"] for e in outbox(db, "team/email/0")] == ["summarizer"]
    result = d.tick(T0 + 595 * S)
    assert list(result.muted.values()) == [f"silence {silence.id}"]
    # the silence ends at T0 + 10 min; the group's next flush after that tells about the alert
    sent_at = run(d, T0 + 600 * S, T0 + 1200 * S, 10 * S)
    assert sent_at == [T0 + 630 * S]
    assert outbox(db, "team/email/0")[-1]["payload"]["group_labels"]["service"] == "support-bot"


def test_expired_silence_no_longer_mutes(db):
    d = Dispatcher(db, parse_notify_config(CONFIG))
    silence = silences.parse_silence(
        {"matchers": ['alertname="HighErrorRate"'], "duration": "4h", "created_by": "me", "comment": "x"}, T0
    )
    silences.insert(db, silence)
    put_alert(db, alert_labels(), starts_at=T0)
    assert run(d, T0, T0 + 100 * S, 10 * S) == []
    silences.expire(db, silence.id, T0 + 105 * S)
    assert run(d, T0 + 110 * S, T0 + 400 * S, 10 * S) == [T0 + 330 * S]


def test_critical_inhibits_the_warning_of_the_same_instance(db):
    cfg = {**CONFIG, "route": {"receiver": "team", "group_by": ["alertname", "severity", "model"]}}
    d = Dispatcher(db, parse_notify_config(cfg))
    put_alert(db, alert_labels(severity="warning", model="gpt-4.1"), starts_at=T0)
    put_alert(db, alert_labels(severity="critical", model="gpt-4.1"), starts_at=T0)
    put_alert(db, alert_labels(severity="warning", model="gpt-4o-mini"), starts_at=T0)  # no critical there
    run(d, T0, T0 + 60 * S, 10 * S)
    got = sorted(
        (e["payload"]["group_labels"]["severity"], e["payload"]["group_labels"]["model"])
        for e in outbox(db, "team/email/0")
    )
    assert got == [("critical", "gpt-4.1"), ("warning", "gpt-4o-mini")]
    # the critical resolves: the warning of gpt-4.1 is no longer muted and is told at its group's next flush
    resolve_alert(db, alert_labels(severity="critical", model="gpt-4.1"), T0 + 100 * S)
    run(d, T0 + 70 * S, T0 + 400 * S, 10 * S)
    latest = outbox(db, "team/email/0")[-2:]
    assert sorted((e["payload"]["status"], e["payload"]["group_labels"]["severity"]) for e in latest) == [
        ("firing", "warning"),
        ("resolved", "critical"),
    ]


def test_inhibit_rules_with_equal_as_alertmanager(db):
    cfg = {
        **CONFIG,
        "route": {"receiver": "team", "group_by": ["..."]},
        "inhibit_rules": [
            {
                "source_matchers": ['alertname="ServiceDown"'],
                "target_matchers": ['alertname!="ServiceDown"'],
                "equal": ["service"],
            }
        ],
    }
    d = Dispatcher(db, parse_notify_config(cfg))
    put_alert(db, {"alertname": "ServiceDown", "service": "support-bot"}, starts_at=T0)
    put_alert(db, alert_labels(service="support-bot"), starts_at=T0)
    put_alert(db, alert_labels(service="summarizer"), starts_at=T0)
    run(d, T0, T0 + 60 * S, 10 * S)
    got = sorted(
        (e["payload"]["group_labels"]["alertname"], e["payload"]["group_labels"]["service"])
        for e in outbox(db, "team/email/0")
    )
    assert got == [("HighErrorRate", "summarizer"), ("ServiceDown", "support-bot")]


def test_routes_pick_receivers_with_continue(db):
    cfg = {
        "route": {
            "receiver": "team",
            "group_by": ["alertname"],
            "routes": [
                {"matchers": ['severity="critical"'], "receiver": "pager", "continue": True, "group_wait": "0s"},
                {"matchers": ['service=~"support-.*"'], "receiver": "support"},
            ],
        },
        "receivers": [
            {"name": "team", "email_configs": [{"to": "team@example.com"}]},
            {"name": "pager", "webhook_configs": [{"url": "http://127.0.0.1:9/pager"}]},
            {"name": "support", "email_configs": [{"to": "support@example.com"}]},
        ],
    }
    d = Dispatcher(db, parse_notify_config(cfg))
    put_alert(db, alert_labels(severity="critical", service="support-bot"), starts_at=T0)  # pager and support
    # pager only: `continue` lets later siblings match too, it does not hand the alert back to the parent
    put_alert(db, {"alertname": "Spend", "severity": "critical", "service": "agent"}, starts_at=T0)
    put_alert(db, {"alertname": "Latency", "severity": "warning", "service": "agent"}, starts_at=T0)  # team
    run(d, T0, T0 + 60 * S, S)
    got = sorted((o["channel"], o["payload"]["group_labels"]["alertname"]) for o in outbox(db))
    assert got == [
        ("pager/webhook/0", "HighErrorRate"),
        ("pager/webhook/0", "Spend"),
        ("support/email/0", "HighErrorRate"),
        ("team/email/0", "Latency"),
    ]
    pager_first = min(o["id"] for o in outbox(db, "pager/webhook/0"))
    assert pager_first < min(o["id"] for o in outbox(db, "team/email/0"))  # group_wait 0 s on the pager route


def test_a_failed_tick_writes_nothing_and_the_next_one_decides_again(db, monkeypatch):
    d = Dispatcher(db, parse_notify_config(CONFIG))
    put_alert(db, alert_labels(), starts_at=T0 - 60 * S)
    original = Dispatcher._write_groups

    def crash(self, cur, plan, now):  # after the outbox rows and the log entries were written in the transaction
        assert cur.execute("SELECT count(*) FROM notify_outbox").fetchall() == [(2,)]
        raise RuntimeError("crash in the middle of a tick")

    monkeypatch.setattr(Dispatcher, "_write_groups", crash)
    with pytest.raises(RuntimeError):
        d.tick(T0)
    assert outbox(db) == []
    assert db.execute("SELECT count(*) FROM notify_log").fetchone()[0] == 0
    monkeypatch.setattr(Dispatcher, "_write_groups", original)
    assert len(d.tick(T0 + S).enqueued) == 2
    assert d.tick(T0 + 2 * S).enqueued == []
