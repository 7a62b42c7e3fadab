"""Retention on a real store with a controlled clock: exactly the rows past their policy go, per kind and project;
rollups keep answering the same totals for removed hours (hourly, then merged daily); late calls of removed hours
are added, not lost; a dry run counts what a run removes; deletion by user leaves no row of the user anywhere."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from analytics import retention, rollups, stats
from analytics.export import ExportFormat, export_from_store
from analytics.query import Selection
from analytics.timewin import TimeRange, to_us
from core.migrations import MIGRATIONS
from core.records import CALL_COLUMNS, arrow_schema
from core.store import applied_migrations, connect
from tests.calls_factory import make_calls

START = datetime(2026, 3, 1, tzinfo=UTC)
NOW = START + timedelta(days=10, hours=5, minutes=17)  # the controlled clock: not on an hour
DAY = timedelta(days=1)


def _rows(n: int, seed: int, project: str = "default") -> list[dict]:
    rows = make_calls(n, START, START + timedelta(days=10), seed=seed)
    for r in rows:
        r["project"] = project
        r["received_at"] = r["start_time"] + timedelta(seconds=5)
    return rows


def _insert(db: duckdb.DuckDBPyConnection, rows: list[dict]) -> None:
    db.register("new_calls", pa.Table.from_pylist(rows, schema=arrow_schema(CALL_COLUMNS)))
    db.execute("INSERT INTO calls SELECT * FROM new_calls")
    db.unregister("new_calls")


def _store(tmp_path: Path, rows: list[dict]) -> duckdb.DuckDBPyConnection:
    db = connect(tmp_path / "callscope.duckdb")
    _insert(db, rows)
    rollups.fold(db, lag_s=0, now=NOW)
    return db


def _hour(t: datetime) -> int:
    return to_us(t) // rollups.HOUR_US * rollups.HOUR_US


def _totals(rows: list[dict]) -> dict[str, float]:
    """The independent computation: plain Python over the same rows."""
    return {
        "calls": len(rows),
        "input_tokens": sum(r["input_tokens"] or 0 for r in rows),
        "output_tokens": sum(r["output_tokens"] or 0 for r in rows),
        "cost_usd": sum(r["cost_usd"] for r in rows if r["cost_usd"] is not None),
        "errors": sum(r["status"] == "error" for r in rows),
    }


def _api_totals(db: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> tuple[dict[str, float], dict]:
    query = stats.StatsQuery(
        Selection(TimeRange(start, end)), ("calls", "input_tokens", "output_tokens", "cost_usd", "errors")
    )
    table = stats.run(db, query)
    row = table.to_pylist()[0]
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    return {k: row[k] for k in ("calls", "input_tokens", "output_tokens", "cost_usd", "errors")}, meta


def _close(a: dict[str, float], b: dict[str, float]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-9), k


def test_raw_calls_past_policy_go_exactly_and_rollups_keep_the_same_totals(tmp_path: Path) -> None:
    rows = _rows(3000, seed=1)
    db = _store(tmp_path, rows)
    policy = retention.Policy.parse({"calls": "3"}, {})
    before, _ = _api_totals(db, START, START + timedelta(days=10))
    cutoff = _hour(NOW - 3 * DAY)  # whole hours: the hour holding now - 3 days is kept
    dry = retention.Runner(db, policy, now=NOW, batch_rows=400).run(dry_run=True)
    assert db.execute("SELECT count(*) FROM calls").fetchone()[0] == len(rows)  # a dry run removes nothing
    report = retention.Runner(db, policy, now=NOW, batch_rows=400).run()

    expected_kept = sorted(r["span_id"] for r in rows if to_us(r["start_time"]) >= cutoff)
    kept = sorted(s for (s,) in db.execute("SELECT span_id FROM calls").fetchall())
    assert kept == expected_kept
    assert report.total["calls"] == len(rows) - len(expected_kept) == dry.total["calls"]
    assert report.batches > 1  # bounded batches (400 rows each)
    assert retention.pruned_before(db) == {"default": cutoff}

    # The same totals over the whole range (from rollups now), said to come from rollups before the cutoff.
    after, meta = _api_totals(db, START, START + timedelta(days=10))
    _close(after, before)
    _close(after, _totals(rows))
    assert meta["rollups_only_before"] == str(cutoff)
    # A short range inside the removed days (raw queries would see nothing) is answered from rollups too.
    day = [r for r in rows if START + DAY <= r["start_time"] < START + 2 * DAY]
    _close(_api_totals(db, START + DAY, START + 2 * DAY)[0], _totals(day))
    db.close()


def test_a_late_call_of_a_removed_hour_is_added_to_its_rollup(tmp_path: Path) -> None:
    rows = _rows(1000, seed=2)
    db = _store(tmp_path, rows)
    retention.Runner(db, retention.Policy.parse({"calls": "3"}, {}), now=NOW).run()
    late = make_calls(3, START + timedelta(hours=30), START + timedelta(hours=30, minutes=5), seed=5)
    for r in late:
        r["received_at"] = NOW + timedelta(minutes=1)
    _insert(db, late)
    rollups.fold(db, lag_s=0, now=NOW + timedelta(minutes=2))
    hour = _hour(START + timedelta(hours=30))
    n = db.execute("SELECT sum(n)::BIGINT FROM call_rollups WHERE hour_us = ?", [hour]).fetchone()[0]
    assert n == sum(_hour(r["start_time"]) == hour for r in rows + late)
    _close(_api_totals(db, START, START + timedelta(days=10))[0], _totals(rows + late))
    db.close()


def test_hourly_rollups_merge_into_daily_and_daily_ones_expire(tmp_path: Path) -> None:
    rows = _rows(2000, seed=3)
    db = _store(tmp_path, rows)
    policy = retention.Policy.parse({"calls": "2", "rollups_hourly": "4", "rollups_daily": "8"}, {})
    retention.Runner(db, policy, now=NOW).run()
    daily_cut = to_us(NOW - 8 * DAY) // retention.DAY_US * retention.DAY_US
    hourly_cut = to_us(NOW - 4 * DAY) // retention.DAY_US * retention.DAY_US
    assert db.execute("SELECT min(hour_us) FROM call_rollups").fetchone()[0] >= hourly_cut
    days = sorted(d for (d,) in db.execute("SELECT DISTINCT hour_us FROM call_rollups_daily").fetchall())
    assert days == list(range(daily_cut, hourly_cut, retention.DAY_US))
    kept = [r for r in rows if to_us(r["start_time"]) >= daily_cut]
    # Whole days from the first daily rollup on: the totals of every call since then, exactly.
    start = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=daily_cut)
    _close(_api_totals(db, start, START + timedelta(days=10))[0], _totals(kept))
    db.close()


def test_per_project_policies_and_the_other_kinds(tmp_path: Path) -> None:
    rows = _rows(600, seed=4) + _rows(600, seed=5, project="demo")
    for r in rows[::3]:
        r["input_content"], r["output_content"] = "a prompt", "an answer"
    db = _store(tmp_path, rows)
    old, new = NOW - 20 * DAY, NOW - DAY
    db.execute(
        "INSERT INTO content_events VALUES (?, ?, ?, 'default', ?, 'e', 'user', 'hi', ?),"
        " (?, ?, ?, 'default', ?, 'e', 'user', 'hi', ?)",
        [b"e1", b"t", b"s", old, old, b"e2", b"t", b"s", new, new],
    )
    outbox = "INSERT INTO notify_outbox (kind, receiver, channel, channel_type, target, status, payload, created_at,"
    outbox += " attempts) VALUES ('alert', 'r', 'c', 'webhook', 'x', ?, '{}', ?, 1)"
    for status, at in (("sent", old), ("failed", old), ("pending", old), ("sent", new)):
        db.execute(outbox, [status, at])
    policy = retention.Policy.parse(
        {"calls": "5", "content": "2", "notifications": "10"}, {"demo": {"calls": "1", "content": "1"}}
    )
    report = retention.Runner(db, policy, now=NOW).run()
    for project, days in (("default", 5), ("demo", 1)):
        cutoff = _hour(NOW - days * DAY)
        expected = sum(r["project"] == project and to_us(r["start_time"]) >= cutoff for r in rows)
        got = db.execute("SELECT count(*) FROM calls WHERE project = ?", [project]).fetchone()[0]
        assert got == expected, project
    content_left = db.execute(
        "SELECT project, min(start_time) FROM calls WHERE input_content IS NOT NULL GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert content_left[0][1] >= NOW - 2 * DAY and content_left[1][1] >= NOW - DAY
    assert db.execute("SELECT event_id FROM content_events").fetchall() == [(b"e2",)]
    statuses = sorted(s for (s,) in db.execute("SELECT status FROM notify_outbox").fetchall())
    assert statuses == ["pending", "sent"]  # pending rows are never removed
    assert report.total["notifications"] == 2
    db.close()


def test_bad_policies_are_refused_with_the_reason() -> None:
    with pytest.raises(retention.PolicyError, match="unknown kind"):
        retention.Policy.parse({"raw": "3"}, {})
    with pytest.raises(retention.PolicyError, match=r"rollups_hourly .* at least as long as calls"):
        retention.Policy.parse({"calls": "30", "rollups_hourly": "10"}, {})
    with pytest.raises(retention.PolicyError, match=r"rollups_hourly .* at least as long as calls"):
        retention.Policy.parse({}, {"demo": {"calls": "20", "rollups_hourly": "10"}})
    # Raw calls kept for ever: the default 400 days of hourly rollups never merge anything (nothing to check).
    assert retention.Policy.parse({}, {}).of("rollups_hourly", None) == 400
    with pytest.raises(retention.PolicyError, match="whole store"):
        retention.Policy.parse({}, {"demo": {"alert_history": "10"}})


def test_deleting_a_user_leaves_no_row_of_theirs(tmp_path: Path) -> None:
    rows = _rows(1500, seed=6)
    victim = "user-1"
    mine = [r for r in rows if r["user_id"] == victim]
    assert len(mine) > 50
    for r in mine[:5]:
        r["input_content"] = "my secret question"
    db = _store(tmp_path, rows)
    db.execute(
        "INSERT INTO content_events SELECT md5(span_id::VARCHAR)::BLOB, trace_id, span_id, project, start_time,"
        " 'gen_ai.user.message', 'user', 'secret', received_at FROM calls WHERE user_id = ?",
        [victim],
    )
    db.execute(
        "INSERT INTO spans SELECT trace_id, md5(trace_id::VARCHAR)[:8]::BLOB, NULL, project, service, 'tool', 1,"
        " start_time, end_time, 1.0, 'ok', NULL, NULL, received_at FROM calls WHERE user_id = ?",
        [victim],
    )
    removed = retention.delete_user(db, victim)
    assert removed["calls"] == len(mine)
    assert removed["content_events"] == len(mine) and removed["spans"] == len(mine)
    for table in ("calls",):
        assert db.execute(f"SELECT count(*) FROM {table} WHERE user_id = ?", [victim]).fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM content_events").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM spans").fetchone()[0] == 0
    others = [r for r in rows if r["user_id"] != victim]
    # Rollups were re-folded: long ranges (rollups) no longer count the user's calls either.
    _close(_api_totals(db, START, START + timedelta(days=10))[0], _totals(others))
    db.execute("CHECKPOINT")
    db.close()
    out = io.BytesIO()
    window = {"from": [START.isoformat()], "to": [(START + timedelta(days=11)).isoformat()]}
    n = export_from_store(tmp_path / "callscope.duckdb", ExportFormat.JSONL, window, out)
    exported = [json.loads(line) for line in out.getvalue().splitlines()]
    assert n == len(others) and all(e["user_id"] != victim for e in exported)


def test_m014_keeps_columns_other_migrations_added_to_calls(tmp_path: Path) -> None:
    """calls is rebuilt without its primary key from its live column list: a column another engineer's migration
    added (here: one added before m014 runs) keeps its values, and NOT NULL columns stay NOT NULL."""
    path = tmp_path / "old.duckdb"
    db = duckdb.connect(str(path))
    applied_migrations(db)
    for name, fn in MIGRATIONS:
        if name >= "m014":
            break
        fn(db)
        db.execute("INSERT INTO schema_migrations VALUES (?, now())", [name])
    rows = make_calls(3, START, START + DAY, seed=7)
    _insert(db, rows)
    db.execute("ALTER TABLE calls ADD COLUMN canonical_model VARCHAR")
    db.execute("UPDATE calls SET canonical_model = 'm-' || request_model")
    db.close()
    db = connect(path)
    got = db.execute("SELECT canonical_model, request_model FROM calls ORDER BY start_time").fetchall()
    assert [g for g, _ in got] == ["m-" + m for _, m in got] and len(got) == 3
    kinds = db.execute(
        "SELECT constraint_type FROM duckdb_constraints() WHERE table_name = 'calls' ORDER BY constraint_type"
    ).fetchall()
    assert kinds == [("NOT NULL",)] * 11
    with pytest.raises(duckdb.ConstraintException):
        db.execute("INSERT INTO calls (trace_id) VALUES ('\\x01'::BLOB)")
    db.close()


def test_the_cli_dry_run_counts_and_the_run_removes_and_compacts(tmp_path: Path, capsys) -> None:
    from callscope.cli import main

    rows = _rows(2000, seed=8)
    _store(tmp_path, rows).close()
    args = ["retention", "--data-dir", str(tmp_path), "--retention", "calls=4", "--now", NOW.isoformat()]
    assert main([*args, "--dry-run"]) == 0
    dry = json.loads(capsys.readouterr().out)
    expected = sum(to_us(r["start_time"]) < _hour(NOW - 4 * DAY) for r in rows)
    assert dry["dry_run"] and dry["removed"]["calls"] == expected > 0
    db = connect(tmp_path / "callscope.duckdb")
    assert db.execute("SELECT count(*) FROM calls").fetchone()[0] == len(rows)
    db.close()
    assert main([*args, "--compact"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["removed"]["calls"] == expected and done["file_bytes_after"] <= done["file_bytes_before"]
    db = connect(tmp_path / "callscope.duckdb")
    assert db.execute("SELECT count(*) FROM calls").fetchone()[0] == len(rows) - expected
    assert [t for (t,) in db.execute("SELECT trigger FROM retention_runs ORDER BY started_at").fetchall()] == [
        "cli",
        "cli",
    ]
    db.close()
