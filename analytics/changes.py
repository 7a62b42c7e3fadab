""" "What changed": how much each value of some dimensions contributed to a metric's change between two windows.

For an additive metric M = sum of A over groups, group i contributes A_i(now) - A_i(before).
For a ratio M = A / B (error rate, cost per call, ...), group i contributes A_i(now) / B(now) - A_i(before) / B(before),
with B the window's total. Either way the contributions add up exactly to M(now) - M(before), so "of the +40%,
service=support-bot with model=gpt-4.1 is 85%" is a plain share of that sum. Percentiles do not decompose and are
refused with a 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import polars as pl

from analytics.dimensions import resolve
from analytics.errors import QueryError
from analytics.metrics import BASE, METRICS
from analytics.query import Params, Selection, dimension_sql
from analytics.stats import quote
from analytics.timewin import TimeRange

DECOMPOSABLE = tuple(name for name, m in METRICS.items() if m.numerator is not None)


@dataclass(frozen=True)
class Change:
    metric: str
    dims: tuple[str, ...]
    before: float | None
    now: float | None
    rows: list[dict[str, Any]]

    @property
    def delta(self) -> float | None:
        return None if self.before is None or self.now is None else self.now - self.before

    def as_dict(self) -> dict[str, Any]:
        delta = self.delta
        pct = delta / abs(self.before) if delta is not None and self.before else None
        return {
            "metric": self.metric,
            "unit": METRICS[self.metric].unit,
            "dimensions": list(self.dims),
            "before": self.before,
            "now": self.now,
            "delta": delta,
            "delta_pct": pct,
            "contributors": self.rows,
        }


def _parts(db: duckdb.DuckDBPyConnection, selection: Selection, dims: tuple[str, ...], metric: str) -> pl.DataFrame:
    spec = METRICS[metric]
    params = Params()
    groups = [f"{dimension_sql(resolve(d), params)} AS {quote(d)}" for d in dims]
    inner = (
        f"SELECT {', '.join([*groups, *(f'{BASE[b]} AS {b}' for b in spec.needs)])}"
        f" FROM {selection.source(params, dims)} GROUP BY ALL"
    )
    den = f"coalesce({spec.denominator}, 0)" if spec.denominator else "NULL"
    sql = (
        f"SELECT {', '.join(quote(d) for d in dims)}, coalesce({spec.numerator}, 0)::DOUBLE AS a,"
        f" {den}::DOUBLE AS b FROM ({inner})"
    )
    frame = pl.from_arrow(db.sql(sql, params=params.values).to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


def _total(frame: pl.DataFrame, ratio: bool) -> tuple[float, float | None]:
    a = float(frame["a"].sum()) if frame.height else 0.0
    b = float(frame["b"].sum()) if ratio and frame.height else None
    return a, b


def what_changed(
    db: duckdb.DuckDBPyConnection,
    selection: Selection,
    baseline: TimeRange,
    metric: str,
    dims: tuple[str, ...],
    *,
    limit: int = 20,
) -> Change:
    if metric not in DECOMPOSABLE:
        choices = ", ".join(DECOMPOSABLE)
        raise QueryError(f"metric {metric!r} does not decompose into contributions; use one of {choices}")
    if not dims:
        raise QueryError("name at least one dimension to attribute the change to (dims=service,model)")
    ratio = METRICS[metric].denominator is not None
    now = _parts(db, selection, dims, metric)
    before = _parts(db, selection.with_range(baseline), dims, metric)
    a_now, b_now = _total(now, ratio)
    a_before, b_before = _total(before, ratio)
    if ratio:
        m_now = a_now / b_now if b_now else None
        m_before = a_before / b_before if b_before else None
    else:
        m_now, m_before = a_now, a_before
    keys = list(dims)
    # A group present in one window only counts as 0 in the other; group values themselves may be NULL.
    joined = now.join(before, on=keys, how="full", coalesce=True, suffix="_before", nulls_equal=True).with_columns(
        pl.col(c).fill_null(0.0) for c in ("a", "b", "a_before", "b_before")
    )
    if ratio:
        contribution = (pl.col("a") / (b_now or float("nan"))).fill_nan(0.0) - (
            pl.col("a_before") / (b_before or float("nan"))
        ).fill_nan(0.0)
        value_now = pl.when(pl.col("b") > 0).then(pl.col("a") / pl.col("b"))
        value_before = pl.when(pl.col("b_before") > 0).then(pl.col("a_before") / pl.col("b_before"))
    else:
        contribution = pl.col("a") - pl.col("a_before")
        value_now, value_before = pl.col("a"), pl.col("a_before")
    delta = (m_now or 0.0) - (m_before or 0.0)
    result = (
        joined.with_columns(contribution.alias("contribution"), value_now.alias("now"), value_before.alias("before"))
        .with_columns(
            (pl.col("contribution") / delta if delta else pl.lit(None, dtype=pl.Float64)).alias("share_of_change")
        )
        .sort(pl.col("contribution").abs(), descending=True)
        .head(limit)
        .select([*keys, "before", "now", "contribution", "share_of_change"])
    )
    return Change(metric, dims, m_before, m_now, result.to_dicts())
