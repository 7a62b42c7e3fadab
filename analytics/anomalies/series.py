"""Hourly series per service and per model: spend, calls, p95 latency, error rate and 429 share, each defined
once in analytics/metrics.py (so an hour's value equals /stats for that hour and service or model).

One scan with GROUPING SETS gives both scopes. `model` is the model asked for (request_model), as in drift: a
failed call has no response model and must count in its model's error rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import duckdb
import polars as pl

from analytics.metrics import aggregate_plan
from analytics.query import Params
from analytics.timewin import US

HOUR_US = 3600 * US


class Scope(StrEnum):
    SERVICE = "service"
    MODEL = "model"


@dataclass(frozen=True)
class SeriesMetric:
    name: str  # as stored and served
    metric: str  # the analytics metric it is
    two_sided: bool  # a drop is as notable as a rise (traffic, spend); otherwise only rises are anomalies
    needs_calls: bool  # scored only on hours with enough calls (see least_calls)
    rolling: bool  # little daily rhythm: the last 24 hours are a usable baseline while history is short
    unit: str
    help: str


SERIES: dict[str, SeriesMetric] = {
    m.name: m
    for m in (
        SeriesMetric("spend", "cost_usd", True, True, False, "USD", "spend of priced calls in the hour"),
        SeriesMetric("calls", "calls", True, False, False, "calls", "calls in the hour"),
        SeriesMetric("latency_p95", "latency_p95", False, True, True, "ms", "95th percentile duration"),
        SeriesMetric("error_rate", "error_rate", False, True, True, "ratio", "failed calls / calls"),
        SeriesMetric(
            "rate_limited_share", "rate_limited_share", False, True, True, "ratio", "HTTP 429 answers / calls"
        ),
    )
}
_HOUR = f"(epoch_us(start_time) // {HOUR_US}) * {HOUR_US}"


def hourly(db: duckdb.DuckDBPyConnection, hours: Sequence[int]) -> pl.DataFrame:
    """The series' values for these UTC hours (microseconds), long format: hour_us, project, scope, service,
    model, calls, one column per series metric. Only groups with calls in the hour have a row."""
    if not hours:
        return pl.DataFrame()
    bases, exprs = aggregate_plan(tuple(m.metric for m in SERIES.values()))
    params = Params()
    lo, hi = params.add(min(hours)), params.add(max(hours) + HOUR_US)
    wanted = params.add(sorted(hours))
    inner = (
        f"SELECT {_HOUR} AS hour_us, project, service, request_model AS model,"
        f" grouping(service) AS by_model, {', '.join(f'{sql} AS {b}' for b, sql in bases.items())}"
        f" FROM calls WHERE start_time >= make_timestamptz({lo}::BIGINT)"
        f" AND start_time < make_timestamptz({hi}::BIGINT) AND list_contains({wanted}, {_HOUR})"
        " GROUP BY GROUPING SETS ((hour_us, project, service), (hour_us, project, request_model))"
    )
    values = ", ".join(f"({exprs[m.metric]})::DOUBLE AS {m.name}" for m in SERIES.values())
    sql = (
        "SELECT hour_us, project, CASE WHEN by_model = 1 THEN 'model' ELSE 'service' END AS scope,"
        " CASE WHEN by_model = 1 THEN NULL ELSE service END AS service,"
        f" CASE WHEN by_model = 1 THEN model END AS model, ({exprs['calls']})::BIGINT AS n, {values}"
        f" FROM ({inner})"
    )
    frame = pl.from_arrow(db.sql(sql, params=params.values).to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    return frame.rename({"n": "calls_in_hour"})


PERCENTILE_MIN_CALLS = 100  # a 95th percentile of fewer calls rests on fewer than 5 calls above it
RATE_MIN_CALLS = 10  # rates are protected by their binomial floor (p at least 1/n) below anomaly_min_calls


def least_calls(metric: SeriesMetric, min_calls: int) -> int:
    """Fewest calls an hour needs for `metric` to be scored (and to serve as a baseline point)."""
    if not metric.needs_calls:
        return 0
    if metric.name == "latency_p95":
        return max(min_calls, PERCENTILE_MIN_CALLS)
    if metric.unit == "ratio":
        return min(min_calls, RATE_MIN_CALLS)
    return min_calls
