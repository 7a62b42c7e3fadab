"""Retention: per project and per kind of data, how long rows are kept; the job that removes older rows.

Kinds: raw calls, non-model spans, captured content (content events and the content columns of calls), metric
points, alert history, the notification outbox (sent or given-up rows only), the audit log, hourly rollups and daily
rollups. A policy is a number of days per kind (None: kept for ever), with per-project overrides.

What keeps the numbers right when raw calls go:
- Raw calls are removed only in whole UTC hours, and only once folded into the hourly rollups (received_at at or
  below the rollup watermark). The hour below which a project's raw calls were removed is recorded in
  `retention_state`; the rollup fold (analytics/rollups.py) adds late calls of such hours to their rollups
  instead of re-folding the hour from raw calls that are gone.
- Hourly rollups older than their policy are merged into daily rollups (a whole UTC day at a time, and only where
  the raw calls are gone, so a re-fold can never count an hour twice); daily rollups older than theirs are removed.
- Queries over a range whose raw calls are gone are answered from the rollups (analytics/stats.py), and say so.

Deletes run in bounded batches, each its own short transaction on its own cursor: the writer thread keeps
committing meanwhile (DuckDB's transactions conflict only on the same rows, and retention touches old rows the
writer never writes). A batch that meets a conflict is retried. Deleted rows free their blocks at the next
checkpoint (DuckDB reuses them before growing the file); `compact_file` rewrites a stopped store into a fresh file
to give the space back to the file system.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from analytics import rollups
from analytics.timewin import US, to_us
from core.settings import Settings, SettingsError
from core.storage import database_file

T = TypeVar("T")

log = logging.getLogger("callscope.retention")

DAY_US = 86_400 * US
HOUR_US = rollups.HOUR_US
RETRIES = 5


@dataclass(frozen=True)
class Kind:
    name: str
    table: str
    time_sql: str  # the row's time, as a TIMESTAMPTZ expression
    per_project: bool
    help: str
    where: str = "TRUE"  # rows of the table this kind may remove at all


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("calls", "calls", "start_time", True, "raw model calls (removed only once folded into hourly rollups)"),
        Kind("spans", "spans", "start_time", True, "non-model spans"),
        Kind(
            "content",
            "content_events",
            "coalesce(time, received_at)",
            True,
            "captured prompts and completions: content events, and the content columns of calls",
        ),
        Kind("metrics", "metric_points", "coalesce(time, received_at)", True, "OTLP metric points"),
        Kind("alert_history", "alert_history", "changed_at", False, "alert state changes"),
        Kind(
            "notifications",
            "notify_outbox",
            "created_at",
            False,
            "notification outbox rows that were delivered or gave up (pending ones are never removed)",
            "status NOT IN ('pending', 'retrying')",
        ),
        Kind("audit", "audit_log", "", False, "the audit log (its first TIMESTAMPTZ column is the row's time)"),
        Kind(
            "rollups_hourly",
            "call_rollups",
            "make_timestamptz(hour_us)",
            True,
            "hourly rollups: older ones are merged into daily rollups",
        ),
        Kind("rollups_daily", "call_rollups_daily", "make_timestamptz(hour_us)", True, "daily rollups"),
    )
}
# Used when a kind has no setting: raw data for ever (removing it is a choice), the alerting tables that only grow
# for a year, the outbox for 90 days, hourly rollups for 400 days (a year-on-year view) and daily ones for ever.
DEFAULT_DAYS: dict[str, int | None] = {
    "calls": None,
    "spans": None,
    "content": None,
    "metrics": None,
    "alert_history": 365,
    "notifications": 90,
    "audit": 365,
    "rollups_hourly": 400,
    "rollups_daily": None,
}


class PolicyError(SettingsError):
    """A retention policy that cannot be applied; the message says which kind and why."""


def _days(kind: str, raw: Any) -> int | None:
    if kind not in KINDS:
        raise PolicyError(f"unknown kind of data {kind!r}; known: {', '.join(KINDS)}")
    text = str(raw).strip().lower().removesuffix("d")
    if text in {"forever", "never", "inf", "none", "0", ""}:
        return None
    try:
        days = int(text)
    except ValueError:
        raise PolicyError(f"{kind}={raw!r}: expected a number of days or 'forever'") from None
    if days < 1:
        raise PolicyError(f"{kind}={raw!r}: at least 1 day (or 'forever')")
    return days


@dataclass(frozen=True)
class Policy:
    """Days to keep per kind (None: for ever), and per-project overrides of some kinds."""

    days: Mapping[str, int | None] = field(default_factory=lambda: dict(DEFAULT_DAYS))
    projects: Mapping[str, Mapping[str, int | None]] = field(default_factory=dict)

    @classmethod
    def parse(cls, defaults: Mapping[str, Any], projects: Mapping[str, Mapping[str, Any]]) -> Policy:
        days = dict(DEFAULT_DAYS) | {k: _days(k, v) for k, v in defaults.items()}
        per_project = {p: {k: _days(k, v) for k, v in kinds.items()} for p, kinds in projects.items()}
        for p, kinds in per_project.items():
            for k in kinds:
                if not KINDS[k].per_project:
                    raise PolicyError(f"project {p!r}: {k} is kept for the whole store, not per project")
        policy = cls(days, per_project)
        policy._check(None)
        for p in per_project:
            policy._check(p)
        return policy

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls.parse(settings.retention, settings.retention_projects)

    def of(self, kind: str, project: str | None) -> int | None:
        if project is not None and kind in self.projects.get(project, {}):
            return self.projects[project][kind]
        return self.days.get(kind)

    def _check(self, project: str | None) -> None:
        """Rollups must outlive the raw calls (else a range would lose its numbers), daily outlive hourly."""
        where = f"project {project!r}: " if project else ""
        chain = ("calls", "rollups_hourly", "rollups_daily")
        for shorter, longer in itertools.pairwise(chain):
            a, b = self.of(shorter, project), self.of(longer, project)
            # A kind kept for ever is never shortened by the next one: hourly rollups are merged into daily ones
            # only where raw calls are gone, daily ones exist only for merged hours.
            if a is not None and b is not None and a > b:
                raise PolicyError(
                    f"{where}{longer} ({b} days) must be kept at least as long as {shorter}"
                    f" ({'forever' if a is None else f'{a} days'})"
                )

    def as_dict(self) -> dict[str, Any]:
        return {"default": dict(self.days), "projects": {p: dict(k) for p, k in self.projects.items()}}


# -- what a run removes ------------------------------------------------------------------------------------


@dataclass
class Removal:
    kind: str
    project: str | None
    cutoff: datetime
    rows: int
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "project": self.project,
            "before": self.cutoff.isoformat(),
            "rows": self.rows,
            **({"note": self.note} if self.note else {}),
        }


@dataclass
class Report:
    dry_run: bool
    now: datetime
    removals: list[Removal] = field(default_factory=list)
    seconds: float = 0.0
    batches: int = 0
    file_bytes_before: int = 0
    file_bytes_after: int = 0

    @property
    def total(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.removals:
            out[r.kind] = out.get(r.kind, 0) + r.rows
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "now": self.now.isoformat(),
            "removed": self.total,
            "details": [r.as_dict() for r in self.removals],
            "seconds": round(self.seconds, 3),
            "batches": self.batches,
            "file_bytes_before": self.file_bytes_before,
            "file_bytes_after": self.file_bytes_after,
        }


def _exists(db: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(db.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [table]).fetchall()[0][0])


def _time_sql(db: duckdb.DuckDBPyConnection, kind: Kind) -> str:
    if kind.time_sql:
        return kind.time_sql
    found = db.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND data_type = 'TIMESTAMP WITH TIME ZONE'"
        " ORDER BY column_index LIMIT 1",
        [kind.table],
    ).fetchall()
    if not found:
        raise PolicyError(f"{kind.table} has no TIMESTAMPTZ column to date its rows by")
    return '"' + found[0][0].replace('"', '""') + '"'


def _cutoff_us(now_us: int, days: int, align_us: int) -> int:
    """now - days, rounded down to a whole `align_us` (an hour for raw calls: they go in whole hours)."""
    return ((now_us - days * DAY_US) // align_us) * align_us


def _retry(work: Callable[[], int]) -> int:
    """Run a short transaction; a write-write conflict with another transaction (DuckDB aborts the later one) is
    retried after a moment."""
    for attempt in range(RETRIES):
        try:
            return work()
        except duckdb.TransactionException:
            if attempt == RETRIES - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    return 0


def _in_transaction(db: duckdb.DuckDBPyConnection, statements: Callable[[], T]) -> T:
    """`statements` on `db` itself (the runner's own cursor) inside one transaction; what they return."""
    db.execute("BEGIN TRANSACTION")
    try:
        out = statements()
        db.execute("COMMIT")
        return out
    except BaseException:
        db.execute("ROLLBACK")
        raise


def delete_where(
    db: duckdb.DuckDBPyConnection,
    table: str,
    where: str,
    params: list[Any],
    *,
    batch_rows: int,
    duty: float = 1.0,
    on_batch: Callable[[], None] | None = None,
) -> int:
    """DELETE in batches of at most `batch_rows`, each in its own transaction; returns the rows removed. `duty`:
    the share of time spent deleting (0.5: after a batch that took t, wait t), so that on a busy machine the
    writer's commits get the CPU DuckDB's delete would otherwise take."""
    total = 0
    sql = f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {where} LIMIT {int(batch_rows)})"  # noqa: S608 (names from KINDS)
    while True:
        started = time.perf_counter()
        n = _retry(lambda: _in_transaction(db, lambda: _changed(db.execute(sql, params))))
        total += n
        if on_batch is not None:
            on_batch()
        if n < batch_rows:
            return total
        _pace(started, duty)


def delete_in_slices(
    db: duckdb.DuckDBPyConnection,
    table: str,
    time_sql: str,
    where: str,
    params: list[Any],
    *,
    batch_rows: int,
    duty: float = 1.0,
    on_batch: Callable[[], None] | None = None,
) -> int:
    """Like delete_where, but each batch is a time slice of whole hours holding at most `batch_rows` rows (an hour
    with more is cut further by LIMIT). A plain `LIMIT n` batch rescans every row group before it from the start
    (the deleted rows still sit in them), which makes a large run quadratic; a slice reads only its own row
    groups (zone maps on the time column), so the work stays linear in the rows removed."""
    hours = db.execute(
        f"SELECT epoch_us({time_sql}) // {HOUR_US} AS h, count(*) FROM {table} WHERE {where} GROUP BY 1 ORDER BY 1",  # noqa: S608
        params,
    ).fetchall()
    slices: list[tuple[int, int]] = []
    lo, rows = None, 0
    for hour, n in hours:
        if lo is not None and rows + n > batch_rows:
            slices.append((lo, hour))
            lo, rows = None, 0
        if lo is None:
            lo = hour
        rows += n
    if lo is not None:
        slices.append((lo, hours[-1][0] + 1))
    total = 0
    sliced = f"{where} AND {time_sql} >= make_timestamptz(?::BIGINT) AND {time_sql} < make_timestamptz(?::BIGINT)"
    for a, b in slices:
        started = time.perf_counter()
        total += delete_where(
            db, table, sliced, [*params, a * HOUR_US, b * HOUR_US], batch_rows=batch_rows, duty=duty, on_batch=on_batch
        )
        _pace(started, duty)
    return total


def _pace(started: float, duty: float) -> None:
    if duty < 1.0:
        time.sleep((time.perf_counter() - started) * (1.0 - duty) / duty)


def _changed(result: duckdb.DuckDBPyConnection) -> int:
    row = result.fetchone()
    return int(row[0]) if row else 0


def delete_before(db: duckdb.DuckDBPyConnection, table: str, time_column: str, before_us: int, batch_rows: int) -> int:
    """Every row of `table` older than `before_us` (bench/storage.py's half deletion)."""
    return delete_where(db, table, f"{time_column} < make_timestamptz(?::BIGINT)", [before_us], batch_rows=batch_rows)


def _count(db: duckdb.DuckDBPyConnection, table: str, where: str, params: list[Any]) -> int:
    return db.execute(f"SELECT count(*) FROM {table} WHERE {where}", params).fetchall()[0][0]  # noqa: S608


def pruned_before(db: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """project -> the hour before which its raw calls were removed."""
    rows = db.execute("SELECT project, before_us FROM retention_state WHERE kind = 'calls'").fetchall()
    return dict(rows)


def _projects(db: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in db.execute(f"SELECT DISTINCT project FROM {table}").fetchall()]  # noqa: S608


@dataclass
class Runner:
    """One retention run over a store (the scheduled job, the API's run route and `callscope retention` use it)."""

    db: duckdb.DuckDBPyConnection
    policy: Policy
    batch_rows: int = 50_000
    duty: float = 1.0  # share of time spent deleting (a running server: 0.5, see delete_where)
    checkpoint: bool = True  # a running server leaves it to DuckDB's automatic checkpoint (a checkpoint pauses commits)
    now: datetime | None = None
    on_batch: Callable[[], None] | None = None

    def run(self, *, dry_run: bool = False) -> Report:
        started = time.perf_counter()
        now = self.now or datetime.now(UTC)
        report = Report(dry_run=dry_run, now=now)
        path = database_file(self.db)
        report.file_bytes_before = _file_size(path)
        now_us = to_us(now)
        db = self.db
        for kind in KINDS.values():
            if not _exists(db, kind.table):
                continue
            if kind.name == "rollups_hourly":
                report.removals += self._merge_hourly(now_us, dry_run)
                continue
            time_sql = _time_sql(db, kind)
            scopes: list[str | None] = _projects(db, kind.table) if kind.per_project else [None]
            for project in scopes:
                days = self.policy.of(kind.name, project)
                if days is None:
                    continue
                align = HOUR_US if kind.name == "calls" else DAY_US if kind.name == "rollups_daily" else 1
                cutoff = _cutoff_us(now_us, days, align)
                where = f"{kind.where} AND {time_sql} < make_timestamptz(?::BIGINT)"
                params: list[Any] = [cutoff]
                if project is not None:
                    where += " AND project = ?"
                    params.append(project)
                note = ""
                if kind.name == "calls":
                    where += " AND received_at <= make_timestamptz(?::BIGINT)"
                    params.append(rollups.watermark(db))
                    note = "only calls already folded into hourly rollups"
                rows = (
                    _count(db, kind.table, where, params)
                    if dry_run
                    else self._delete(kind.table, time_sql, where, params, report)
                )
                if kind.name == "content":
                    rows += self._content_of_calls(project, cutoff, dry_run, report)
                if kind.name == "calls" and not dry_run:
                    self._record_pruned(project, cutoff)
                cut = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=cutoff)
                report.removals.append(Removal(kind.name, project, cut, rows, note))
        if self.checkpoint and not dry_run and any(r.rows for r in report.removals):
            _checkpoint(db)
        report.seconds = time.perf_counter() - started
        report.file_bytes_after = _file_size(path)  # the same until compacted: freed blocks are reused inside the file
        return report

    def _delete(self, table: str, time_sql: str, where: str, params: list[Any], report: Report) -> int:
        def counted() -> None:
            report.batches += 1
            if self.on_batch is not None:
                self.on_batch()

        return delete_in_slices(
            self.db, table, time_sql, where, params, batch_rows=self.batch_rows, duty=self.duty, on_batch=counted
        )

    def _content_of_calls(self, project: str | None, cutoff: int, dry_run: bool, report: Report) -> int:
        """Captured content kept inside calls (input_content/output_content): emptied, the call itself stays."""
        where = (
            "start_time < make_timestamptz(?::BIGINT) AND project = ?"
            " AND (input_content IS NOT NULL OR output_content IS NOT NULL)"
        )
        params = [cutoff, project]
        if dry_run:
            return _count(self.db, "calls", where, params)
        sql = (
            "UPDATE calls SET input_content = NULL, output_content = NULL WHERE rowid IN"  # noqa: S608 (constants)
            f" (SELECT rowid FROM calls WHERE {where} LIMIT {int(self.batch_rows)})"
        )
        total = 0
        while True:
            started = time.perf_counter()
            n = _retry(lambda: _in_transaction(self.db, lambda: _changed(self.db.execute(sql, params))))
            report.batches += 1
            total += n
            if n < self.batch_rows:
                return total
            _pace(started, self.duty)

    def _record_pruned(self, project: str | None, cutoff: int) -> None:
        def work() -> int:
            self.db.execute(
                "MERGE INTO retention_state r USING (SELECT 'calls' AS kind, ?::VARCHAR AS project, ?::BIGINT AS b) s"
                " ON r.kind = s.kind AND r.project = s.project"
                " WHEN MATCHED THEN UPDATE SET before_us = greatest(r.before_us, s.b)"
                " WHEN NOT MATCHED THEN INSERT VALUES (s.kind, s.project, s.b)",
                [project, cutoff],
            )
            return 1

        _retry(lambda: _in_transaction(self.db, work))

    def _merge_hourly(self, now_us: int, dry_run: bool) -> list[Removal]:
        """Hourly rollups past their policy -> daily rollups, whole UTC days, only below the hour where raw
        calls were removed (so a later re-fold never counts an hour both hourly-from-raw and daily)."""
        db = self.db
        out = []
        pruned = pruned_before(db)
        for project in _projects(db, "call_rollups"):
            days = self.policy.of("rollups_hourly", project)
            if days is None or project not in pruned:
                continue
            cutoff = min(_cutoff_us(now_us, days, DAY_US), (pruned[project] // DAY_US) * DAY_US)
            where = "hour_us < ? AND project = ?"
            params = [cutoff, project]
            if dry_run:
                rows = _count(db, "call_rollups", where, params)
            else:
                rows = _retry(lambda p=params, w=where: _in_transaction(db, lambda: _merge(db, w, p)))
            cut = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=cutoff)
            out.append(Removal("rollups_hourly", project, cut, rows, "merged into daily rollups"))
        return out


_DAILY_VALUES = {
    **{b: f"sum({b})" for b in (*rollups.STORED, "lat_sum")},
    "lat_max": "max(lat_max)",
}


def _merge(db: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> int:
    dims = ", ".join(rollups.ROLLUP_COLUMNS)
    values = ", ".join(f"{sql} AS {name}" for name, sql in _DAILY_VALUES.items())
    db.execute(
        f"INSERT INTO call_rollups_daily BY NAME SELECT (hour_us // {DAY_US}) * {DAY_US} AS hour_us, {dims},"  # noqa: S608
        f" {values} FROM call_rollups WHERE {where} GROUP BY ALL",
        params,
    )
    return _changed(db.execute(f"DELETE FROM call_rollups WHERE {where}", params))  # noqa: S608


def _file_size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def _checkpoint(db: duckdb.DuckDBPyConnection) -> None:
    """Give the deleted rows' blocks back to DuckDB's free list (reused before the file grows). A checkpoint
    waits for no one: when another transaction is open it is skipped, and DuckDB's automatic checkpoint (at
    checkpoint_threshold) does it later."""
    try:
        db.execute("CHECKPOINT")
    except duckdb.Error as exc:
        log.info("retention: checkpoint deferred (%s)", exc)


# -- deletion by user --------------------------------------------------------------------------------------


def delete_user(db: duckdb.DuckDBPyConnection, user_id: str, project: str | None = None) -> dict[str, int]:
    """Every call of `user_id` (in `project`, or in every project), its captured content and the non-model spans of
    its traces, in one transaction; the hourly rollups of the hours it touched are re-folded from the remaining
    raw calls (where they still exist), so no total still counts the user's calls. Returns rows removed per table.
    Rollups hold no user id: hours whose raw calls are gone keep their totals."""
    where = "user_id = ?" + (" AND project = ?" if project is not None else "")
    params: list[Any] = [user_id] + ([project] if project is not None else [])

    def work() -> dict[str, int]:
        db.execute(
            "CREATE OR REPLACE TEMP TABLE _user_calls AS SELECT trace_id, span_id, project,"  # noqa: S608
            f" {rollups.HOUR_SQL} AS hour_us FROM calls WHERE {where}",
            params,
        )
        counts = {
            "content_events": _changed(
                db.execute(
                    "DELETE FROM content_events WHERE (trace_id, span_id) IN (SELECT (trace_id, span_id)"
                    " FROM _user_calls)"
                )
            ),
            "spans": _changed(
                db.execute("DELETE FROM spans WHERE trace_id IN (SELECT DISTINCT trace_id FROM _user_calls)")
            ),
            "calls": _changed(db.execute(f"DELETE FROM calls WHERE {where}", params)),  # noqa: S608
        }
        touched = db.execute("SELECT DISTINCT hour_us, project FROM _user_calls").fetchall()
        counts["rollup_hours_refolded"] = rollups.refold_pairs(db, touched)
        db.execute("DROP TABLE _user_calls")
        return counts

    out: dict[str, int] = {}

    def attempt() -> int:
        nonlocal out
        out = _in_transaction(db, work)
        return 1

    _retry(attempt)
    return out


# -- giving space back -------------------------------------------------------------------------------------


def compact_file(path: Path) -> tuple[int, int]:
    """Rewrite a stopped store into a new file (COPY FROM DATABASE) and swap it in: the only way to shrink a
    DuckDB file (a checkpoint reuses free blocks but truncates only free blocks at the file's end). Returns the
    file's size before and after. The old file is kept as `<name>.old` until the new one is in place."""
    before = path.stat().st_size
    fresh = path.with_name(path.name + ".compact")
    fresh.unlink(missing_ok=True)
    db = duckdb.connect(str(path))
    try:
        db.execute("CHECKPOINT")
        db.execute(f"ATTACH '{str(fresh).replace(chr(39), chr(39) * 2)}' AS compacted")
        name = db.execute("SELECT current_database()").fetchall()[0][0]
        db.execute(f'COPY FROM DATABASE "{name}" TO compacted')
        db.execute("DETACH compacted")
    finally:
        db.close()
    old = path.with_name(path.name + ".old")
    os.replace(path, old)
    os.replace(fresh, path)
    old.unlink()
    return before, path.stat().st_size


def record(db: duckdb.DuckDBPyConnection, report: Report, trigger: str) -> None:
    """Keep what a run removed (GET /retention shows the last runs)."""
    db.execute(
        "INSERT INTO retention_runs VALUES (?, ?, ?, MAP(?::VARCHAR[], ?::BIGINT[]), ?)",
        [report.now, report.dry_run, trigger, list(report.total), list(report.total.values()), report.seconds],
    )


def last_runs(db: duckdb.DuckDBPyConnection, limit: int = 10) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT started_at, dry_run, trigger, removed, seconds FROM retention_runs ORDER BY started_at DESC LIMIT ?",
        [limit],
    ).fetchall()
    return [
        {"started_at": r[0].isoformat(), "dry_run": r[1], "trigger": r[2], "removed": dict(r[3]), "seconds": r[4]}
        for r in rows
    ]
