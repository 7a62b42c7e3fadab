"""Answering with a table in the format the caller asked for: JSON (default), Arrow IPC stream, or CSV."""

from __future__ import annotations

import io
import math
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from starlette.responses import JSONResponse, Response

from analytics.errors import QueryError

ARROW_STREAM = "application/vnd.apache.arrow.stream"


class TableFormat(StrEnum):
    JSON = "json"
    ARROW = "arrow"
    CSV = "csv"


def choose_format(requested: str | None, accept: str | None) -> TableFormat:
    if requested:
        try:
            return TableFormat(requested)
        except ValueError:
            raise QueryError(f"format={requested!r} is not one of json, arrow, csv") from None
    if accept and ARROW_STREAM in accept:
        return TableFormat.ARROW
    if accept and "text/csv" in accept:
        return TableFormat.CSV
    return TableFormat.JSON


class OrjsonResponse(JSONResponse):
    """JSON via orjson: datetimes as RFC 3339 with their offset, NaN/inf as null."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=_default, option=orjson.OPT_NON_STR_KEYS)


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _iso_seconds(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """Whole-second zoned timestamps (bucket starts) as ISO 8601 text, formatted by Arrow: creating a Python
    datetime per row costs more than the query on a long hourly series."""
    unit = pa.timestamp("s", tz=column.type.tz)
    try:
        seconds = column.cast(unit)  # safe cast: fails when a value has a fraction of a second
    except pa.ArrowInvalid:
        return None
    return pc.strftime(seconds, "%Y-%m-%dT%H:%M:%S%Ez")


def table_rows(table: pa.Table) -> list[dict[str, Any]]:
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz:
            text = _iso_seconds(table.column(i))
            if text is not None:
                table = table.set_column(i, field.name, text)
    maps = {f.name for f in table.schema if pa.types.is_map(f.type)}
    rows = table.to_pylist()
    for row in rows:
        for key, value in row.items():
            row[key] = (dict(value) if value is not None else None) if key in maps else clean(value)
    return rows


def table_response(table: pa.Table, fmt: TableFormat, meta: dict[str, Any] | None = None) -> Response:
    if fmt is TableFormat.ARROW:
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return Response(sink.getvalue(), media_type=ARROW_STREAM)
    if fmt is TableFormat.CSV:
        flat = table
        for i, field in enumerate(table.schema):
            if pa.types.is_list(field.type) or pa.types.is_map(field.type):
                values = [orjson.dumps(v).decode() if v is not None else None for v in table.column(i).to_pylist()]
                flat = flat.set_column(i, field.name, pa.array(values, pa.string()))
        sink = io.BytesIO()
        pacsv.write_csv(flat, sink)
        return Response(sink.getvalue(), media_type="text/csv; charset=utf-8")
    body: dict[str, Any] = {"data": table_rows(table)}
    if meta:
        body["meta"] = meta
    return OrjsonResponse(body)
