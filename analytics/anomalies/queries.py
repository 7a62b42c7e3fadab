"""Reading anomaly scores back: the anomalous hours of a window (each with the filters that select its calls) and
one series with its baseline, for charts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import duckdb
import pyarrow as pa

from analytics.anomalies.series import HOUR_US, SERIES, Scope
from analytics.errors import QueryError
from analytics.query import Params, project_clause
from analytics.timewin import TimeRange, from_us

COLUMNS = (
    "hour_us",
    "project",
    "scope",
    "service",
    "model",
    "metric",
    "value",
    "calls",
    "baseline",
    "spread",
    "score",
    "basis",
    "history",
    "anomalous",
)


@dataclass(frozen=True)
class AnomalyFilter:
    project: str | None = None
    scope: Scope | None = None
    services: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    projects: frozenset[str] | None = None  # the projects the asker may see; None: all

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in SERIES]
        if unknown:
            raise QueryError(f"unknown anomaly metric(s) {', '.join(unknown)}; known: {', '.join(SERIES)}")

    def where(self, params: Params) -> str:
        clauses = ["TRUE", project_clause(self.projects, params)]
        if self.project is not None:
            clauses.append(f"project = {params.add(self.project)}")
        if self.scope is not None:
            clauses.append(f"scope = {params.add(self.scope.value)}")
        for column, values in (("service", self.services), ("model", self.models), ("metric", self.metrics)):
            if values:
                clauses.append(f"{column} IN ({', '.join(params.add(v) for v in values)})")
        return " AND ".join(clauses)


def _rows(db: duckdb.DuckDBPyConnection, where: str, params: Params, order: str, limit: int) -> list[dict[str, Any]]:
    sql = f"SELECT {', '.join(COLUMNS)} FROM anomaly_scores WHERE {where} ORDER BY {order} LIMIT {int(limit)}"
    return db.sql(sql, params=params.values).to_arrow_table().to_pylist()


def calls_filter(row: dict[str, Any]) -> dict[str, str]:
    """Read-API parameters selecting the calls of an anomaly's hour and series (for /calls, /stats, the pages)."""
    start = from_us(row["hour_us"])
    out = {"from": _iso(start), "to": _iso(from_us(row["hour_us"] + HOUR_US))}
    if row["project"] is not None:
        out["project"] = row["project"]
    if row["scope"] == Scope.SERVICE.value:
        out["service"] = "null" if row["service"] is None else row["service"]
    else:
        out["request_model"] = "null" if row["model"] is None else row["model"]
    return out


def _iso(moment: Any) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def anomalies(
    db: duckdb.DuckDBPyConnection, window: TimeRange, where: AnomalyFilter, *, limit: int = 500
) -> list[dict[str, Any]]:
    """The anomalous hours starting in the window, newest first, each with `hour` (its start), the unit of its
    metric, and `calls` (the parameters that select its calls) and `calls_path` (the /calls request)."""
    params = Params()
    clause = (
        f"anomalous AND hour_us >= {params.add(window.start_us)} AND hour_us < {params.add(window.end_us)}"
        f" AND {where.where(params)}"
    )
    rows = _rows(db, clause, params, "hour_us DESC, abs(score) DESC", limit)
    for row in rows:
        row["hour"] = from_us(row["hour_us"])
        row["unit"] = SERIES[row["metric"]].unit
        row["calls_filter"] = calls_filter(row)
        row["calls_path"] = "/calls?" + urlencode(row["calls_filter"])
    return rows


def series(db: duckdb.DuckDBPyConnection, window: TimeRange, where: AnomalyFilter, *, limit: int = 20_000) -> pa.Table:
    """Scored hours of the window (anomalous or not), oldest first: a series with its baseline and spread."""
    params = Params()
    clause = (
        f"hour_us >= {params.add(window.start_us)} AND hour_us < {params.add(window.end_us)} AND {where.where(params)}"
    )
    sql = (
        f"SELECT make_timestamptz(hour_us) AS hour, {', '.join(c for c in COLUMNS if c != 'hour_us')}"
        f" FROM anomaly_scores WHERE {clause} ORDER BY project, scope, service, model, metric, hour_us"
        f" LIMIT {int(limit)}"
    )
    return db.sql(sql, params=params.values).to_arrow_table()
