"""The distribution of call durations (or time to first token) as a histogram, for the latency page.

Bins follow numpy.histogram's convention for the edges we return: each bin is [lo, hi) except the last,
which is [lo, hi]. Log scale spaces the edges geometrically between the smallest positive and the largest value
(latencies span orders of magnitude); values at or below zero are counted in the first bin. The SQL first guesses
the bin with arithmetic, then corrects it by one against the exact edges, as numpy does, so floating-point
rounding never moves a value across an edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from analytics.errors import QueryError
from analytics.query import Params, Selection

FIELDS = {"duration_ms": "duration_ms", "ttft_ms": "ttft_ms"}
SCALES = ("log", "linear")
MAX_BINS = 200


@dataclass(frozen=True)
class HistogramQuery:
    selection: Selection
    field: str = "duration_ms"
    bins: int = 40
    scale: str = "log"

    def __post_init__(self) -> None:
        if self.field not in FIELDS:
            raise QueryError(f"field={self.field!r} is not one of {', '.join(FIELDS)}")
        if self.scale not in SCALES:
            raise QueryError(f"scale={self.scale!r} is not one of {', '.join(SCALES)}")
        if not 1 <= self.bins <= MAX_BINS:
            raise QueryError(f"bins must be 1-{MAX_BINS}")


def edges_for(low: float, high: float, bins: int, scale: str) -> list[float]:
    """bins + 1 increasing edges covering [low, high]; a single value gets edges spanning 1 around it."""
    if high <= low:
        return [low - 0.5] + [low - 0.5 + i / bins for i in range(1, bins)] + [high + 0.5]
    if scale == "log":
        a, b = math.log(low), math.log(high)
        edges = [math.exp(a + (b - a) * i / bins) for i in range(bins + 1)]
        edges[0], edges[-1] = low, high
        return edges
    return [low + (high - low) * i / bins for i in range(bins)] + [high]


def histogram(db: duckdb.DuckDBPyConnection, query: HistogramQuery) -> pa.Table:
    """Columns: lo, hi (the bin's edges, in ms), calls. Empty selection: no rows."""
    column = FIELDS[query.field]
    params = Params()
    where = query.selection.where(params)
    low, low_positive, high = db.execute(
        f"SELECT min({column}), min({column}) FILTER (WHERE {column} > 0), max({column}) FROM calls WHERE {where}",
        params.values,
    ).fetchone() or (None, None, None)
    if high is None:
        return pa.table({"lo": pa.array([], pa.float64()), "hi": pa.array([], pa.float64()), "calls": []})
    scale = query.scale if low_positive is not None and high > low_positive else "linear"
    start = low_positive if scale == "log" else low
    edges = edges_for(float(start), float(high), query.bins, scale)
    n = len(edges) - 1
    params = Params()
    where = query.selection.where(params)
    edge_list = params.add(edges)
    x = column
    if scale == "log":
        lo0, width = math.log(edges[0]), (math.log(edges[-1]) - math.log(edges[0])) / n
        guess = f"floor((ln(greatest({x}, {params.add(edges[0])})) - {params.add(lo0)}) / {params.add(width)})"
    else:
        width = (edges[-1] - edges[0]) / n
        guess = f"floor(({x} - {params.add(edges[0])}) / {params.add(width)})"
    # 0-based guess g, clamped; then one step down if x < edges[g], one up if x >= edges[g + 1] (not past the end).
    sql = f"""
        WITH guessed AS (
            SELECT {x} AS x, least(greatest({guess}::BIGINT, 0), {n - 1}) AS g
            FROM calls WHERE {where} AND {x} IS NOT NULL
        ), fixed AS (
            SELECT CASE
                WHEN g > 0 AND x < {edge_list}[g + 1] THEN g - 1
                WHEN g < {n - 1} AND x >= {edge_list}[g + 2] THEN g + 1
                ELSE g END AS bin
            FROM guessed
        )
        SELECT bin, count(*) AS calls FROM fixed GROUP BY bin
    """
    counts = dict(db.execute(sql, params.values).fetchall())
    return pa.table(
        {
            "lo": pa.array(edges[:-1], pa.float64()),
            "hi": pa.array(edges[1:], pa.float64()),
            "calls": pa.array([counts.get(i, 0) for i in range(n)], pa.int64()),
        }
    )
