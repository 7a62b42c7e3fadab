"""Streamed export of model calls (one row per call) to JSON Lines, CSV or Parquet."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

import duckdb
import orjson
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from tqdm import tqdm


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


# (column, SQL expression). The documented export columns, in order; see README "Export columns".
EXPORT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("trace_id", "lower(hex(trace_id))"),
    ("span_id", "lower(hex(span_id))"),
    ("parent_span_id", "lower(hex(parent_span_id))"),
    ("start_time", "strftime(start_time AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ')"),
    ("duration_ms", "duration_ms"),
    ("ttft_ms", "ttft_ms"),
    ("project", "project"),
    ("service", "service"),
    ("service_version", "service_version"),
    ("environment", "environment"),
    ("provider", "provider"),
    ("provider_source", "provider_source"),
    ("operation", "operation"),
    ("model", "model"),
    ("request_model", "request_model"),
    ("response_model", "response_model"),
    ("input_tokens", "input_tokens"),
    ("output_tokens", "output_tokens"),
    ("cache_read_tokens", "cache_read_tokens"),
    ("cache_write_tokens", "cache_write_tokens"),
    ("reasoning_tokens", "reasoning_tokens"),
    ("cost_usd", "cost_usd"),
    ("pricing", "pricing"),
    ("price_source", "price_source"),
    ("price_entry_id", "price_entry_id"),
    ("reported_cost_usd", "reported_cost_usd"),
    ("streaming", "streaming"),
    ("status", "status"),
    ("error_type", "error_type"),
    ("http_status", "http_status"),
    ("error_message", "error_message"),
    ("finish_reason", "finish_reason"),
    ("user_id", "user_id"),
    ("session_id", "session_id"),
    ("tags", "tags"),
    ("metadata", "metadata"),
    ("convention", "convention"),
)
# Stored call columns that are not exported: internal bookkeeping, the span's own name, and content (opt-in, large;
# the call page shows it). Every other column of CALL_COLUMNS is exported (tests/test_records.py checks it).
NOT_EXPORTED = frozenset({"span_name", "input_content", "output_content", "end_time", "received_at"})
_FLAT = {"tags": "array_to_string(tags, ',')", "metadata": "CAST(to_json(metadata) AS VARCHAR)"}
# CSV is read by people and spreadsheets: money to 1e-10 USD and durations to the microsecond, so a cost reads
# 0.0005703, not the float sum 0.0005702999999999999 (Parquet and JSON Lines keep the stored doubles).
_CSV_ROUNDED = {
    "cost_usd": "round(cost_usd, 10)",
    "reported_cost_usd": "round(reported_cost_usd, 10)",
    "duration_ms": "round(duration_ms, 3)",
    "ttft_ms": "round(ttft_ms, 3)",
}
_BATCH_ROWS = 50_000


def export_query(fmt: ExportFormat, where: str = "TRUE") -> str:
    """The SELECT behind an export. CSV cannot hold lists or maps, so tags/metadata are flattened there."""
    exprs = []
    for name, expr in EXPORT_COLUMNS:
        if fmt is ExportFormat.CSV and name in _FLAT:
            expr = _FLAT[name]
        elif fmt is ExportFormat.CSV and name in _CSV_ROUNDED:
            expr = _CSV_ROUNDED[name]
        elif fmt is ExportFormat.JSONL and name == "metadata":
            expr = "CAST(to_json(metadata) AS VARCHAR)"
        exprs.append(f"{expr} AS {name}")
    return f"SELECT {', '.join(exprs)} FROM calls WHERE {where} ORDER BY start_time, trace_id, span_id"  # noqa: S608


def count_calls(db: duckdb.DuckDBPyConnection, where: str = "TRUE", params: dict | None = None) -> int:
    return db.execute(f"SELECT count(*) FROM calls WHERE {where}", params or {}).fetchall()[0][0]  # noqa: S608


class _Sink(io.RawIOBase):
    """A write-only file that hands what was written to the caller in pieces (for streaming Parquet/CSV)."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        chunk = bytes(data)
        self.pieces.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        out, self.pieces = b"".join(self.pieces), []
        return out


def export_chunks(
    db: duckdb.DuckDBPyConnection,
    fmt: ExportFormat,
    where: str = "TRUE",
    params: dict | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """The export as a stream of byte chunks, one Arrow batch at a time (memory stays flat on any store size)."""
    reader = db.sql(export_query(fmt, where), params=params or {}).to_arrow_reader(_BATCH_ROWS)
    sink = _Sink()
    writer: pacsv.CSVWriter | pq.ParquetWriter | None = None
    if fmt is ExportFormat.CSV:
        writer = pacsv.CSVWriter(sink, reader.schema)
    elif fmt is ExportFormat.PARQUET:
        writer = pq.ParquetWriter(sink, reader.schema, compression="zstd")
    try:
        for batch in reader:
            if fmt is ExportFormat.JSONL:
                lines = []
                for row in batch.to_pylist():
                    if row["metadata"] is not None:
                        row["metadata"] = orjson.loads(row["metadata"])
                    lines.append(orjson.dumps(row))
                if lines:
                    yield b"\n".join(lines) + b"\n"
            else:
                assert writer is not None
                writer.write_batch(batch)
                yield sink.take()
            if on_rows is not None:
                on_rows(batch.num_rows)
    finally:
        if writer is not None:
            writer.close()
    tail = sink.take()
    if tail:
        yield tail


def write_export(
    db: duckdb.DuckDBPyConnection,
    fmt: ExportFormat,
    out: BinaryIO,
    *,
    where: str = "TRUE",
    params: dict | None = None,
    progress: bool | None = None,
) -> int:
    """Stream the calls to `out`; returns the number of rows written. Shows a progress bar on a terminal."""
    total = count_calls(db, where, params)
    show = sys.stderr.isatty() if progress is None else progress
    written = 0
    with tqdm(total=total, unit=" calls", disable=not show, file=sys.stderr) as bar:

        def advance(rows: int) -> None:
            nonlocal written
            written += rows
            bar.update(rows)

        for chunk in export_chunks(db, fmt, where, params, advance):
            out.write(chunk)
    return written


def export_from_store(db_path: Path, fmt: ExportFormat, window: dict[str, list[str]], out: BinaryIO) -> int:
    """Export a stopped store's calls in the window, with the same filters as the read API."""
    from core.store import connect

    db = connect(db_path, read_only=True)
    try:
        return export_from_db(db, fmt, window, out)
    finally:
        db.close()


def export_from_db(
    db: duckdb.DuckDBPyConnection, fmt: ExportFormat, window: dict[str, list[str]], out: BinaryIO
) -> int:
    """Export the calls of an open store (a stopped file, or a lake) in the window, with the read API's filters."""
    from analytics.query import Params, parse_selection

    dims = {k: v for k, v in window.items() if k not in ("from", "to", "last", "tz", "meta", "q")}
    selection, _ = parse_selection(
        _one(window, "from"),
        _one(window, "to"),
        _one(window, "last"),
        _one(window, "tz"),
        dims,
        window.get("meta", []),
        _one(window, "q"),
    )
    params = Params()
    where = selection.where(params)
    return write_export(db, fmt, out, where=where, params=params.values)


def _one(window: dict[str, list[str]], key: str) -> str | None:
    values = window.get(key)
    return values[-1] if values else None
