"""Row ids of the tables whose id comes from a sequence (alert_history, notify_outbox, audit_log), on both stores.

Embedded: the file's own DuckDB sequence (`nextval`), as the column's default always did. Lake: DuckLake has no
sequences, and several nodes insert into the same tables, so the ids come from a PostgreSQL sequence of the same
name in the lake's catalog database (schema `callscope`): unique across nodes, increasing, never handed out
twice (PostgreSQL's nextval is not rolled back, so a transaction that fails leaves a gap, as DuckDB's does).

Callers pass the cursor of their transaction and how many ids they need; the store is told apart by the cursor's
default database (a lake is attached as `lake`, core/lake.py), so no caller needs to know which store it writes.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import psycopg

SCHEMA = "callscope"  # the catalog database's schema for callscope's own objects (DuckLake's: callscope_lake)
# sequence -> (table, column): the sequences of the embedded schema (core/migrations.py) that a lake draws from PG
SEQUENCES = {
    "alert_history_id": ("alert_history", "id"),
    "notify_outbox_id": ("notify_outbox", "id"),
    "audit_log_id": ("audit_log", "id"),
}
_PREFIXES = ("ducklake:postgres:", "postgres:")  # as DuckDB lists a DuckLake on PostgreSQL


class _Catalogs:
    """One autocommit connection per catalog (a process opens one lake; tests may open several)."""

    def __init__(self) -> None:
        self._conns: dict[str, psycopg.Connection] = {}
        self._lock = threading.Lock()

    def take(self, conninfo: str, sequence: str, n: int) -> list[int]:
        with self._lock:
            for attempt in (1, 2):  # a connection broken since its last use is reopened once
                conn = self._conns.get(conninfo)
                try:
                    if conn is None or conn.closed:
                        conn = self._conns[conninfo] = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
                    rows = conn.execute(
                        f"SELECT nextval('{SCHEMA}.{sequence}') FROM generate_series(1, %s)",  # noqa: S608 (a constant)
                        [n],
                    ).fetchall()
                    return [int(r[0]) for r in rows]
                except psycopg.OperationalError:
                    self._conns.pop(conninfo, None)
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")


_catalogs = _Catalogs()


def lake_catalog(cur: Any) -> str | None:
    """The catalog connection string when `cur` writes to a lake, else None (the embedded file)."""
    rows = cur.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database() AND type = 'ducklake'"
    ).fetchall()
    if not rows:
        return None
    path = rows[0][0] or ""
    for prefix in _PREFIXES:
        if path.startswith(prefix):
            return path[len(prefix) :]
    raise RuntimeError("this lake's catalog is not PostgreSQL: its ids cannot be drawn")


def take(cur: Any, sequence: str, n: int) -> list[int]:
    """`n` fresh ids of `sequence` (a key of SEQUENCES) for rows the caller inserts in its transaction."""
    if sequence not in SEQUENCES:
        raise ValueError(f"unknown id sequence {sequence!r}")
    if n <= 0:
        return []
    catalog = lake_catalog(cur)
    if catalog is None:
        rows = cur.execute(f"SELECT nextval('{sequence}') FROM range(?)", [n]).fetchall()  # noqa: S608 (a constant)
        return [int(r[0]) for r in rows]
    return _catalogs.take(catalog, sequence, n)


def prepare_lake(db: Any, conn: psycopg.Connection) -> None:
    """Create the lake's id sequences in the catalog (idempotent) and move each past the largest id its table holds
    (rows copied in by `callscope migrate` keep their ids). Run by one node at a time (the caller holds the
    catalog's migration lock); a sequence only ever moves forward."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    for sequence, (table, column) in SEQUENCES.items():
        if not re.fullmatch(r"[a-z_]+", sequence + table + column):
            raise ValueError(sequence)
        conn.execute(f"CREATE SEQUENCE IF NOT EXISTS {SCHEMA}.{sequence}")
        row = db.execute(f"SELECT max({column}) FROM {table}").fetchone()  # noqa: S608 (constants)
        stored = int(row[0]) if row and row[0] is not None else 0
        conn.execute(
            f"SELECT setval('{SCHEMA}.{sequence}', %s) FROM {SCHEMA}.{sequence}"  # noqa: S608 (constants)
            " WHERE %s > CASE WHEN is_called THEN last_value ELSE last_value - 1 END",
            [stored, stored],
        )
