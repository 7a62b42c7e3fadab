"""Read-API routes over single calls: a page of calls, one call, a trace as a span tree, and the export stream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from starlette.responses import Response, StreamingResponse

from analytics import calls as calls_mod
from analytics.access import requires, visible_projects
from analytics.api_context import Api, Format
from analytics.api_params import WindowParam
from analytics.errors import QueryError
from analytics.export import ExportFormat, export_chunks
from analytics.query import Params
from analytics.reprice import call_history
from analytics.responses import choose_format, table_response
from core.access import Role

router = APIRouter(dependencies=[requires(Role.viewer)])


@router.get("/calls", summary="A page of calls matching the filters")
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


@router.get("/calls/{trace_id}/{span_id}", summary="One call with every stored field and its content events")
def get_call(
    request: Request,
    api: Api,
    trace_id: Annotated[str, Path(description="32 hex digits")],
    span_id: Annotated[str, Path(description="16 hex digits")],
) -> Any:
    with api.cursor() as db:
        call = calls_mod.get_call(db, trace_id, span_id, visible_projects(request))
    if call is None:
        raise HTTPException(404, f"no call {trace_id}/{span_id}")
    call["cost_parts"] = api.cost_parts(call) if api.cost_parts else None
    entry_id = call.get("price_entry_id")
    call["price_entry"] = api.prices.entry_label(entry_id) if entry_id is not None and api.prices else None
    with api.cursor() as db:  # the costs this call had before re-pricing changed it (the audit trail)
        call["cost_history"] = call_history(db, bytes.fromhex(trace_id), bytes.fromhex(span_id))
    return call


@router.get("/traces/{trace_id}", summary="A trace as a span tree (calls and other spans) with timing")
def get_trace(request: Request, api: Api, trace_id: Annotated[str, Path(description="32 hex digits")]) -> Any:
    with api.cursor() as db:
        trace = calls_mod.get_trace(db, trace_id, visible_projects(request))
    if trace is None:
        raise HTTPException(404, f"no trace {trace_id}")
    return trace


@router.get("/export", summary="Every matching call, streamed as CSV, Parquet or JSON Lines")
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
