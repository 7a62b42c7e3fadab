"""The whole schema, migrations and their bookkeeping, on a real DuckDB file."""

from __future__ import annotations

from analytics.anomalies.job import SCORE_SCHEMA
from analytics.drift.results import RESULT_COLUMNS
from analytics.rollups import ROLLUP_COLUMNS, STORED
from core.migrations import MIGRATIONS
from core.records import TABLES
from core.store import applied_migrations, connect, migrate


def test_migrations_create_the_whole_schema(tmp_path):
    db = connect(tmp_path / "s.duckdb")
    assert applied_migrations(db) == sorted(name for name, _ in MIGRATIONS)
    for table, columns in TABLES.items():
        got = db.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position",
            [table],
        ).fetchall()
        assert got == [(c.name, c.sql) for c in columns], table

    def columns(table: str) -> list[str]:
        return [
            name
            for (name,) in db.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                [table],
            ).fetchall()
        ]

    assert columns("call_rollups") == ["hour_us", *ROLLUP_COLUMNS, *STORED, "lat_max", "lat_sum"]
    # drift and anomaly detection (m011): the columns the jobs write, in their order
    assert columns("drift_results") == ["run_id", *RESULT_COLUMNS]
    assert columns("anomaly_scores") == SCORE_SCHEMA.names
    assert columns("release_markers") == [
        "project",
        "service",
        "release",
        "released_at",
        "source",
        "note",
        "recorded_at",
    ]
    assert columns("drift_runs") == [
        "run_id",
        "computed_at",
        "current_from",
        "current_to",
        "reference_from",
        "reference_to",
        "cells",
        "drifted_cells",
        "seconds",
    ]
    keys = db.execute(
        "SELECT table_name, constraint_text FROM duckdb_constraints() "
        "WHERE constraint_type = 'PRIMARY KEY' ORDER BY table_name"
    ).fetchall()
    assert keys == [
        ("alert_instances", "PRIMARY KEY(fingerprint)"),
        ("calls", "PRIMARY KEY(trace_id, span_id)"),
        ("content_events", "PRIMARY KEY(event_id)"),
        ("detection_state", 'PRIMARY KEY("name")'),
        ("drift_runs", "PRIMARY KEY(run_id)"),
        ("metric_points", "PRIMARY KEY(point_id)"),
        ("release_markers", 'PRIMARY KEY(project, service, "release")'),
        ("rollup_state", 'PRIMARY KEY("name")'),
        ("schema_migrations", 'PRIMARY KEY("name")'),
        ("spans", "PRIMARY KEY(trace_id, span_id)"),
    ]
    db.close()


def test_migrations_are_applied_once(tmp_path):
    path = tmp_path / "s.duckdb"
    connect(path).close()
    db = connect(path)
    assert migrate(db) == []
    assert db.execute("SELECT count(*) FROM schema_migrations").fetchall()[0][0] == len(MIGRATIONS)
    db.close()


def test_migration_names_are_ordered_and_unique():
    names = [name for name, _ in MIGRATIONS]
    assert names == sorted(names) and len(set(names)) == len(names)
