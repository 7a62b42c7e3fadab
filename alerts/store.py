"""Alert state in the DuckDB store: instances (alert_instances, the hand-over table to notification), their
history, each rule's health, the rules created through the API, and the last good rules file.

An evaluation's changes are written in ONE transaction (instances, history, health), so a crash leaves either
the state before or the state after, and notification (which reads alert_instances) never sees a state change
without its history. Writes are serialised by a lock: evaluation, the API and the file reload run in different
threads of one server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from alerts.evaluate import Changes, StateStore
from alerts.machine import Instance
from alerts.model import AlertState
from core import ids
from core.store import WriteLock, held

_MAP = pa.map_(pa.string(), pa.string())
_TS = pa.timestamp("us", tz="UTC")
INSTANCE_COLUMNS = (
    "fingerprint",
    "rule_id",
    "labels",
    "annotations",
    "state",
    "value",
    "threshold",
    "active_at",
    "starts_at",
    "ends_at",
    "last_eval_at",
    "error",
    "keep_firing_since",
    "resume_state",
)
_INSTANCE_SCHEMA = pa.schema(
    [
        ("fingerprint", pa.string()),
        ("rule_id", pa.string()),
        ("labels", _MAP),
        ("annotations", _MAP),
        ("state", pa.string()),
        ("value", pa.float64()),
        ("threshold", pa.float64()),
        ("active_at", _TS),
        ("starts_at", _TS),
        ("ends_at", _TS),
        ("last_eval_at", _TS),
        ("error", pa.string()),
        ("keep_firing_since", _TS),
        ("resume_state", pa.string()),
    ]
)
_HISTORY_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("changed_at", _TS),
        ("rule_id", pa.string()),
        ("fingerprint", pa.string()),
        ("labels", _MAP),
        ("from_state", pa.string()),
        ("to_state", pa.string()),
        ("value", pa.float64()),
        ("threshold", pa.float64()),
        ("reason", pa.string()),
    ]
)
_HEALTH_SCHEMA = pa.schema(
    [
        ("rule_id", pa.string()),
        ("evaluated_at", _TS),
        ("duration_ms", pa.float64()),
        ("health", pa.string()),
        ("error", pa.string()),
        ("series", pa.int32()),
    ]
)


def _merge(table: str, source: str, keys: tuple[str, ...], columns: tuple[str, ...]) -> str:
    """An upsert by `keys` as MERGE (not INSERT ... ON CONFLICT: a lake has no key to conflict on; both stores take
    MERGE). The caller's transaction is serialised with the store's other writers, so it sees every earlier row."""
    on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    sets = ", ".join(f"{c} = s.{c}" for c in columns if c not in keys)
    return (
        f"MERGE INTO {table} t USING {source} s ON {on} WHEN MATCHED THEN UPDATE SET {sets}"
        " WHEN NOT MATCHED THEN INSERT BY NAME"
    )


_UPSERT_INSTANCES = _merge("alert_instances", "new_instances", ("fingerprint",), INSTANCE_COLUMNS)
_UPSERT_HEALTH = _merge("alert_rule_status", "new_health", ("rule_id",), tuple(_HEALTH_SCHEMA.names))
_UPSERT_FILE = _merge(
    "alert_rule_files",
    "(SELECT ?::VARCHAR AS path, ?::VARCHAR AS content, ?::VARCHAR AS sha256, ?::TIMESTAMPTZ AS loaded_at)",
    ("path",),
    ("path", "content", "sha256", "loaded_at"),
)
_SELECT_INSTANCES = f"SELECT {', '.join(INSTANCE_COLUMNS)} FROM alert_instances"


def _instance(row: tuple) -> Instance:
    values = dict(zip(INSTANCE_COLUMNS, row, strict=True))
    return Instance(
        fingerprint=values["fingerprint"],
        rule_id=values["rule_id"],
        labels=dict(values["labels"]),
        state=AlertState(values["state"]),
        annotations=dict(values["annotations"]) if values["annotations"] is not None else None,
        value=values["value"],
        threshold=values["threshold"],
        active_at=values["active_at"],
        starts_at=values["starts_at"],
        ends_at=values["ends_at"],
        keep_firing_since=values["keep_firing_since"],
        resume_state=AlertState(values["resume_state"]) if values["resume_state"] else None,
        last_eval_at=values["last_eval_at"],
        error=values["error"],
    )


def _instance_table(instances: Sequence[Instance]) -> pa.Table:
    columns: dict[str, list[Any]] = {c: [] for c in INSTANCE_COLUMNS}
    for inst in instances:
        columns["fingerprint"].append(inst.fingerprint)
        columns["rule_id"].append(inst.rule_id)
        columns["labels"].append(list(inst.labels.items()))
        columns["annotations"].append(list(inst.annotations.items()) if inst.annotations is not None else None)
        columns["state"].append(inst.state.value)
        columns["value"].append(inst.value)
        columns["threshold"].append(inst.threshold)
        for name in ("active_at", "starts_at", "ends_at", "last_eval_at", "keep_firing_since"):
            columns[name].append(getattr(inst, name))
        columns["error"].append(inst.error)
        columns["resume_state"].append(inst.resume_state.value if inst.resume_state else None)
    return pa.Table.from_pydict(columns, schema=_INSTANCE_SCHEMA)


class DuckStateStore(StateStore):
    """Evaluation is the only writer of alert_instances (notification reads it), so the instances it loads each
    cycle come from a write-through copy in memory, filled from the table once and updated after each commit."""

    def __init__(
        self, db: duckdb.DuckDBPyConnection, lock: WriteLock | None = None, job_lock: WriteLock | None = None
    ) -> None:
        """`lock`: held around every write (a lake's commit lock: the API writes rules on any node); `job_lock`:
        around evaluation's writes, which only the job lease's holder may make (it raises when the lease is gone)."""
        self._db = db
        self._lock = threading.Lock()
        self._write_lock = lock
        self._job_lock = job_lock if job_lock is not None else lock
        self._known: dict[str, Instance] | None = None

    @property
    def write_lock(self) -> WriteLock | None:
        """What the API holds around its own writes beside the rules (their audit rows)."""
        return self._write_lock

    def forget(self) -> None:
        """Drop the copy of alert_instances (read again at the next use): another node may have evaluated since."""
        with self._lock:
            self._known = None

    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        cur = self._db.cursor()
        try:
            cur.execute("SET TimeZone = 'UTC'")
            yield cur
        finally:
            cur.close()

    @contextmanager
    def transaction(self, lock: WriteLock | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        with held(lock or self._write_lock), self._lock, self._cursor() as cur:
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    # -- evaluation ------------------------------------------------------------------------------------------

    def _all(self) -> dict[str, Instance]:
        with self._lock:
            if self._known is None:
                with self._cursor() as cur:
                    rows = cur.execute(_SELECT_INSTANCES).fetchall()
                self._known = {i.fingerprint: i for i in map(_instance, rows)}
            return self._known

    def load(self, rule_ids: Sequence[str]) -> list[Instance]:
        wanted = set(rule_ids)
        return [i for i in list(self._all().values()) if i.rule_id in wanted]

    def orphans(self, rule_ids: Sequence[str]) -> list[Instance]:
        """Instances of rules not in `rule_ids` (rules deleted or renamed)."""
        wanted = set(rule_ids)
        return [i for i in list(self._all().values()) if i.rule_id not in wanted]

    def save(self, changes: Changes) -> None:
        if not (changes.instances or changes.removed or changes.history or changes.health):
            return
        with self.transaction(self._job_lock) as cur:
            if changes.removed:
                cur.execute(
                    "DELETE FROM alert_instances WHERE list_contains($fps, fingerprint)", {"fps": changes.removed}
                )
            if changes.instances:
                cur.register("new_instances", _instance_table(changes.instances))
                cur.execute(_UPSERT_INSTANCES)
                cur.unregister("new_instances")
            if changes.history:
                cur.register(
                    "new_history", _history_table(changes, ids.take(cur, "alert_history_id", len(changes.history)))
                )
                cur.execute("INSERT INTO alert_history BY NAME SELECT * FROM new_history")
                cur.unregister("new_history")
            if changes.health:
                cur.register("new_health", _health_table(changes))
                cur.execute(_UPSERT_HEALTH)
                cur.unregister("new_health")
        known = self._all()
        with self._lock:  # committed: the copy follows
            for fp in changes.removed:
                known.pop(fp, None)
            for inst in changes.instances:
                known[inst.fingerprint] = inst

    # -- reading (the API) -----------------------------------------------------------------------------------

    def instances(self, rule_id: str | None = None, state: str | None = None) -> list[Instance]:
        sql = _SELECT_INSTANCES + " WHERE ($rule IS NULL OR rule_id = $rule) AND ($state IS NULL OR state = $state)"
        with self._cursor() as cur:
            rows = cur.execute(sql + " ORDER BY rule_id, fingerprint", {"rule": rule_id, "state": state})
            return [_instance(r) for r in rows.fetchall()]

    def history(
        self, rule_id: str | None, start: datetime | None, end: datetime | None, limit: int
    ) -> list[dict[str, Any]]:
        sql = (
            "SELECT changed_at, rule_id, fingerprint, labels, from_state, to_state, value, threshold, reason"
            " FROM alert_history"
            " WHERE ($rule IS NULL OR rule_id = $rule) AND ($start IS NULL OR changed_at >= $start)"
            " AND ($end IS NULL OR changed_at < $end) ORDER BY changed_at DESC, id DESC LIMIT $limit"
        )
        with self._cursor() as cur:
            result = cur.execute(sql, {"rule": rule_id, "start": start, "end": end, "limit": limit})
            names = [d[0] for d in result.description]
            rows = [dict(zip(names, r, strict=True)) for r in result.fetchall()]
        for row in rows:
            row["labels"] = dict(row["labels"])
        return rows

    def health(self) -> dict[str, dict[str, Any]]:
        with self._cursor() as cur:
            result = cur.execute(
                "SELECT rule_id, evaluated_at, duration_ms, health, error, series FROM alert_rule_status"
            )
            names = [d[0] for d in result.description]
            return {r[0]: dict(zip(names, r, strict=True)) for r in result.fetchall()}

    def last_evaluated(self) -> dict[str, datetime]:
        return {rule_id: row["evaluated_at"] for rule_id, row in self.health().items()}

    # -- rules created through the API ----------------------------------------------------------------------

    def api_rules(self) -> list[dict[str, Any]]:
        with self._cursor() as cur:
            rows = cur.execute("SELECT spec FROM alert_rules ORDER BY name").fetchall()
        return [orjson.loads(spec) for (spec,) in rows]

    def api_rules_signature(self) -> tuple:
        """Changes when an API rule is created, changed or deleted (by any node of a shared store)."""
        with self._cursor() as cur:
            return cur.execute(
                "SELECT count(*), max(updated_at), bit_xor(hash(name, updated_at)) FROM alert_rules"
            ).fetchone()

    def put_api_rule(self, name: str, spec: dict[str, Any], *, create: bool) -> bool:
        """Insert (create) or replace (edit) an API rule; False when it exists (create) or is missing (edit)."""
        now = datetime.now(UTC)
        with self.transaction() as cur:
            exists = cur.execute("SELECT count(*) FROM alert_rules WHERE name = ?", [name]).fetchone()[0] > 0
            if exists == create:
                return False
            if create:
                row = [name, orjson.dumps(spec).decode(), now, now]
                cur.execute("INSERT INTO alert_rules VALUES (?, ?, ?, ?)", row)
            else:
                cur.execute(
                    "UPDATE alert_rules SET spec = ?, updated_at = ? WHERE name = ?",
                    [orjson.dumps(spec).decode(), now, name],
                )
        return True

    def delete_api_rule(self, name: str) -> bool:
        with self.transaction() as cur:  # no RETURNING: a lake's DELETE has none
            found = cur.execute("SELECT count(*) FROM alert_rules WHERE name = ?", [name]).fetchone()[0]
            cur.execute("DELETE FROM alert_rules WHERE name = ?", [name])
        return found > 0

    # -- the rules file's last good copy ---------------------------------------------------------------------

    def save_file(self, path: str, content: str, sha256: str) -> None:
        with self.transaction() as cur:
            cur.execute(_UPSERT_FILE, [path, content, sha256, datetime.now(UTC)])

    def last_good_file(self, path: str) -> str | None:
        with self._cursor() as cur:
            rows = cur.execute("SELECT content FROM alert_rule_files WHERE path = ?", [path]).fetchall()
        return rows[0][0] if rows else None


def _history_table(changes: Changes, row_ids: list[int]) -> pa.Table:
    rows = [
        {
            "id": row_id,
            "changed_at": t.at,
            "rule_id": t.rule_id,
            "fingerprint": t.fingerprint,
            "labels": list(t.labels.items()),
            "from_state": t.from_state.value,
            "to_state": t.to_state.value,
            "value": t.value,
            "threshold": t.threshold,
            "reason": t.reason,
        }
        for t, row_id in zip(changes.history, row_ids, strict=True)
    ]
    return pa.Table.from_pylist(rows, schema=_HISTORY_SCHEMA)


def _health_table(changes: Changes) -> pa.Table:
    rows = [
        {
            "rule_id": h.rule_id,
            "evaluated_at": h.evaluated_at,
            "duration_ms": h.duration_ms,
            "health": h.health,
            "error": h.error,
            "series": h.series,
        }
        for h in changes.health
    ]
    return pa.Table.from_pylist(rows, schema=_HEALTH_SCHEMA)


class MemoryStateStore(StateStore):
    """State kept in memory: the backtest replays rules without touching the store."""

    def __init__(self) -> None:
        self.by_fp: dict[str, Instance] = {}
        self.transitions: list = []

    def load(self, rule_ids: Sequence[str]) -> list[Instance]:
        wanted = set(rule_ids)
        return [i for i in self.by_fp.values() if i.rule_id in wanted]

    def save(self, changes: Changes) -> None:
        for fp in changes.removed:
            self.by_fp.pop(fp, None)
        for inst in changes.instances:
            self.by_fp[inst.fingerprint] = inst
        self.transitions += changes.history
