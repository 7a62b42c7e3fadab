"""Streamed export of model calls (one row per call) to JSON Lines, CSV or Parquet."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from enum import StrEnum
from typing import BinaryIO

import duckdb
import orjson
import pyarrow as pa
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
    ("environment", "environment"),
    ("provider", "provider"),
    ("operation", "operation"),
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
    ("reported_cost_usd", "reported_cost_usd"),
    ("streaming", "streaming"),
    ("status", "status"),
    ("error_type", "error_type"),
    ("http_status", "http_status"),
    ("finish_reason", "finish_reason"),
    ("user_id", "user_id"),
    ("session_id", "session_id"),
    ("tags", "tags"),
    ("metadata", "metadata"),
    ("convention", "convention"),
)
_FLAT = {"tags": "array_to_string(tags, ',')", "metadata": "CAST(to_json(metadata) AS VARCHAR)"}
_BATCH_ROWS = 50_000


def export_query(fmt: ExportFormat) -> str:
    """The SELECT behind an export. CSV cannot hold lists or maps, so tags/metadata are flattened there."""
    exprs = []
    for name, expr in EXPORT_COLUMNS:
        if fmt is ExportFormat.CSV and name in _FLAT:
            expr = _FLAT[name]
        elif fmt is ExportFormat.JSONL and name == "metadata":
            expr = "CAST(to_json(metadata) AS VARCHAR)"
        exprs.append(f"{expr} AS {name}")
    return f"SELECT {', '.join(exprs)} FROM calls ORDER BY start_time, trace_id, span_id"  # noqa: S608


def count_calls(db: duckdb.DuckDBPyConnection) -> int:
    return db.execute("SELECT count(*) FROM calls").fetchall()[0][0]


def batches(db: duckdb.DuckDBPyConnection, fmt: ExportFormat) -> Iterator[pa.RecordBatch]:
    reader = db.sql(export_query(fmt)).to_arrow_reader(_BATCH_ROWS)
    yield from reader


def write_export(
    db: duckdb.DuckDBPyConnection, fmt: ExportFormat, out: BinaryIO, *, progress: bool | None = None
) -> int:
    """Stream every call to `out`; returns the number of rows written. Shows a progress bar on a terminal."""
    total = count_calls(db)
    show = sys.stderr.isatty() if progress is None else progress
    written = 0
    with tqdm(total=total, unit=" calls", disable=not show, file=sys.stderr) as bar:
        writer: pacsv.CSVWriter | pq.ParquetWriter | None = None
        try:
            for batch in batches(db, fmt):
                if fmt is ExportFormat.JSONL:
                    for row in batch.to_pylist():
                        if row["metadata"] is not None:
                            row["metadata"] = orjson.loads(row["metadata"])
                        out.write(orjson.dumps(row) + b"\n")
                elif fmt is ExportFormat.CSV:
                    writer = writer or pacsv.CSVWriter(out, batch.schema)
                    writer.write_batch(batch)
                else:
                    writer = writer or pq.ParquetWriter(out, batch.schema, compression="zstd")
                    writer.write_batch(batch)
                written += batch.num_rows
                bar.update(batch.num_rows)
            if writer is None and fmt is not ExportFormat.JSONL:
                empty = db.sql(export_query(fmt) + " LIMIT 0").to_arrow_table()
                if fmt is ExportFormat.CSV:
                    pacsv.write_csv(empty, out)
                else:
                    pq.write_table(empty, out)
        finally:
            if writer is not None:
                writer.close()
    return written
