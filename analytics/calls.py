"""Individual calls: a filtered, sorted, paginated listing; one call with everything stored about it; its trace."""

from __future__ import annotations

import re
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from analytics.errors import QueryError
from analytics.export import EXPORT_COLUMNS
from analytics.query import Params, Selection, project_clause

SORTABLE = {
    "start_time": "start_time",
    "duration_ms": "duration_ms",
    "ttft_ms": "ttft_ms",
    "cost_usd": "cost_usd",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
}
_NOT_LISTED = ("parent_span_id", "price_source", "reported_cost_usd", "provider_source")
_LIST_COLUMNS = [(n, e) for n, e in EXPORT_COLUMNS if n not in _NOT_LISTED]
_LIST_SELECT = ", ".join(f"{expr} AS {name}" for name, expr in _LIST_COLUMNS)
_HEX_ID = re.compile(r"^[0-9a-fA-F]+$")
MAX_PAGE = 1000


def list_calls(
    db: duckdb.DuckDBPyConnection,
    selection: Selection,
    *,
    order_by: str = "start_time",
    descending: bool = True,
    limit: int = 50,
    offset: int = 0,
    with_total: bool = True,
) -> tuple[pa.Table, int | None]:
    """One page of calls and (optionally) how many calls match in all."""
    if order_by not in SORTABLE:
        raise QueryError(f"order_by={order_by!r} is not one of {', '.join(SORTABLE)}")
    if not 1 <= limit <= MAX_PAGE:
        raise QueryError(f"limit must be 1-{MAX_PAGE}")
    if offset < 0 or offset > 1_000_000:
        raise QueryError("offset must be 0-1,000,000; narrow the filters to go further")
    params = Params()
    where = selection.where(params)
    direction = "DESC" if descending else "ASC"
    order = f"{SORTABLE[order_by]} {direction} NULLS LAST, trace_id, span_id"
    # Pick the page on raw columns first, then format only those rows (formatting 10M rows first is seconds).
    sql = (
        f"SELECT {_LIST_SELECT} FROM (SELECT * FROM calls WHERE {where} ORDER BY {order}"
        f" LIMIT {int(limit)} OFFSET {int(offset)}) ORDER BY {order}"
    )
    page = db.sql(sql, params=params.values).to_arrow_table()
    total = None
    if with_total:
        count_params = Params()
        count_sql = f"SELECT count(*) FROM calls WHERE {selection.where(count_params)}"
        total = db.execute(count_sql, count_params.values).fetchall()[0][0]
    return page, total


def parse_id(text: str, length: int, name: str) -> bytes:
    if len(text) != length * 2 or not _HEX_ID.match(text):
        raise QueryError(f"{name} must be {length * 2} hex digits")
    return bytes.fromhex(text)


def get_call(
    db: duckdb.DuckDBPyConnection, trace_id: str, span_id: str, projects: frozenset[str] | None = None
) -> dict[str, Any] | None:
    """Every stored field of one call (ids hex, times ISO 8601 UTC), its content events, and its cost parts.
    `projects`: only a call of these projects is found (None: any)."""
    tid, sid = parse_id(trace_id, 16, "trace_id"), parse_id(span_id, 8, "span_id")
    params = Params()
    params.values.update({"t": tid, "s": sid})
    visible = project_clause(projects, params)
    select = ", ".join(f"{expr} AS {name}" for name, expr in EXPORT_COLUMNS)
    sql = (
        f"SELECT {select}, span_name, input_content, output_content,"
        " strftime(end_time AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ') AS end_time,"
        " strftime(received_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ') AS received_at"
        f" FROM calls WHERE trace_id = $t AND span_id = $s AND {visible}"
    )
    rows = db.sql(sql, params=params.values).to_arrow_table().to_pylist()
    if not rows:
        return None
    call = rows[0]
    call["metadata"] = dict(call["metadata"]) if call["metadata"] else {}
    events = db.sql(
        "SELECT strftime(time AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ') AS time, event_name, role, content"
        " FROM content_events WHERE trace_id = $t AND span_id = $s ORDER BY time, event_id",
        params={"t": tid, "s": sid},
    ).to_arrow_table()
    call["content_events"] = events.to_pylist()
    return call


def get_trace(
    db: duckdb.DuckDBPyConnection, trace_id: str, projects: frozenset[str] | None = None
) -> dict[str, Any] | None:
    """The trace as a span tree: model calls and other spans, each with its offset from the trace start and depth.
    `projects`: only the spans of these projects (a trace id of another project is as unknown as a missing one)."""
    tid = parse_id(trace_id, 16, "trace_id")
    params = Params()
    params.values["t"] = tid
    visible = project_clause(projects, params)
    sql = f"""
        SELECT lower(hex(span_id)) AS span_id, lower(hex(parent_span_id)) AS parent_span_id, service,
               coalesce(span_name, operation || ' ' || coalesce(request_model, '')) AS name, 'call' AS type,
               epoch_us(start_time) AS start_us, duration_ms, status, NULL AS status_message,
               request_model, cost_usd, input_tokens, output_tokens, NULL AS attributes
        FROM calls WHERE trace_id = $t AND {visible}
        UNION ALL
        SELECT lower(hex(span_id)), lower(hex(parent_span_id)), service, name, 'span', epoch_us(start_time),
               duration_ms, status, status_message, NULL, NULL, NULL, NULL, attributes
        FROM spans WHERE trace_id = $t AND {visible}
        ORDER BY start_us, span_id
    """
    rows = db.sql(sql, params=params.values).to_arrow_table().to_pylist()
    if not rows:
        return None
    return build_tree(trace_id.lower(), rows)


def build_tree(trace_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Depth-first order (children after their parent, siblings by start), with depth and offset_ms."""
    origin = min(r["start_us"] for r in rows)
    by_id = {r["span_id"]: r for r in rows}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for row in rows:
        parent = row["parent_span_id"] if row["parent_span_id"] in by_id else None
        children.setdefault(parent, []).append(row)
    ordered: list[dict[str, Any]] = []

    def visit(parent: str | None, depth: int) -> None:
        for row in children.get(parent, []):
            row = {**row, "depth": depth, "offset_ms": (row.pop("start_us") - origin) / 1000}
            if row.get("attributes"):
                row["attributes"] = orjson.loads(row["attributes"])
            ordered.append(row)
            visit(row["span_id"], depth + 1)

    visit(None, 0)
    end = max(r["offset_ms"] + r["duration_ms"] for r in ordered)
    return {"trace_id": trace_id, "duration_ms": end, "span_count": len(ordered), "spans": ordered}
