"""The whole schema, migrations and their bookkeeping, on a real DuckDB file."""

from __future__ import annotations

from analytics.rollups import ROLLUP_COLUMNS, STORED
from callscope.migrations import MIGRATIONS
from callscope.records import TABLES
from callscope.store import applied_migrations, connect, migrate


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
    keys = db.execute(
        "SELECT table_name, constraint_text FROM duckdb_constraints() "
        "WHERE constraint_type = 'PRIMARY KEY' ORDER BY table_name"
    ).fetchall()
    assert keys == [
        ("alert_instances", "PRIMARY KEY(fingerprint)"),
        ("calls", "PRIMARY KEY(trace_id, span_id)"),
        ("content_events", "PRIMARY KEY(event_id)"),
        ("digest_state", 'PRIMARY KEY("name")'),
        ("metric_points", "PRIMARY KEY(point_id)"),
        ("notify_groups", "PRIMARY KEY(group_key)"),
        ("notify_log", "PRIMARY KEY(group_key, channel)"),
        ("notify_outbox", "PRIMARY KEY(id)"),
        ("rollup_state", 'PRIMARY KEY("name")'),
        ("schema_migrations", 'PRIMARY KEY("name")'),
        ("silences", "PRIMARY KEY(id)"),
        ("spans", "PRIMARY KEY(trace_id, span_id)"),
    ]
    unique = db.execute("SELECT table_name, constraint_text FROM duckdb_constraints() WHERE constraint_type = 'UNIQUE'")
    assert unique.fetchall() == [("notify_outbox", "UNIQUE(dedup_key)")]
    for table, columns in NOTIFICATION_COLUMNS.items():
        got = db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
        assert [c for (c,) in got] == columns, table
    db.close()


# The notification tables (m010): what the dispatcher, the delivery worker and the digest scheduler share.
NOTIFICATION_COLUMNS = {
    "notify_groups": [
        "group_key",
        "route_id",
        "receiver",
        "group_labels",
        "created_at",
        "next_flush_at",
        "last_flush_at",
    ],
    "notify_log": ["group_key", "channel", "firing", "resolved", "notified_at", "outbox_id"],
    "notify_outbox": [
        "id",
        "dedup_key",
        "kind",
        "receiver",
        "channel",
        "channel_type",
        "target",
        "group_key",
        "reason",
        "status",
        "summary",
        "payload",
        "created_at",
        "attempts",
        "next_attempt_at",
        "last_attempt_at",
        "last_error",
        "sent_at",
    ],
    "silences": ["id", "matchers", "starts_at", "ends_at", "created_by", "comment", "created_at", "updated_at"],
    "digest_state": ["name", "last_slot"],
}


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
