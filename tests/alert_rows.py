"""Alert instances written straight into `alert_instances`, the seam's contract: evaluation writes one row per
instance (starts_at when it fires, ends_at when it resolves, NULL ends_at = firing); notification reads them.

Only for tests of notification alone (the dispatcher over a store with no evaluation running). Inside `callscope
serve` evaluation is the only writer of that table and retires the instances of rules that do not exist, so
server-level tests fire real rules with calls instead (tests/alert_calls.py export_calls)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import duckdb

from alerts.model import fingerprint


def put_alert(
    db: duckdb.DuckDBPyConnection,
    labels: Mapping[str, str],
    *,
    starts_at: datetime,
    ends_at: datetime | None = None,
    value: float | None = 0.12,
    threshold: float | None = 0.05,
    annotations: Mapping[str, str] | None = None,
    rule_id: str = "rule-1",
) -> str:
    """Insert or update an instance; returns its fingerprint."""
    fp = fingerprint(labels)
    state = "firing" if ends_at is None else "normal"
    db.execute(
        "INSERT OR REPLACE INTO alert_instances (fingerprint, rule_id, labels, annotations, state, value, threshold,"
        " active_at, starts_at, ends_at, last_eval_at, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
        [
            fp,
            rule_id,
            dict(labels),
            dict(annotations or {}),
            state,
            value,
            threshold,
            starts_at,
            starts_at,
            ends_at,
            ends_at or starts_at,
        ],
    )
    return fp


def resolve_alert(db: duckdb.DuckDBPyConnection, labels: Mapping[str, str], at: datetime) -> None:
    db.execute(
        "UPDATE alert_instances SET ends_at = ?, state = 'normal', last_eval_at = ? WHERE fingerprint = ?",
        [at, at, fingerprint(labels)],
    )
