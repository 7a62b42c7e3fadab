"""The model-call record and the other stored rows, as column lists shared by the collector and the store.

A model call is one row of `calls`; non-model spans of the same traces go to `spans`. Token counts follow
OTel semantics whatever the client meant: cache_read/cache_write are INSIDE input_tokens, reasoning INSIDE
output_tokens. cost_usd is NULL when no price is known (pricing = 'unpriced'); never 0 for an unknown price.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa


class Status(StrEnum):
    OK = "ok"
    ERROR = "error"


class Pricing(StrEnum):
    PRICED = "priced"  # genai-prices knew the model
    OVERRIDE = "override"  # a user price from the config file
    UNPRICED = "unpriced"  # no price known: cost_usd is NULL
    NO_USAGE = "no_usage"  # a successful call that reported no token counts: cost_usd is NULL


@dataclass(frozen=True)
class Column:
    name: str
    arrow: pa.DataType
    sql: str  # the DuckDB type as `information_schema.columns.data_type` spells it


_TS = pa.timestamp("us", tz="UTC")
_META = pa.map_(pa.string(), pa.string())

CALL_COLUMNS: tuple[Column, ...] = (
    Column("trace_id", pa.binary(), "BLOB"),
    Column("span_id", pa.binary(), "BLOB"),
    Column("parent_span_id", pa.binary(), "BLOB"),
    Column("project", pa.string(), "VARCHAR"),
    Column("service", pa.string(), "VARCHAR"),
    Column("environment", pa.string(), "VARCHAR"),
    Column("start_time", _TS, "TIMESTAMP WITH TIME ZONE"),
    Column("end_time", _TS, "TIMESTAMP WITH TIME ZONE"),
    Column("duration_ms", pa.float64(), "DOUBLE"),
    Column("ttft_ms", pa.float64(), "DOUBLE"),
    Column("provider", pa.string(), "VARCHAR"),
    Column("operation", pa.string(), "VARCHAR"),
    Column("request_model", pa.string(), "VARCHAR"),
    Column("response_model", pa.string(), "VARCHAR"),
    Column("input_tokens", pa.int64(), "BIGINT"),
    Column("output_tokens", pa.int64(), "BIGINT"),
    Column("cache_read_tokens", pa.int64(), "BIGINT"),
    Column("cache_write_tokens", pa.int64(), "BIGINT"),
    Column("reasoning_tokens", pa.int64(), "BIGINT"),
    Column("cost_usd", pa.float64(), "DOUBLE"),
    Column("pricing", pa.string(), "VARCHAR"),
    Column("price_source", pa.string(), "VARCHAR"),
    Column("reported_cost_usd", pa.float64(), "DOUBLE"),
    Column("streaming", pa.bool_(), "BOOLEAN"),
    Column("status", pa.string(), "VARCHAR"),
    Column("error_type", pa.string(), "VARCHAR"),
    Column("http_status", pa.int32(), "INTEGER"),
    Column("finish_reason", pa.string(), "VARCHAR"),
    Column("user_id", pa.string(), "VARCHAR"),
    Column("session_id", pa.string(), "VARCHAR"),
    Column("tags", pa.list_(pa.string()), "VARCHAR[]"),
    Column("metadata", _META, "MAP(VARCHAR, VARCHAR)"),
    Column("convention", pa.string(), "VARCHAR"),
    Column("span_name", pa.string(), "VARCHAR"),
    Column("input_content", pa.string(), "VARCHAR"),
    Column("output_content", pa.string(), "VARCHAR"),
    Column("received_at", _TS, "TIMESTAMP WITH TIME ZONE"),
    # Why a call failed, as the client reported it (span status message or exception message): secrets and
    # personal data redacted, cut at ERROR_MESSAGE_MAX_CHARS. Added by m006, hence after received_at.
    Column("error_message", pa.string(), "VARCHAR"),
    # The sending application's release (resource attribute service.version). Added by m011.
    Column("service_version", pa.string(), "VARCHAR"),
)
ERROR_MESSAGE_MAX_CHARS = 500

SPAN_COLUMNS: tuple[Column, ...] = (
    Column("trace_id", pa.binary(), "BLOB"),
    Column("span_id", pa.binary(), "BLOB"),
    Column("parent_span_id", pa.binary(), "BLOB"),
    Column("project", pa.string(), "VARCHAR"),
    Column("service", pa.string(), "VARCHAR"),
    Column("name", pa.string(), "VARCHAR"),
    Column("kind", pa.int8(), "TINYINT"),
    Column("start_time", _TS, "TIMESTAMP WITH TIME ZONE"),
    Column("end_time", _TS, "TIMESTAMP WITH TIME ZONE"),
    Column("duration_ms", pa.float64(), "DOUBLE"),
    Column("status", pa.string(), "VARCHAR"),
    Column("status_message", pa.string(), "VARCHAR"),
    Column("attributes", pa.string(), "VARCHAR"),
    Column("received_at", _TS, "TIMESTAMP WITH TIME ZONE"),
)

CONTENT_COLUMNS: tuple[Column, ...] = (
    Column("event_id", pa.binary(), "BLOB"),
    Column("trace_id", pa.binary(), "BLOB"),
    Column("span_id", pa.binary(), "BLOB"),
    Column("project", pa.string(), "VARCHAR"),
    Column("time", _TS, "TIMESTAMP WITH TIME ZONE"),
    Column("event_name", pa.string(), "VARCHAR"),
    Column("role", pa.string(), "VARCHAR"),
    Column("content", pa.string(), "VARCHAR"),
    Column("received_at", _TS, "TIMESTAMP WITH TIME ZONE"),
)

METRIC_COLUMNS: tuple[Column, ...] = (
    Column("point_id", pa.binary(), "BLOB"),
    Column("project", pa.string(), "VARCHAR"),
    Column("service", pa.string(), "VARCHAR"),
    Column("metric", pa.string(), "VARCHAR"),
    Column("unit", pa.string(), "VARCHAR"),
    Column("kind", pa.string(), "VARCHAR"),
    Column("time", _TS, "TIMESTAMP WITH TIME ZONE"),
    Column("attributes", _META, "MAP(VARCHAR, VARCHAR)"),
    Column("count", pa.int64(), "BIGINT"),
    Column("sum", pa.float64(), "DOUBLE"),
    Column("value", pa.float64(), "DOUBLE"),
    Column("min", pa.float64(), "DOUBLE"),
    Column("max", pa.float64(), "DOUBLE"),
    Column("bucket_counts", pa.list_(pa.int64()), "BIGINT[]"),
    Column("explicit_bounds", pa.list_(pa.float64()), "DOUBLE[]"),
    Column("received_at", _TS, "TIMESTAMP WITH TIME ZONE"),
)

TABLES: dict[str, tuple[Column, ...]] = {
    "calls": CALL_COLUMNS,
    "spans": SPAN_COLUMNS,
    "content_events": CONTENT_COLUMNS,
    "metric_points": METRIC_COLUMNS,
}


def arrow_schema(columns: tuple[Column, ...]) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.arrow) for c in columns])
