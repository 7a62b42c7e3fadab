"""The read API (mounted at /api/v1 by `callscope serve`): statistics, calls, traces and exports as JSON/Arrow/CSV.

Every route reads through its own DuckDB cursor on the server's connection (MVCC snapshot; the writer keeps
writing), at most `api_max_queries` at a time so analytics never starves ingest. Errors in what the caller asked
for are 400 with {"error": reason} and run no SQL.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any

import duckdb
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response, StreamingResponse

from analytics import calls as calls_mod
from analytics.api_params import WindowParam, reject_unknown_params
from analytics.changes import DECOMPOSABLE, what_changed
from analytics.dimensions import DIMENSIONS, resolve
from analytics.export import ExportFormat, export_chunks
from analytics.histogram import HistogramQuery, histogram
from analytics.metrics import METRICS, parse_metrics
from analytics.query import Params, parse_group_by
from analytics.responses import OrjsonResponse, choose_format, table_response
from analytics.rollups import watermark as rollup_watermark
from analytics.stats import StatsQuery, compare_previous, run
from analytics.timewin import Bucket, Bucketing, QueryError, TimeRange, from_us, parse_bucket, parse_instant

log = logging.getLogger("callscope.api")

PERCENTILE_DEFINITION = (
    "linear interpolation between the closest ranks (numpy.percentile method='linear', Hyndman-Fan type 7),"
    " exact, over the raw calls"
)


class ReadApi:
    """What the routes need from the server: a connection to read through and the read keys."""

    def __init__(
        self,
        db: duckdb.DuckDBPyConnection,
        read_keys: frozenset[str],
        max_queries: int,
        cost_parts: Callable[[dict[str, Any]], dict[str, float] | None] | None = None,
    ) -> None:
        self.db = db
        self.read_keys = read_keys
        self.slots = threading.BoundedSemaphore(max_queries)
        # Splits a call's cost by token kind with the collector's prices (the server passes Pricer.cost_parts).
        self.cost_parts = cost_parts

    @contextlib.contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.slots:
            cur = self.db.cursor()
            try:
                cur.execute("SET TimeZone = 'UTC'")
                yield cur
            finally:
                cur.close()


def _folded_through(api: ReadApi) -> str | None:
    with api.cursor() as db:
        folded = rollup_watermark(db)
    return from_us(folded).isoformat() if folded else None


def _api(request: Request) -> ReadApi:
    return request.app.state.read_api


def check_read_key(request: Request) -> None:
    keys = _api(request).read_keys
    if not keys:
        return
    header = request.headers.get("authorization", "")
    supplied = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    if not any(hmac.compare_digest(supplied.encode(), k.encode()) for k in keys):
        raise HTTPException(401, "a read key is required: send 'Authorization: Bearer KEY' or 'x-api-key: KEY'")


Api = Annotated[ReadApi, Depends(_api)]
Format = Annotated[str | None, Query(description="json (default), arrow (Arrow IPC stream) or csv")]


def create_app(read_api: ReadApi, version: str, routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The read API; `routers` (e.g. alerts/api.py's) get its read keys, parameter checks and error format."""
    app = FastAPI(
        title="callscope read API",
        version=version,
        description="Statistics, calls, traces and exports of the model calls callscope recorded. "
        "Percentiles: " + PERCENTILE_DEFINITION + ".",
        dependencies=[Depends(check_read_key), Depends(reject_unknown_params)],
        default_response_class=OrjsonResponse,
    )
    app.state.read_api = read_api

    @app.exception_handler(QueryError)
    async def query_error(_: Request, exc: QueryError) -> Response:
        return OrjsonResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        reasons = [f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()]
        return OrjsonResponse({"error": "; ".join(reasons)}, status_code=400)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("read API %s failed", request.url.path)
        return OrjsonResponse({"error": f"internal error ({type(exc).__name__}); see the server log"}, status_code=500)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        return OrjsonResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.get("/meta", summary="Dimensions, metrics (with units) and bucket sizes the API understands")
    def meta(api: Api) -> dict[str, Any]:
        return {
            "dimensions": {d.name: d.help for d in DIMENSIONS.values()} | {"meta.<key>": "a metadata value"},
            "metrics": {m.name: {"unit": m.unit, "help": m.help} for m in METRICS.values()},
            "decomposable_metrics": list(DECOMPOSABLE),
            "buckets": [b.value for b in Bucket],
            "percentiles": PERCENTILE_DEFINITION,
            "rollups_folded_through": _folded_through(api),
        }

    @app.get(
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
        if compare:
            previous = selection.range.previous()
            info["previous"] = {"from": previous.start.isoformat(), "to": previous.end.isoformat()}
        return table_response(table, fmt, info)

    @app.get("/changes", summary="What changed: each group's contribution to a metric's change between two windows")
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

    @app.get("/histogram", summary="Distribution of durations (or time to first token): calls per bin, in ms")
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

    @app.get("/calls", summary="A page of calls matching the filters")
    def list_calls(
        request: Request,
        api: Api,
        window: WindowParam,
        order_by: Annotated[str, Query(description=f"one of {', '.join(calls_mod.SORTABLE)}")] = "start_time",
        desc: bool = True,
        limit: Annotated[int, Query(ge=1, le=calls_mod.MAX_PAGE)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
        total: Annotated[bool, Query(description="also count all matching calls")] = True,
        format: Format = None,
    ) -> Response:
        fmt = choose_format(format, request.headers.get("accept"))
        with api.cursor() as db:
            page, count = calls_mod.list_calls(
                db, window.selection, order_by=order_by, descending=desc, limit=limit, offset=offset, with_total=total
            )
        return table_response(page, fmt, {"total": count, "limit": limit, "offset": offset})

    @app.get("/calls/{trace_id}/{span_id}", summary="One call with every stored field and its content events")
    def get_call(
        api: Api,
        trace_id: Annotated[str, Path(description="32 hex digits")],
        span_id: Annotated[str, Path(description="16 hex digits")],
    ) -> Any:
        with api.cursor() as db:
            call = calls_mod.get_call(db, trace_id, span_id)
        if call is None:
            raise HTTPException(404, f"no call {trace_id}/{span_id}")
        call["cost_parts"] = api.cost_parts(call) if api.cost_parts else None
        return call

    @app.get("/traces/{trace_id}", summary="A trace as a span tree (calls and other spans) with timing")
    def get_trace(api: Api, trace_id: Annotated[str, Path(description="32 hex digits")]) -> Any:
        with api.cursor() as db:
            trace = calls_mod.get_trace(db, trace_id)
        if trace is None:
            raise HTTPException(404, f"no trace {trace_id}")
        return trace

    @app.get("/values/{dimension}", summary="Values of a dimension in the window, most calls first (for pickers)")
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

    @app.get("/export", summary="Every matching call, streamed as CSV, Parquet or JSON Lines")
    def export(
        api: Api,
        window: WindowParam,
        format: Annotated[str, Query(description="csv, parquet or jsonl")] = "csv",
    ) -> Response:
        try:
            fmt = ExportFormat(format)
        except ValueError:
            raise QueryError(f"format={format!r} is not one of csv, parquet, jsonl") from None
        params = Params()
        where = window.selection.where(params)
        media = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}
        filename = f"callscope-calls.{fmt.value}"

        def stream() -> Iterator[bytes]:
            with api.cursor() as db:
                yield from export_chunks(db, fmt, where, params.values)

        return StreamingResponse(
            stream(),
            media_type=media.get(fmt.value, "application/x-ndjson"),
            headers={"content-disposition": f'attachment; filename="{filename}"'},
        )

    for router in routers:
        app.include_router(router)
    return app
