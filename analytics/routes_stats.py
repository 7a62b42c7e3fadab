"""Read-API routes over statistics: what the API understands, metrics for a window, what changed, duration
histograms, and the values of a dimension."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from analytics.access import requires
from analytics.api_context import PERCENTILE_DEFINITION, Api, Format, ReadApi
from analytics.api_params import WindowParam
from analytics.changes import DECOMPOSABLE, what_changed
from analytics.dimensions import DIMENSIONS, resolve
from analytics.errors import QueryError
from analytics.histogram import HistogramQuery, histogram
from analytics.metrics import METRICS, parse_metrics
from analytics.query import parse_group_by
from analytics.responses import choose_format, table_response
from analytics.rollups import raw_floor
from analytics.rollups import watermark as rollup_watermark
from analytics.stats import StatsQuery, compare_previous, run
from analytics.timewin import Bucket, Bucketing, TimeRange, from_us, parse_bucket, parse_instant
from core.access import Role

router = APIRouter(dependencies=[requires(Role.viewer)])


def _folded_through(api: ReadApi) -> str | None:
    with api.cursor() as db:
        folded = rollup_watermark(db)
    return from_us(folded).isoformat() if folded else None


@router.get("/meta", summary="Dimensions, metrics (with units) and bucket sizes the API understands")
def meta(api: Api) -> dict[str, Any]:
    return {
        "dimensions": {d.name: d.help for d in DIMENSIONS.values()} | {"meta.<key>": "a metadata value"},
        "metrics": {m.name: {"unit": m.unit, "help": m.help} for m in METRICS.values()},
        "decomposable_metrics": list(DECOMPOSABLE),
        "buckets": [b.value for b in Bucket],
        "percentiles": PERCENTILE_DEFINITION,
        "rollups_folded_through": _folded_through(api),
        # Retention: before this instant raw calls were removed; ranges there are answered from rollups only.
        "rollups_only_before": _rollups_only_before(api),
        "storage": _storage(api),
    }


def _storage(api: ReadApi) -> dict[str, Any] | None:
    """Bytes and rows per table as last measured (measuring takes ~1-2 s at 10M calls: done in the background;
    None until the first measurement)."""
    size = api.storage_latest()
    return size.as_dict() if size is not None else None


def _rollups_only_before(api: ReadApi) -> str | None:
    with api.cursor() as db:
        floor = raw_floor(db)
    return from_us(floor).isoformat() if floor else None


@router.get(
    "/stats", summary="Metrics for a window, optionally grouped and/or bucketed, optionally vs the period before"
)
def stats(
    request: Request,
    api: Api,
    window: WindowParam,
    metrics: Annotated[list[str] | None, Query(description="metric names (comma-separated or repeated)")] = None,
    group_by: Annotated[list[str] | None, Query(description="dimensions to group by (up to 4)")] = None,
    bucket: Annotated[str | None, Query(description="time bucket: auto, minute, 5m, 15m, 30m, hour, ...")] = None,
    order_by: Annotated[str | None, Query(description="a requested metric to sort groups by")] = None,
    desc: Annotated[bool, Query(description="sort descending")] = True,
    limit: Annotated[int | None, Query(ge=1, le=100_000, description="most rows returned")] = None,
    top_groups: Annotated[
        int | None, Query(ge=1, le=50, description="with bucket and one group_by: top N groups, rest as (other)")
    ] = None,
    top_by: Annotated[
        str | None,
        Query(description="the metric ranking groups for top_groups, e.g. calls for the busiest (default: order_by)"),
    ] = None,
    compare: Annotated[bool, Query(description="add <m>_prev/_delta/_delta_pct vs the previous period")] = False,
    rollups: Annotated[bool, Query(description="use hourly rollups where exact (false: raw calls only)")] = True,
    format: Format = None,
) -> Response:
    fmt = choose_format(format, request.headers.get("accept"))
    selection = window.selection
    bucketing = None
    if bucket is not None:
        bucketing = Bucketing(parse_bucket(bucket, selection.range.length), window.zone, selection.range)
        bucketing.all_keys()  # validates the bucket count before any SQL runs
    query = StatsQuery(
        selection,
        parse_metrics(metrics),
        parse_group_by(group_by or []),
        bucketing,
        order_by=order_by,
        descending=desc,
        limit=limit,
        top_groups=top_groups,
        top_by=parse_metrics([top_by])[0] if top_by is not None else None,
        use_rollups=rollups,
    )
    with api.cursor() as db:
        table = compare_previous(db, query) if compare else run(db, query)
    info = {
        "from": selection.range.start.isoformat(),
        "to": selection.range.end.isoformat(),
        "tz": window.zone.key,
        "bucket": bucketing.bucket.value if bucketing else None,
        "units": {m: METRICS[m].unit for m in query.metrics},
        "source": (table.schema.metadata or {}).get(b"source", b"raw").decode(),
    }
    only_before = (table.schema.metadata or {}).get(b"rollups_only_before")
    if only_before is not None:
        # The dashboard shows this: before that instant raw calls were removed by retention.
        info["rollups_only_before"] = from_us(int(only_before)).isoformat()
    if compare:
        previous = selection.range.previous()
        info["previous"] = {"from": previous.start.isoformat(), "to": previous.end.isoformat()}
    return table_response(table, fmt, info)


@router.get("/changes", summary="What changed: each group's contribution to a metric's change between two windows")
def changes(
    api: Api,
    window: WindowParam,
    metric: Annotated[str, Query(description="a decomposable metric, e.g. cost_usd, calls, error_rate")],
    dims: Annotated[list[str], Query(description="dimensions to attribute the change to, e.g. service,model")],
    baseline_from: Annotated[str | None, Query(description="baseline start; default the period before")] = None,
    baseline_to: Annotated[str | None, Query(description="baseline end")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> Any:
    selection = window.selection
    if (baseline_from is None) != (baseline_to is None):
        raise QueryError("give both baseline_from and baseline_to, or neither")
    if baseline_from is not None and baseline_to is not None:
        baseline = TimeRange(
            parse_instant(baseline_from, window.zone, "baseline_from"),
            parse_instant(baseline_to, window.zone, "baseline_to"),
        )
        if baseline.end <= baseline.start:
            raise QueryError("the baseline range is empty or reversed")
    else:
        baseline = selection.range.previous()
    group = parse_group_by(dims)
    with api.cursor() as db:
        change = what_changed(db, selection, baseline, metric, group, limit=limit)
    body = change.as_dict()
    body["window"] = {"from": selection.range.start.isoformat(), "to": selection.range.end.isoformat()}
    body["baseline"] = {"from": baseline.start.isoformat(), "to": baseline.end.isoformat()}
    return body


@router.get("/histogram", summary="Distribution of durations (or time to first token): calls per bin, in ms")
def duration_histogram(
    request: Request,
    api: Api,
    window: WindowParam,
    field: Annotated[str, Query(description="duration_ms (default) or ttft_ms")] = "duration_ms",
    bins: Annotated[int, Query(ge=1, le=200, description="number of bins")] = 40,
    scale: Annotated[str, Query(description="log (default: geometric bins) or linear")] = "log",
    format: Format = None,
) -> Response:
    fmt = choose_format(format, request.headers.get("accept"))
    query = HistogramQuery(window.selection, field=field, bins=bins, scale=scale)
    with api.cursor() as db:
        table = histogram(db, query)
    return table_response(table, fmt, {"field": field, "unit": "ms", "scale": scale})


@router.get("/values/{dimension}", summary="Values of a dimension in the window, most calls first (for pickers)")
def values(
    api: Api,
    window: WindowParam,
    dimension: str,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> Any:
    dim = resolve(dimension)
    query = StatsQuery(window.selection, ("calls",), (dim.name,), order_by="calls", limit=limit)
    with api.cursor() as db:
        table = run(db, query)
    return {"dimension": dim.name, "values": table.to_pylist()}
