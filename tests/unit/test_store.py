"""The whole schema, migrations and their bookkeeping, on a real DuckDB file."""

from __future__ import annotations

from alerts.store import INSTANCE_COLUMNS
from analytics.rollups import ROLLUP_COLUMNS, STORED
from core.migrations import MIGRATIONS
from core.records import TABLES
from core.store import applied_migrations, connect, migrate

# Alert evaluation's tables (m008 + m009): alert_instances is the hand-over table read by notification.
ALERT_TABLES = {
    "alert_instances": list(INSTANCE_COLUMNS),
    "alert_history": [
        "id",
        "changed_at",
        "rule_id",
        "fingerprint",
        "labels",
        "from_state",
        "to_state",
        "value",
        "threshold",
        "reason",
    ],
    "alert_rule_status": ["rule_id", "evaluated_at", "duration_ms", "health", "error", "series"],
    "alert_rules": ["name", "spec", "created_at", "updated_at"],
    "alert_rule_files": ["path", "content", "sha256", "loaded_at"],
}


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
    rollup_columns = [
        name
        for (name,) in db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'call_rollups' "
            "ORDER BY ordinal_position"
        ).fetchall()
    ]
    assert rollup_columns == ["hour_us", *ROLLUP_COLUMNS, *STORED, "lat_max", "lat_sum"]
    for table, expected in ALERT_TABLES.items():
        got = db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
        assert [name for (name,) in got] == expected, table
    keys = db.execute(
        "SELECT table_name, constraint_text FROM duckdb_constraints() "
        "WHERE constraint_type = 'PRIMARY KEY' ORDER BY table_name"
    ).fetchall()
    assert keys == [
        ("alert_instances", "PRIMARY KEY(fingerprint)"),
        ("alert_rule_files", "PRIMARY KEY(path)"),
        ("alert_rule_status", "PRIMARY KEY(rule_id)"),
        ("alert_rules", 'PRIMARY KEY("name")'),
        ("calls", "PRIMARY KEY(trace_id, span_id)"),
        ("content_events", "PRIMARY KEY(event_id)"),
        ("metric_points", "PRIMARY KEY(point_id)"),
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
