"""The rollup fold on a real store: its watermark never passes the writer's open transaction, late calls re-fold
their hours, and folded hours hold exactly the calls received up to the watermark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from analytics import rollups
from analytics.timewin import to_us
from core.store import connect
from tests.calls_factory import make_calls, store_rows

START = datetime(2026, 6, 1, tzinfo=UTC)


def counts_by_hour(db) -> dict[int, int]:
    return dict(db.execute("SELECT hour_us, sum(n)::BIGINT FROM call_rollups GROUP BY ALL").fetchall())


def raw_by_hour(rows, up_to: datetime) -> dict[int, int]:
    out: dict[int, int] = {}
    for r in rows:
        if r["received_at"] <= up_to:
            hour = to_us(r["start_time"]) // rollups.HOUR_US * rollups.HOUR_US
            out[hour] = out.get(hour, 0) + 1
    return out


def test_watermark_stays_below_an_open_transaction_and_late_calls_refold(tmp_path: Path) -> None:
    rows = make_calls(500, START, START + timedelta(hours=6), seed=3)
    received = START + timedelta(days=1)
    for i, row in enumerate(rows):
        row["received_at"] = received + timedelta(seconds=i % 2)  # half at +0 s, half at +1 s
    store_rows(tmp_path, rows)
    db = connect(tmp_path / "callscope.duckdb")
    try:
        horizon = to_us(received) + 500_000  # the writer's open transaction was stamped at +0.5 s
        result = rollups.fold(db, lag_s=0, now=received + timedelta(hours=1), writer_horizon=lambda: horizon)
        assert result.watermark_us == horizon - 1
        assert counts_by_hour(db) == raw_by_hour(rows, received)

        rollups.fold(db, lag_s=0, now=received + timedelta(hours=1))
        assert counts_by_hour(db) == raw_by_hour(rows, received + timedelta(seconds=1))

        late = make_calls(1, START + timedelta(hours=2, minutes=10), START + timedelta(hours=2, minutes=11), seed=9)
        late[0]["received_at"] = received + timedelta(minutes=90)  # after the last watermark
        db.execute("CHECKPOINT")
    finally:
        db.close()
    store_rows(tmp_path, late)
    db = connect(tmp_path / "callscope.duckdb")
    try:
        result = rollups.fold(db, lag_s=0, now=received + timedelta(hours=2))
        assert result.hours == 1
        assert counts_by_hour(db) == raw_by_hour([*rows, *late], received + timedelta(hours=2))
    finally:
        db.close()
