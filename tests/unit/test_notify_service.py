"""The notification jobs inside the server: a failing dispatcher, delivery or digest run logs, counts and carries
on, and the next run starts from what the store holds."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from alerts.notify_service import NotifyService
from core.settings import load_settings
from core.store import connect
from tests.alert_rows import put_alert


def test_failing_jobs_log_count_and_carry_on(tmp_path, caplog):
    (tmp_path / "callscope.toml").write_text(
        'smtp_host = "127.0.0.1"\n[[alerts.receivers]]\nname = "a"\nemail_configs = [{ to = ["a@example.com"] }]\n'
    )
    settings = load_settings(env={"CALLSCOPE_DATA_DIR": str(tmp_path)})
    db = connect(settings.db_path)
    service = NotifyService(db, settings)
    put_alert(db, {"alertname": "A", "severity": "critical"}, starts_at=datetime.now(UTC) - timedelta(minutes=5))

    def broken(*args, **kwargs):
        raise RuntimeError("the store went away")

    healthy = service.dispatcher.tick
    service.dispatcher.tick = broken  # type: ignore[method-assign]
    service.delivery.run_once = broken  # type: ignore[method-assign]
    service.digests.tick = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="callscope.notify"):
        service.dispatch()
        service.deliver()
        service.schedule_digests()
    assert service.failures == {"dispatch": 1, "delivery": 1, "digests": 1}
    assert "the dispatcher failed" in caplog.text and "RuntimeError: the store went away" in caplog.text
    service.dispatcher.tick = healthy  # type: ignore[method-assign]
    service.dispatch()  # the next run decides from the store: the notification is queued once
    service.dispatch()
    assert db.execute("SELECT count(*), min(status) FROM notify_outbox").fetchall() == [(1, "pending")]
    db.close()
