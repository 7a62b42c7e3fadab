"""Grouped and bucketed statistics over calls, the comparison with the previous period, and top-N."""

from __future__ import annotations

from dataclasses import dataclass, replace

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from analytics import rollups
from analytics.dimensions import resolve
from analytics.errors import QueryError
from analytics.metrics import ADDITIVE_BASE, aggregate_plan, base_needed
from analytics.query import Params, Selection, dimension_sql
from analytics.timewin import Bucketing, to_us

OTHER = "(other)"


def quote(name: str) -> str:
    """Identifiers here come from the dimension and metric tables (validated names), never free text."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class StatsQuery:
    selection: Selection
    metrics: tuple[str, ...]
    group_by: tuple[str, ...] = ()
    bucketing: Bucketing | None = None
    order_by: str | None = None
    descending: bool = True
    limit: int | None = None
    top_groups: int | None = None  # with a bucket and one group: keep the top N groups, fold the rest into (other)
    top_by: str | None = None  # the metric ranking the groups for top_groups (default: order_by, else the first)
    use_rollups: bool = True  # answer additive statistics from hourly rollups when that is exact

    def __post_init__(self) -> None:
        if self.order_by is not None and self.order_by not in self.metrics:
            raise QueryError(f"order_by={self.order_by!r} must be one of the requested metrics")
        if self.top_groups is not None and (len(self.group_by) != 1 or self.bucketing is None):
            raise QueryError("top_groups needs exactly one group_by dimension and a bucket")
        if self.top_by is not None and self.top_groups is None:
            raise QueryError("top_by ranks the groups of top_groups: give top_groups too")


def _group_exprs(query: StatsQuery, params: Params, top_values: list | None) -> list[tuple[str, str]]:
    exprs = []
    for name in query.group_by:
        expr = dimension_sql(resolve(name), params)
        if top_values is not None:
            present = [v for v in top_values if v is not None]
            whens = []
            if len(present) < len(top_values):
                whens.append(f"WHEN {expr} IS NULL THEN NULL")
            if present:
                whens.append(
                    f"WHEN {expr} IN ({', '.join(params.add(v) for v in present)}) THEN CAST({expr} AS VARCHAR)"
                )
            expr = f"(CASE {' '.join(whens)} ELSE {params.add(OTHER)} END)"
        exprs.append((name, expr))
    return exprs


def _sql(query: StatsQuery, params: Params, top_values: list | None = None, folded_us: int | None = None) -> str:
    """The statistics query; with `folded_us` (the rollup watermark) it reads rollups plus the raw remainder."""
    groups = _group_exprs(query, params, top_values)
    bases, exprs = aggregate_plan(query.metrics)
    select = [f"{expr} AS {quote(name)}" for name, expr in groups]
    keys = [quote(name) for name, _ in groups]
    if query.bucketing is not None:
        select.append(f"{query.bucketing.key_sql('hour_us' if folded_us else 'epoch_us(start_time)')} AS bucket_key")
        keys.append("bucket_key")
    if folded_us:
        select += [f"{rollups.MERGE[b]} AS {b}" for b in bases]
        source = rollups.source_sql(query.selection, params)
    else:
        select += [f"{sql} AS {b}" for b, sql in bases.items()]
        source = query.selection.source(params, query.group_by)
    inner = f"SELECT {', '.join(select)} FROM {source}"
    if keys:
        inner += " GROUP BY ALL"
    if query.bucketing is not None and not query.group_by:
        # Every bucket of the range, empty ones with zero counts, so charts show gaps as zeros.
        all_keys = params.add(query.bucketing.all_keys())
        filled = [f"coalesce(i.{b}, 0) AS {b}" if b in ADDITIVE_BASE else f"i.{b} AS {b}" for b in bases]
        inner = (
            f"SELECT k.bucket_key, {', '.join(filled)} FROM (SELECT unnest({all_keys}::BIGINT[]) AS bucket_key) k"
            f" LEFT JOIN ({inner}) i USING (bucket_key)"
        )
    outer = [*keys, *(f"{exprs[m]} AS {quote(m)}" for m in query.metrics)]
    sql = f"SELECT {', '.join(outer)} FROM ({inner})"
    order = []
    if query.bucketing is not None:
        order.append("bucket_key")
    if query.order_by is not None:
        order.append(f"{quote(query.order_by)} {'DESC' if query.descending else 'ASC'} NULLS LAST")
    order += [f"{k} NULLS LAST" for k in keys if k != "bucket_key"]
    if order:
        sql += " ORDER BY " + ", ".join(order)
    if query.limit is not None:
        sql += f" LIMIT {int(query.limit)}"
    return sql


def _top_values(db: duckdb.DuckDBPyConnection, query: StatsQuery) -> list:
    order_metric = query.top_by or query.order_by or query.metrics[0]
    ranking = StatsQuery(
        query.selection, (order_metric,), query.group_by, order_by=order_metric, limit=query.top_groups
    )
    table = run(db, ranking)
    return table.column(query.group_by[0]).to_pylist()


def run(db: duckdb.DuckDBPyConnection, query: StatsQuery) -> pa.Table:
    """The statistics as an Arrow table: group columns, `bucket` (start, in the caller's zone), metrics."""
    top_values = _top_values(db, query) if query.top_groups is not None else None
    folded_us = None
    floor_us = rollups.raw_floor(db)
    if query.use_rollups and rollups.eligible(
        query.selection, query.group_by, base_needed(query.metrics), query.bucketing, floor_us
    ):
        folded_us = rollups.watermark(db) or None
    params = Params()
    sql = _sql(query, params, top_values, folded_us)
    table = db.sql(sql, params=params.values).to_arrow_table()
    if query.bucketing is not None:
        table = _bucket_starts(table, query.bucketing)
    meta = {"source": "rollups+raw" if folded_us else "raw"}
    if floor_us is not None and query.selection.range.start_us < floor_us:
        # Raw calls before floor_us were removed by retention: that part is answered from rollups only (and a
        # statistic rollups cannot give, such as a percentile, covers only the calls still kept).
        meta["rollups_only_before"] = str(floor_us)
    return table.replace_schema_metadata(meta)


def _bucket_starts(table: pa.Table, bucketing: Bucketing) -> pa.Table:
    """Replace bucket keys by the buckets' first instants (computed once per distinct key, then taken by index)."""
    keys = table.column("bucket_key")
    distinct = pc.unique(keys)
    starts_us = pa.array([to_us(bucketing.key_to_start(k)) for k in distinct.to_pylist()], pa.int64())
    column = starts_us.take(pc.index_in(keys, value_set=distinct)).cast(pa.timestamp("us", tz=bucketing.zone.key))
    index = table.schema.get_field_index("bucket_key")
    return table.set_column(index, "bucket", column)


def compare_previous(db: duckdb.DuckDBPyConnection, query: StatsQuery) -> pa.Table:
    """Each metric with `<m>_prev`, `<m>_delta` and `<m>_delta_pct` against the period of the same length before."""
    if query.bucketing is not None:
        raise QueryError("compare works on totals and groups, not on a bucketed series")
    current = pl.from_arrow(run(db, query))
    previous_query = replace(query, selection=query.selection.with_range(query.selection.range.previous()))
    previous_query = replace(previous_query, limit=None)
    previous = pl.from_arrow(run(db, previous_query))
    assert isinstance(current, pl.DataFrame) and isinstance(previous, pl.DataFrame)
    previous = previous.rename({m: f"{m}_prev" for m in query.metrics})
    if query.group_by:
        joined = current.join(previous, on=list(query.group_by), how="left", nulls_equal=True)
    else:
        joined = (
            current.hstack(previous)
            if previous.height
            else current.with_columns(pl.lit(None, dtype=pl.Float64).alias(f"{m}_prev") for m in query.metrics)
        )
    exprs = []
    for m in query.metrics:
        cur, prev = pl.col(m).cast(pl.Float64), pl.col(f"{m}_prev").cast(pl.Float64)
        exprs.append((cur - prev).alias(f"{m}_delta"))
        exprs.append(pl.when(prev != 0).then((cur - prev) / prev.abs()).otherwise(None).alias(f"{m}_delta_pct"))
    ordered = [*query.group_by]
    for m in query.metrics:
        ordered += [m, f"{m}_prev", f"{m}_delta", f"{m}_delta_pct"]
    return joined.with_columns(exprs).select(ordered).to_arrow()
