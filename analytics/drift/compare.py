"""Compare a reference window with a current window for every (project, service, model) cell and drift metric.

The calls of both windows are read in one scan as Arrow record batches into polars (only the columns the
metrics need; a cell is a 64-bit hash, its names come from a small grouped query), numbers per cell go to the
tests of stattests.py, category mixes are counted by DuckDB. A cell whose window holds fewer than `min_samples`
values is "not enough data", never drifted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import duckdb
import numpy as np
import polars as pl
from scipy import stats

from analytics.drift import stattests
from analytics.drift.config import DriftConfig
from analytics.drift.metrics import CATEGORICAL, DRIFT_METRICS, NUMERIC, DriftMetric
from analytics.drift.stattests import Kind, Result, Sample, Score
from analytics.query import Params, project_clause
from analytics.timewin import TimeRange


class Status(StrEnum):
    DRIFTED = "drifted"
    STABLE = "stable"
    NOT_ENOUGH_DATA = "not_enough_data"


@dataclass(frozen=True)
class Windows:
    reference: TimeRange
    current: TimeRange
    baseline: str | None = None  # how the reference was chosen when not the default, e.g. "before release 2.14.0"

    def __post_init__(self) -> None:
        ref, cur = self.reference, self.current
        if ref.start < cur.end and cur.start < ref.end:
            raise ValueError("the reference and current windows overlap")


@dataclass(frozen=True)
class Scope:
    """Which cells: services to include (None: all) or to leave out, optionally one model and one project."""

    services: tuple[str, ...] | None = None
    exclude_services: tuple[str, ...] = ()
    model: str | None = None
    project: str | None = None
    cell: tuple[str | None, str | None, str | None] | None = None  # exactly one (project, service, model); NULLs too
    projects: frozenset[str] | None = None  # the projects the asker may see; None: all

    def where(self, params: Params) -> str:
        clauses = ["TRUE", project_clause(self.projects, params)]
        if self.cell is not None:
            for column, value in zip(("project", "service", "request_model"), self.cell, strict=True):
                clauses.append(f"{column} IS NOT DISTINCT FROM {params.add(value)}")
        if self.services is not None:
            clauses.append(f"service IN ({', '.join(params.add(s) for s in self.services) or 'NULL'})")
        if self.exclude_services:
            names = ", ".join(params.add(s) for s in self.exclude_services)
            clauses.append(f"(service IS NULL OR service NOT IN ({names}))")
        if self.model is not None:
            clauses.append(f"request_model = {params.add(self.model)}")
        if self.project is not None:
            clauses.append(f"project = {params.add(self.project)}")
        return " AND ".join(clauses)


@dataclass(frozen=True)
class CellResult:
    project: str | None
    service: str | None
    model: str | None
    metric: str
    status: Status
    n_reference: int
    n_current: int
    windows: Windows
    result: Result | None  # None when there was not enough data
    p_adjusted: float | None = None  # the test's p-value adjusted over every verdict of the comparison (BH)

    def as_row(self) -> dict[str, Any]:
        r = self.result
        return {
            "project": self.project,
            "service": self.service,
            "model": self.model,
            "metric": self.metric,
            "kind": DRIFT_METRICS[self.metric].kind.value,
            "status": self.status.value,
            "test": r.test if r else None,
            "score": r.score if r else None,
            "threshold": r.threshold if r else None,
            "p_value": r.p_value if r else None,
            "p_adjusted": self.p_adjusted,
            "severity": r.severity if r else None,
            "drifted": self.status is Status.DRIFTED,
            "effect_size": r.effect_size if r else None,
            "effect_measure": r.effect_measure if r else None,
            "effect_floor": r.effect_floor if r else None,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "reference_from": self.windows.reference.start,
            "reference_to": self.windows.reference.end,
            "current_from": self.windows.current.start,
            "current_to": self.windows.current.end,
            "baseline": self.windows.baseline,
        }


def _windows_where(windows: Windows, params: Params) -> str:
    parts = []
    for w in (windows.reference, windows.current):
        parts.append(
            f"(start_time >= make_timestamptz({params.add(w.start_us)}::BIGINT)"
            f" AND start_time < make_timestamptz({params.add(w.end_us)}::BIGINT))"
        )
    return "(" + " OR ".join(parts) + ")"


_CELL = "hash(project, service, request_model)"


def _current_flag(windows: Windows, params: Params) -> str:
    """True for a call of the current window (the WHERE clause has kept only calls of the two windows)."""
    return f"start_time >= make_timestamptz({params.add(windows.current.start_us)}::BIGINT)"


def _cells(db: duckdb.DuckDBPyConnection, windows: Windows, scope: Scope) -> dict[int, tuple[Any, Any, Any]]:
    params = Params()
    sql = (
        f"SELECT {_CELL} AS cell, any_value(project), any_value(service), any_value(request_model) FROM calls"
        f" WHERE {_windows_where(windows, params)} AND {scope.where(params)} GROUP BY cell"
    )
    return {row[0]: row[1:] for row in db.execute(sql, params.values).fetchall()}


def load_numbers(db: duckdb.DuckDBPyConnection, windows: Windows, scope: Scope) -> pl.DataFrame:
    """One row per call of either window: cell, current (bool), one column per numeric metric (NULL where the
    call carries no value for it)."""
    params = Params()
    values = ", ".join(f"CASE WHEN {m.calls} THEN {m.column} END::DOUBLE AS {m.name}" for m in NUMERIC)
    sql = (
        f"SELECT {_CELL} AS cell, ({_current_flag(windows, params)}) AS current, {values} FROM calls"
        f" WHERE {_windows_where(windows, params)} AND {scope.where(params)}"
    )
    batches = [pl.from_arrow(batch) for batch in db.sql(sql, params=params.values).to_arrow_reader(1_000_000)]
    frame = pl.concat(batches, how="vertical") if batches else pl.DataFrame()
    assert isinstance(frame, pl.DataFrame)
    return frame


def load_counts(db: duckdb.DuckDBPyConnection, windows: Windows, scope: Scope, metric: DriftMetric) -> pl.DataFrame:
    """Calls per cell, window and category of a categorical metric."""
    params = Params()
    sql = (
        f"SELECT {_CELL} AS cell, ({_current_flag(windows, params)}) AS current, {metric.column} AS value,"
        f" count(*) AS n FROM calls WHERE {_windows_where(windows, params)} AND {scope.where(params)}"
        f" AND {metric.calls} GROUP BY ALL"
    )
    frame = pl.from_arrow(db.sql(sql, params=params.values).to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


def load_sample(db: duckdb.DuckDBPyConnection, windows: Windows, scope: Scope, metric: DriftMetric) -> Sample:
    """The two samples of one metric over the calls of `scope` (typically one cell)."""
    params = Params()
    flag = _current_flag(windows, params)
    where = f"{_windows_where(windows, params)} AND {scope.where(params)} AND {metric.calls}"
    if metric.kind is Kind.NUMERIC:
        sql = (
            f"SELECT ({flag}) AS current, {metric.column}::DOUBLE AS value FROM calls"
            f" WHERE {where} AND {metric.column} IS NOT NULL"
        )
        frame = db.sql(sql, params=params.values).to_arrow_table()
        current = frame.column("current").to_numpy(zero_copy_only=False)
        values = frame.column("value").to_numpy(zero_copy_only=False)
        return Sample.numbers(values[~current], values[current])
    sql = f"SELECT ({flag}) AS current, {metric.column} AS value, count(*) AS n FROM calls WHERE {where} GROUP BY ALL"
    ref: dict[str, int] = {}
    cur: dict[str, int] = {}
    for is_current, value, n in db.execute(sql, params.values).fetchall():
        (cur if is_current else ref)[str(value)] = n
    return Sample.counts(ref, cur)


def decide(sample: Sample, metric: str, config: DriftConfig) -> tuple[Status, Result | None]:
    """The test of one cell and metric: not enough data, or the configured (else automatic) test's verdict."""
    if min(sample.n_reference, sample.n_current) < config.min_samples:
        return Status.NOT_ENOUGH_DATA, None
    chosen = config.test_for(metric)
    threshold = chosen.threshold
    # a threshold without a test applies to the distances the automatic choice uses on large references
    if chosen.test is None and threshold is not None and stattests.default_test(sample).score_kind is Score.P_VALUE:
        threshold = None
    result = stattests.run(sample, chosen.test, threshold)
    return (Status.DRIFTED if result.drifted else Status.STABLE), result


def compare(
    db: duckdb.DuckDBPyConnection,
    windows: Windows,
    config: DriftConfig,
    scope: Scope | None = None,
    metrics: Sequence[str] | None = None,
) -> list[CellResult]:
    """Every cell with calls in either window x every drift metric (or `metrics`)."""
    scope = scope or Scope()
    wanted = set(metrics) if metrics is not None else set(DRIFT_METRICS)
    names = _cells(db, windows, scope)
    out: list[CellResult] = []

    def add(cell: int, metric: str, sample: Sample) -> None:
        status, result = decide(sample, metric, config)
        project, service, model = names[cell]
        out.append(
            CellResult(project, service, model, metric, status, sample.n_reference, sample.n_current, windows, result)
        )

    numeric = [m for m in NUMERIC if m.name in wanted]
    if numeric:
        frame = load_numbers(db, windows, scope)
        parts = frame.partition_by("cell", as_dict=True) if frame.height else {}
        for (cell,), part in parts.items():
            current = part["current"].to_numpy()
            for m in numeric:
                values = part[m.name].to_numpy()
                present = ~np.isnan(values)
                sample = Sample.numbers(values[present & ~current], values[present & current])
                add(cell, m.name, sample)
        for cell in names.keys() - {key for (key,) in parts}:
            for m in numeric:
                add(cell, m.name, Sample.numbers([], []))
    for m in CATEGORICAL:
        if m.name not in wanted:
            continue
        counts = load_counts(db, windows, scope, m)
        by_cell: dict[int, tuple[dict[str, int], dict[str, int]]] = {c: ({}, {}) for c in names}
        for cell, is_current, value, n in counts.iter_rows():
            by_cell[cell][1 if is_current else 0][str(value)] = n
        for cell, (ref, cur) in by_cell.items():
            add(cell, m.name, Sample.counts(ref, cur))
    order = list(DRIFT_METRICS)
    out.sort(key=lambda r: (str(r.project), str(r.service), str(r.model), order.index(r.metric)))
    return control_false_discoveries(out)


def control_false_discoveries(rows: list[CellResult]) -> list[CellResult]:
    """A comparison tests hundreds of cells at once: at a 5% level each, ~5% of undrifted cells would be flagged
    every run. So the p-values of all verdicts are adjusted together (Benjamini-Hochberg, which keeps the expected
    share of false alarms among the flagged cells at the level), and a cell is drifted only when its test says so
    AND its adjusted p-value is below the test's level (its threshold for p-value tests, SIGNIFICANCE for the
    gate of distance tests). A distance below its threshold has no p-value; it counts as 1 (conservative)."""
    decided = [i for i, r in enumerate(rows) if r.result is not None and r.result.score is not None]
    if not decided:
        return rows
    p_values = [rows[i].result.p_value for i in decided]  # type: ignore[union-attr]
    adjusted = stats.false_discovery_control([1.0 if p is None else min(max(p, 0.0), 1.0) for p in p_values])
    out = list(rows)
    for i, q in zip(decided, adjusted, strict=True):
        row = out[i]
        result = row.result
        assert result is not None
        level = result.threshold if result.score_kind is Score.P_VALUE else stattests.SIGNIFICANCE
        drifted = result.drifted and float(q) < level
        p_adj = float(q) if result.p_value is not None else None
        out[i] = replace(row, status=Status.DRIFTED if drifted else Status.STABLE, p_adjusted=p_adj)
    return out
