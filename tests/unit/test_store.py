"""The whole schema, migrations and their bookkeeping, on a real DuckDB file."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from alerts.store import INSTANCE_COLUMNS
from analytics.anomalies.job import SCORE_SCHEMA
from analytics.drift.results import RESULT_COLUMNS
from analytics.rollups import ROLLUP_COLUMNS, STORED
from core.migrations import MIGRATIONS
from core.records import CALL_COLUMNS, TABLES
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

    def columns(table: str) -> list[str]:
        return [
            name
            for (name,) in db.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                [table],
            ).fetchall()
        ]

    # m012 appended the canonical model to the rollups' dimensions
    dims = [c for c in ROLLUP_COLUMNS if c != "model"]
    assert columns("call_rollups") == ["hour_us", *dims, *STORED, "lat_max", "lat_sum", "model"]
    # retention (m014): daily rollups have the hourly table's columns; calls keep no primary key (its index)
    assert columns("call_rollups_daily") == columns("call_rollups")
    assert columns("retention_state") == ["kind", "project", "before_us"]
    assert columns("retention_runs") == ["started_at", "dry_run", "trigger", "removed", "seconds"]
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
    # budgets and the price book (m013)
    assert columns("price_entries")[:3] == ["entry_id", "source", "provider"]
    assert columns("cost_history")[:4] == ["run_id", "trace_id", "span_id", "old_cost_usd"]
    for table, expected in ALERT_TABLES.items():
        assert columns(table) == expected, table
    keys = db.execute(
        "SELECT table_name, constraint_text FROM duckdb_constraints() "
        "WHERE constraint_type = 'PRIMARY KEY' ORDER BY table_name"
    ).fetchall()
    assert keys == [
        ("access_keys", "PRIMARY KEY(id)"),
        ("alert_instances", "PRIMARY KEY(fingerprint)"),
        ("alert_rule_files", "PRIMARY KEY(path)"),
        ("alert_rule_status", "PRIMARY KEY(rule_id)"),
        ("alert_rules", 'PRIMARY KEY("name")'),
        ("audit_log", "PRIMARY KEY(id)"),
        ("budgets", "PRIMARY KEY(budget_id)"),
        ("content_events", "PRIMARY KEY(event_id)"),
        ("detection_state", 'PRIMARY KEY("name")'),
        ("digest_state", 'PRIMARY KEY("name")'),
        ("drift_runs", "PRIMARY KEY(run_id)"),
        ("metric_points", "PRIMARY KEY(point_id)"),
        ("notify_groups", "PRIMARY KEY(group_key)"),
        ("notify_log", "PRIMARY KEY(group_key, channel)"),
        ("notify_outbox", "PRIMARY KEY(id)"),
        ("price_audit", "PRIMARY KEY(audit_id)"),
        ("price_entries", "PRIMARY KEY(entry_id)"),
        ("release_markers", 'PRIMARY KEY(project, service, "release")'),
        ("reprice_runs", "PRIMARY KEY(run_id)"),
        ("retention_state", "PRIMARY KEY(kind, project)"),
        ("rollup_state", 'PRIMARY KEY("name")'),
        ("schema_migrations", 'PRIMARY KEY("name")'),
        ("silences", "PRIMARY KEY(id)"),
        ("spans", "PRIMARY KEY(trace_id, span_id)"),
        ("user_grants", "PRIMARY KEY(user_name, project)"),
        ("user_sessions", "PRIMARY KEY(token_sha256)"),
        ("users", 'PRIMARY KEY("name")'),
    ]
    unique = db.execute("SELECT table_name, constraint_text FROM duckdb_constraints() WHERE constraint_type = 'UNIQUE'")
    assert sorted(unique.fetchall()) == [
        ("access_keys", "UNIQUE(key_sha256)"),
        ("budgets", 'UNIQUE("name")'),
        ("notify_outbox", "UNIQUE(dedup_key)"),
    ]
    for table, columns in (NOTIFICATION_COLUMNS | ACCESS_COLUMNS).items():
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

# Access control (m015): users, grants, sessions, keys made by admins, the audit log.
ACCESS_COLUMNS = {
    "users": ["name", "password_hash", "created_at"],
    "user_grants": ["user_name", "project", "role"],
    "user_sessions": ["token_sha256", "user_name", "created_at", "expires_at"],
    "access_keys": ["id", "key_sha256", "project", "role", "note", "created_by", "created_at"],
    "audit_log": [
        "id",
        "changed_at",
        "actor",
        "actor_kind",
        "action",
        "object_kind",
        "object_id",
        "project",
        "before",
        "after",
    ],
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


def test_a_store_made_before_m007_gets_provider_source_on_open(tmp_path):
    """A store of the previous release (m001-m006 and m008: m007 sorts before m008 but is newer) gains the column
    when opened, and the providers it holds, all sent by clients then, are marked 'client'."""
    path = tmp_path / "old.duckdb"
    db = duckdb.connect(str(path))
    applied_migrations(db)  # creates the bookkeeping table
    for name, fn in MIGRATIONS:
        if name == "m007_call_provider_source" or name > "m008_alert_instances":
            continue
        fn(db)
        db.execute("INSERT INTO schema_migrations VALUES (?, now())", [name])
    old_columns = [
        c.name for c in CALL_COLUMNS if c.name not in ("provider_source", "service_version", "model", "price_entry_id")
    ]
    for i, provider in enumerate(("openai", None)):
        values = {c: None for c in old_columns}
        values.update(
            trace_id=bytes([i + 1]) * 16,
            span_id=bytes([i + 1]) * 8,
            project="default",
            start_time=datetime(2026, 1, 1, tzinfo=UTC),
            end_time=datetime(2026, 1, 1, tzinfo=UTC),
            duration_ms=1.0,
            provider=provider,
            pricing="unpriced",
            streaming=False,
            status="ok",
            convention="otel_genai",
            received_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        db.execute(
            f"INSERT INTO calls ({', '.join(old_columns)}) VALUES ({', '.join('?' for _ in old_columns)})",
            [values[c] for c in old_columns],
        )
    db.close()

    db = connect(path)
    assert applied_migrations(db) == sorted(name for name, _ in MIGRATIONS)
    got = db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'calls' ORDER BY ordinal_position"
    ).fetchall()
    assert [name for (name,) in got] == [c.name for c in CALL_COLUMNS]
    assert db.execute("SELECT provider, provider_source FROM calls ORDER BY span_id").fetchall() == [
        ("openai", "client"),
        (None, None),
    ]
    db.close()
