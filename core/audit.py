"""The audit log: every change to rules, silences, budgets, prices, users and keys, once, with who, when, what,
and the object before and after (None when it did not exist / no longer exists).

A change and its audit row are written in the same transaction by whoever makes the change (`record` takes the
cursor that made it), so a change that rolls back leaves no row and a row never lacks its change. Secrets never
enter: callers pass the object as shown to admins (hashes and keys left out).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import duckdb
import orjson

from core import ids
from core.access import Principal

COLUMNS = (
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
)


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS).decode()


def record(
    cur: duckdb.DuckDBPyConnection,
    actor: Principal,
    action: str,
    object_kind: str,
    object_id: str,
    *,
    before: Any = None,
    after: Any = None,
    project: str | None = None,
    at: datetime | None = None,
) -> None:
    """One audit row for one change (action: create, update, delete, expire, ...)."""
    [row_id] = ids.take(cur, "audit_log_id", 1)  # the file's sequence, or a lake's in its catalog (core/ids.py)
    cur.execute(
        "INSERT INTO audit_log (id, changed_at, actor, actor_kind, action, object_kind, object_id, project, before,"
        " after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            row_id,
            at or datetime.now(UTC),
            actor.name,
            actor.kind,
            action,
            object_kind,
            object_id,
            project,
            _json(before),
            _json(after),
        ],
    )


def entries(
    cur: duckdb.DuckDBPyConnection,
    projects: Iterable[str] | None = None,
    object_kind: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Audit rows, newest first; `projects` limits them to those projects (None: all, including server-wide)."""
    clauses, params = ["TRUE"], []
    if projects is not None:
        wanted = sorted(projects)
        if not wanted:
            return []
        clauses.append(f"project IN ({', '.join('?' for _ in wanted)})")
        params.extend(wanted)
    if object_kind is not None:
        clauses.append("object_kind = ?")
        params.append(object_kind)
    rows = cur.execute(
        f"SELECT {', '.join(COLUMNS)} FROM audit_log WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?",  # noqa: S608
        [*params, limit],
    ).fetchall()
    out = []
    for row in rows:
        item = dict(zip(COLUMNS, row, strict=True))
        item["before"] = orjson.loads(item["before"]) if item["before"] is not None else None
        item["after"] = orjson.loads(item["after"]) if item["after"] is not None else None
        out.append(item)
    return out
