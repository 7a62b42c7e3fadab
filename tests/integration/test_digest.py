"""Digests: exactly one per schedule slot (restarts, missed slots, a new digest), and a digest e-mail whose
figures and CSV attachment equal the read API's answers over the same window, checked against numpy too.

The e-mail test runs a real `callscope serve` over a store of known calls (with a rule of its alerts file firing
over them) with an aiosmtpd SMTP server, and the real `callscope digest send --now` command (queued through the
server's API while it holds the store, computed and delivered by the command itself when the server is stopped)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest

from alerts.digest import period_selection
from alerts.digest_schedule import DigestScheduler, latest_slot
from alerts.notify_config import parse_notify_config
from core.store import connect
from tests.calls_factory import make_calls, store_rows
from tests.helpers import ROOT, ServerProcess
from tests.notify_parts import SmtpSink, html_part, text_part, wait_until

SPEND_RULE = """\
rules:
  - name: Spend
    metric: cost_usd
    window: 3d
    op: ">"
    warning: 1
    interval: 10s
"""
DIGESTS = [
    {"name": "daily", "schedule": "0 8 * * *", "tz": "Europe/Paris", "to": ["pm@example.com"], "top_n": 3},
    {"name": "weekly", "schedule": "30 7 * * mon", "period": "week", "to": ["cfo@example.com", "pm@example.com"]},
]


def test_latest_slot_follows_the_crontab_in_its_zone():
    config = parse_notify_config({}, DIGESTS).digests
    # 08:00 in Paris is 07:00 UTC in winter
    assert latest_slot(config["daily"], datetime(2026, 3, 2, 6, 59, tzinfo=UTC)) == datetime(2026, 3, 1, 7, tzinfo=UTC)
    assert latest_slot(config["daily"], datetime(2026, 3, 2, 7, 0, tzinfo=UTC)) == datetime(2026, 3, 2, 7, tzinfo=UTC)
    # after the switch to summer time (29 March 2026) it is 06:00 UTC
    assert latest_slot(config["daily"], datetime(2026, 3, 30, 12, tzinfo=UTC)) == datetime(2026, 3, 30, 6, tzinfo=UTC)
    # Monday 2 March 2026, 07:30 UTC
    assert latest_slot(config["weekly"], datetime(2026, 3, 8, 23, tzinfo=UTC)) == datetime(
        2026, 3, 2, 7, 30, tzinfo=UTC
    )


def test_a_daily_period_is_a_local_day():
    config = parse_notify_config({}, DIGESTS).digests
    # Paris switched to summer time on 29 March 2026: the day ending at 08:00 that morning had 23 hours
    short = period_selection(config["daily"], datetime(2026, 3, 29, 6, tzinfo=UTC)).range
    assert (short.start, short.length) == (datetime(2026, 3, 28, 7, tzinfo=UTC), timedelta(hours=23))
    assert period_selection(config["daily"], datetime(2026, 3, 30, 6, tzinfo=UTC)).range.length == timedelta(days=1)
    assert period_selection(config["weekly"], datetime(2026, 3, 2, 7, 30, tzinfo=UTC)).range.length == timedelta(days=7)


def test_one_digest_per_slot_across_restarts_and_missed_slots(tmp_path):
    path = tmp_path / "s.duckdb"
    config = parse_notify_config({}, DIGESTS[:1]).digests
    t = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # before the 07:00 UTC slot

    def queued(db) -> list[str]:
        return [k for (k,) in db.execute("SELECT dedup_key FROM notify_outbox ORDER BY id").fetchall()]

    db = connect(path)
    scheduler = DigestScheduler(db, config, "http://dash")
    assert scheduler.tick(t) == []  # first sight: starts at the next slot, does not send yesterday's
    assert scheduler.tick(t + timedelta(minutes=59)) == []
    assert len(scheduler.tick(t + timedelta(hours=1))) == 1  # 07:00 UTC = 08:00 Paris
    assert scheduler.tick(t + timedelta(hours=1, seconds=30)) == []
    db.close()
    db = connect(path)  # a restart
    scheduler = DigestScheduler(db, config, "http://dash")
    assert scheduler.tick(t + timedelta(hours=2)) == []
    # down from 3 March 06:00 to 5 March 09:00: the slots of the 3rd, 4th and 5th passed; only the 5th is sent
    assert len(scheduler.tick(datetime(2026, 3, 5, 9, tzinfo=UTC))) == 1
    assert scheduler.tick(datetime(2026, 3, 5, 9, 1, tzinfo=UTC)) == []
    assert queued(db) == ["digest:daily:2026-03-02T07:00:00+00:00", "digest:daily:2026-03-05T07:00:00+00:00"]
    db.close()


def api_stats(server: ServerProcess, **params) -> list[dict]:
    response = httpx.get(server.http_url + "/api/v1/stats", params=params, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def figure(rows: list[dict], section: str, group: str, metric: str) -> dict:
    [row] = [r for r in rows if r["section"] == section and r["group"] == group and r["metric"] == metric]
    return row


def number(text: str) -> float | None:
    return None if text == "" else float(text)


@pytest.mark.slow
def test_digest_figures_equal_the_read_api_and_the_csv_is_attached(tmp_path):
    now = datetime.now(UTC).replace(microsecond=0)
    calls = make_calls(3000, now - timedelta(days=2), now - timedelta(minutes=1), seed=7)
    data = tmp_path / "data"
    store_rows(data, calls)
    # a real rule over those calls: the spend of the last 3 days (all of them) above $1 fires at its first evaluation
    (data / "alerts.yaml").write_text(SPEND_RULE)
    sink = SmtpSink().start()
    (data / "callscope.toml").write_text(
        f"""
smtp_host = "127.0.0.1"
smtp_port = {sink.port}
smtp_security = "none"
smtp_from = "digest@example.org"
dashboard_url = "https://callscope.example.com"
notify_interval_seconds = 0.2
ingest_workers = 0

[[digests]]
name = "daily"
schedule = "0 8 * * *"
to = ["pm@example.com"]
top_n = 3
filters = {{ environment = ["prod"] }}
"""
    )
    cli = [sys.executable, "-m", "callscope.cli", "digest", "send", "--now", "--data-dir", str(data)]
    try:
        server = ServerProcess(data).start()
        firing = wait_until(
            lambda: httpx.get(
                server.http_url + "/api/v1/alerts/instances", params={"rule": "Spend", "state": "firing"}, timeout=10
            ).json()["instances"],
            timeout=30,
            what="the Spend alert firing",
        )
        spend_3d = np.sum([c["cost_usd"] for c in calls if c["cost_usd"] is not None])
        assert spend_3d > 1 and [i["value"] for i in firing] == [pytest.approx(spend_3d, rel=1e-9)]
        # the store is the server's: the command queues the digest through its API (found by the port setting)
        port = ["--otlp-http-port", str(server.http_port)]
        out = subprocess.run(cli + port, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "queued as notification" in out.stdout
        [msg] = sink.wait_for(1)
        assert msg["To"] == "pm@example.com" and msg["X-Callscope-Digest"] == "daily"
        [attachment] = list(msg.iter_attachments())
        assert attachment.get_content_type() == "text/csv"
        assert attachment.get_filename().startswith("callscope-daily-")
        rows = list(csv.DictReader(io.StringIO(attachment.get_content())))
        start, end = rows[0]["period_from"], rows[0]["period_to"]
        assert datetime.fromisoformat(end) - datetime.fromisoformat(start) == timedelta(days=1)
        window = {"from": start, "to": end, "environment": "prod"}

        # totals against the period before, as /stats?compare=true answers
        [totals] = api_stats(server, **window, metrics="calls,cost_usd,error_rate,latency_p95", compare="true")
        for metric in ("calls", "cost_usd", "error_rate", "latency_p95"):
            row = figure(rows, "totals", "", metric)
            for column, key in (("now", metric), ("previous", f"{metric}_prev"), ("delta", f"{metric}_delta")):
                assert number(row[column]) == pytest.approx(totals[key], rel=1e-12), (metric, column)
        # and independently, with numpy over the rows written
        t0, t1 = datetime.fromisoformat(start), datetime.fromisoformat(end)
        chosen = [c for c in calls if t0 <= c["start_time"] < t1 and c["environment"] == "prod"]
        costs = np.array([c["cost_usd"] for c in chosen if c["cost_usd"] is not None])
        assert number(figure(rows, "totals", "", "cost_usd")["now"]) == pytest.approx(costs.sum(), rel=1e-9)
        assert number(figure(rows, "totals", "", "calls")["now"]) == len(chosen)
        p95 = np.percentile([c["duration_ms"] for c in chosen], 95)
        assert number(figure(rows, "totals", "", "latency_p95")["now"]) == pytest.approx(p95, rel=1e-9)

        # spend by model / service / user: the top 3 by spend, with the previous period
        for section, dim in (("by_model", "model"), ("by_service", "service"), ("top_users", "user")):
            expected = api_stats(
                server, **window, metrics="cost_usd,calls", group_by=dim, order_by="cost_usd", limit=3, compare="true"
            )
            got = [r for r in rows if r["section"] == section and r["metric"] == "cost_usd"]
            assert [r["group"] for r in got] == [str(e[dim]) for e in expected]
            for r, e in zip(got, expected, strict=True):
                assert number(r["now"]) == pytest.approx(e["cost_usd"], rel=1e-12)
                assert number(r["previous"]) == pytest.approx(e["cost_usd_prev"], rel=1e-12)
                assert number(figure(rows, section, r["group"], "calls")["now"]) == e["calls"]

        # top movers, as /changes answers
        changes = httpx.get(
            server.http_url + "/api/v1/changes",
            params={**window, "metric": "cost_usd", "dims": "service,model", "limit": 3},
            timeout=60,
        ).json()
        movers = [r for r in rows if r["section"] == "movers"]
        assert [r["group"] for r in movers] == [
            f"service={c['service']} model={c['model']}" for c in changes["contributors"]
        ]
        for r, c in zip(movers, changes["contributors"], strict=True):
            assert number(r["delta"]) == pytest.approx(c["contribution"], rel=1e-12)

        # hourly trend of error rate and p95
        trend = api_stats(server, **window, metrics="calls,cost_usd,error_rate,latency_p95", bucket="hour")
        got_trend = [r for r in rows if r["section"] == "trend" and r["metric"] == "error_rate"]
        assert [r["group"] for r in got_trend] == [t["bucket"] for t in trend]
        for r, t in zip(got_trend, trend, strict=True):
            assert number(r["now"]) == (None if t["error_rate"] is None else pytest.approx(t["error_rate"], rel=1e-12))

        # the firing alert, the subject, the link and the chart
        alert = figure(rows, "firing_alerts", "alertname=Spend severity=warning", "value")
        assert number(alert["now"]) == pytest.approx(spend_3d, rel=1e-9) and number(alert["previous"]) == 1
        assert [r["group"] for r in rows if r["section"] == "firing_alerts"] == ["alertname=Spend severity=warning"]
        assert f"Spend Spend (warning): cost_usd ${spend_3d:,.2f} > $1.00 over 3d, all calls" in text_part(msg)
        spend = totals["cost_usd"]
        assert msg["Subject"].startswith(f"callscope daily digest {t1.date().isoformat()}: ${spend:,.2f} spend")
        assert msg["Subject"].endswith("1 alert(s) firing")
        text, html = text_part(msg), html_part(msg)
        link = next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("Open in callscope: "))
        parts = urlsplit(link)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://callscope.example.com/cost"
        assert parse_qs(parts.query) == {
            "from": [start.replace("+00:00", "Z")],
            "to": [end.replace("+00:00", "Z")],
            "environment": ["prod"],
        }
        assert "Spend by model" in html and html.count("<div style='background:") >= 3
        assert server.stop() == 0

        # with the server stopped the command computes and delivers the digest itself
        out = subprocess.run(cli, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("digest daily: notification 2 sent")
        assert len(sink.wait_for(2)) == 2
    finally:
        sink.stop()
