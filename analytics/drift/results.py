"""Drift results in the store: one drift_runs row per job run, one drift_results row per cell and metric, kept
for `retention` (the history a cell's chart shows). Read back for the API (latest run, a cell's history)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from analytics.drift.compare import CellResult, Windows
from analytics.query import Params, project_clause
from analytics.timewin import TimeRange, to_us

RESULT_COLUMNS = (
    "project",
    "service",
    "model",
    "metric",
    "kind",
    "status",
    "test",
    "score",
    "threshold",
    "p_value",
    "p_adjusted",
    "severity",
    "drifted",
    "effect_size",
    "effect_measure",
    "effect_floor",
    "n_reference",
    "n_current",
    "reference_from",
    "reference_to",
    "current_from",
    "current_to",
    "baseline",
)
_TS = pa.timestamp("us", tz="UTC")
_SCHEMA = pa.schema(
    [
        ("run_id", pa.int64()),
        *((c, pa.string()) for c in ("project", "service", "model", "metric", "kind", "status", "test")),
        *((c, pa.float64()) for c in ("score", "threshold", "p_value", "p_adjusted", "severity")),
        ("drifted", pa.bool_()),
        ("effect_size", pa.float64()),
        ("effect_measure", pa.string()),
        ("effect_floor", pa.float64()),
        ("n_reference", pa.int64()),
        ("n_current", pa.int64()),
        *((c, _TS) for c in ("reference_from", "reference_to", "current_from", "current_to")),
        ("baseline", pa.string()),
    ]
)


@dataclass(frozen=True)
class Run:
    run_id: int
    computed_at: datetime
    windows: Windows
    cells: int
    drifted: int
    seconds: float


def save(
    db: duckdb.DuckDBPyConnection,
    results: list[CellResult],
    windows: Windows,
    *,
    computed_at: datetime,
    seconds: float,
    retention: timedelta,
) -> Run:
    """Store one run (one transaction) and delete runs older than `retention`."""
    rows = [r.as_row() for r in results]
    db.execute("BEGIN TRANSACTION")
    try:
        run_id = db.execute("SELECT coalesce(max(run_id), 0) + 1 FROM drift_runs").fetchall()[0][0]
        drifted = sum(1 for r in rows if r["drifted"])
        db.execute(
            "INSERT INTO drift_runs VALUES ($id, $at, $cf, $ct, $rf, $rt, $cells, $drifted, $seconds)",
            {
                "id": run_id,
                "at": computed_at,
                "cf": windows.current.start,
                "ct": windows.current.end,
                "rf": windows.reference.start,
                "rt": windows.reference.end,
                "cells": len(rows),
                "drifted": drifted,
                "seconds": seconds,
            },
        )
        if rows:
            table = pa.Table.from_pylist([{"run_id": run_id, **row} for row in rows], schema=_SCHEMA)
            db.register("_drift_rows", table)
            db.execute("INSERT INTO drift_results BY NAME SELECT * FROM _drift_rows")
            db.unregister("_drift_rows")
        cutoff = computed_at - retention
        db.execute(
            "DELETE FROM drift_results WHERE run_id IN (SELECT run_id FROM drift_runs WHERE computed_at < $c)",
            {"c": cutoff},
        )
        db.execute("DELETE FROM drift_runs WHERE computed_at < $c", {"c": cutoff})
        db.execute("COMMIT")
    except Exception:
        db.execute("ROLLBACK")
        raise
    return Run(run_id, computed_at, windows, len(rows), drifted, seconds)


def runs(db: duckdb.DuckDBPyConnection, limit: int = 50, run_id: int | None = None) -> list[dict[str, Any]]:
    """The latest runs (or one run), newest first."""
    params = Params()
    where = f"WHERE run_id = {params.add(run_id)}" if run_id is not None else ""
    rel = db.execute(
        "SELECT run_id, computed_at, current_from, current_to, reference_from, reference_to, cells, drifted_cells,"
        f" seconds FROM drift_runs {where} ORDER BY run_id DESC LIMIT {int(limit)}",
        params.values,
    )
    names = [d[0] for d in rel.description]
    return [dict(zip(names, row, strict=True)) for row in rel.fetchall()]


def latest_run_id(db: duckdb.DuckDBPyConnection) -> int | None:
    return db.execute("SELECT max(run_id) FROM drift_runs").fetchall()[0][0]


def windows_of(
    db: duckdb.DuckDBPyConnection, run_id: int, cell: tuple[str | None, str | None, str | None] | None = None
) -> Windows | None:
    """A run's windows; for a cell, the windows its own verdict used (a service pinned to a release has its own)."""
    if cell is None:
        row = db.execute(
            "SELECT reference_from, reference_to, current_from, current_to, NULL FROM drift_runs WHERE run_id = ?",
            [run_id],
        ).fetchall()
    else:
        row = db.execute(
            "SELECT reference_from, reference_to, current_from, current_to, baseline FROM drift_results"
            " WHERE run_id = ? AND project IS NOT DISTINCT FROM ? AND service IS NOT DISTINCT FROM ?"
            " AND model IS NOT DISTINCT FROM ? LIMIT 1",
            [run_id, *cell],
        ).fetchall()
    if not row:
        return None
    rf, rt, cf, ct, baseline = row[0]
    return Windows(TimeRange(rf, rt), TimeRange(cf, ct), baseline)


def as_table(rows: list[CellResult]) -> pa.Table:
    """Verdicts as a table of RESULT_COLUMNS (what /drift/compare answers)."""
    return pa.Table.from_pylist([r.as_row() for r in rows], schema=_SCHEMA.remove(0))


def empty() -> pa.Table:
    return _SCHEMA.remove(0).empty_table()


@dataclass(frozen=True)
class ResultFilter:
    project: str | None = None
    services: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    drifted_only: bool = False
    projects: frozenset[str] | None = None  # the projects the asker may see; None: all

    def where(self, params: Params, prefix: str = "") -> str:
        clauses = ["TRUE", project_clause(self.projects, params, f"{prefix}project")]
        if self.project is not None:
            clauses.append(f"{prefix}project = {params.add(self.project)}")
        for column, values in (("service", self.services), ("model", self.models), ("metric", self.metrics)):
            if values:
                clauses.append(f"{prefix}{column} IN ({', '.join(params.add(v) for v in values)})")
        if self.drifted_only:
            clauses.append(f"{prefix}drifted")
        return " AND ".join(clauses)


def results(db: duckdb.DuckDBPyConnection, run_id: int, where: ResultFilter) -> pa.Table:
    """One run's rows, by project, service, model and metric."""
    params = Params()
    sql = (
        f"SELECT {', '.join(RESULT_COLUMNS)} FROM drift_results WHERE run_id = {params.add(run_id)}"
        f" AND {where.where(params)} ORDER BY project, service, model, metric"
    )
    return db.sql(sql, params=params.values).to_arrow_table()


def history(db: duckdb.DuckDBPyConnection, where: ResultFilter, start: datetime, end: datetime) -> pa.Table:
    """Stored results matching `where` of the runs in [start, end), with their run's time, oldest first."""
    params = Params()
    sql = (
        f"SELECT r.run_id, u.computed_at, {', '.join(f'r.{c}' for c in RESULT_COLUMNS)} FROM drift_results r"
        " JOIN drift_runs u USING (run_id)"
        f" WHERE u.computed_at >= make_timestamptz({params.add(to_us(start))}::BIGINT)"
        f" AND u.computed_at < make_timestamptz({params.add(to_us(end))}::BIGINT)"
        f" AND {where.where(params, 'r.')} ORDER BY u.computed_at, r.project, r.service, r.model, r.metric"
    )
    return db.sql(sql, params=params.values).to_arrow_table()
