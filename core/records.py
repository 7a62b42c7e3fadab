"""The model-call record and the other stored rows, as column lists shared by the collector and the store.

A model call is one row of `calls`; non-model spans of the same traces go to `spans`. Token counts follow
OTel semantics whatever the client meant: cache_read/cache_write are INSIDE input_tokens, reasoning INSIDE
output_tokens. cost_usd is NULL when no price is known (pricing = 'unpriced'); never 0 for an unknown price.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from operator import attrgetter
from typing import Annotated, Any, get_type_hints

import pyarrow as pa


class Status(StrEnum):
    OK = "ok"
    ERROR = "error"


class Pricing(StrEnum):
    PRICED = "priced"  # genai-prices knew the model
    OVERRIDE = "override"  # a user price from the config file
    UNPRICED = "unpriced"  # no price known: cost_usd is NULL
    NO_USAGE = "no_usage"  # a successful call that reported no token counts: cost_usd is NULL
    BOOK = "book"  # an entry of the price book (core/pricebook.py) in force at the call's start


class ProviderSource(StrEnum):
    CLIENT = "client"  # the span named its provider
    INFERRED = "inferred"  # the span named none: genai-prices' model matching gave the model's provider


@dataclass(frozen=True)
class Column:
    name: str
    arrow: pa.DataType
    sql: str  # the DuckDB type as `information_schema.columns.data_type` spells it


_TS = pa.timestamp("us", tz="UTC")
_META = pa.map_(pa.string(), pa.string())


@dataclass(frozen=True)
class Stored:
    """Marks a record field as a stored column: its Arrow type and its DuckDB type (as information_schema spells
    it). The column's name is the field's."""

    arrow: pa.DataType
    sql: str


def columns_of(record: type) -> tuple[Column, ...]:
    """The stored columns of a record type, in field order (the table's column order)."""
    hints = get_type_hints(record, include_extras=True)
    out = []
    for f in fields(record):
        stored = next(m for m in hints[f.name].__metadata__ if isinstance(m, Stored))
        out.append(Column(f.name, stored.arrow, stored.sql))
    return tuple(out)


@dataclass(slots=True)
class CallRecord:
    """One model call: a row of `calls`, as the normaliser produces it and the writer stores it. Every field is
    required, so a record built without one fails where it is built, not in the store.

    Times are microseconds since the epoch (what Arrow stores in a timestamp column); ids are raw bytes."""

    trace_id: Annotated[bytes, Stored(pa.binary(), "BLOB")]
    span_id: Annotated[bytes, Stored(pa.binary(), "BLOB")]
    parent_span_id: Annotated[bytes | None, Stored(pa.binary(), "BLOB")]
    project: Annotated[str, Stored(pa.string(), "VARCHAR")]
    service: Annotated[str | None, Stored(pa.string(), "VARCHAR")]
    environment: Annotated[str | None, Stored(pa.string(), "VARCHAR")]
    start_time: Annotated[int, Stored(_TS, "TIMESTAMP WITH TIME ZONE")]
    end_time: Annotated[int, Stored(_TS, "TIMESTAMP WITH TIME ZONE")]
    duration_ms: Annotated[float, Stored(pa.float64(), "DOUBLE")]
    ttft_ms: Annotated[float | None, Stored(pa.float64(), "DOUBLE")]
    provider: Annotated[str | None, Stored(pa.string(), "VARCHAR")]
    operation: Annotated[str, Stored(pa.string(), "VARCHAR")]
    request_model: Annotated[str | None, Stored(pa.string(), "VARCHAR")]
    response_model: Annotated[str | None, Stored(pa.string(), "VARCHAR")]
    input_tokens: Annotated[int | None, Stored(pa.int64(), "BIGINT")]
    output_tokens: Annotated[int | None, Stored(pa.int64(), "BIGINT")]
    cache_read_tokens: Annotated[int | None, Stored(pa.int64(), "BIGINT")]
    cache_write_tokens: Annotated[int | None, Stored(pa.int64(), "BIGINT")]
    reasoning_tokens: Annotated[int | None, Stored(pa.int64(), "BIGINT")]
    cost_usd: Annotated[float | None, Stored(pa.float64(), "DOUBLE")]
    pricing: Annotated[str, Stored(pa.string(), "VARCHAR")]
    price_source: Annotated[str | None, Stored(pa.string(), "VARCHAR")]
    reported_cost_usd: Annotated[float | None, Stored(pa.float64(), "DOUBLE")]
    streaming: Annotated[bool, Stored(pa.bool_(), "BOOLEAN")]
    status: Annotated[str, Stored(pa.string(), "VARCHAR")]
    error_type: Annotated[str | None, Stored(pa.string(), "VARCHAR")]
    http_status: Annotated[int | None, Stored(pa.int32(), "INTEGER")]
    finish_reason: Annotated[str | None, Stored(pa.string(), "VARCHAR")]
    user_id: Annotated[str | None, Stored(pa.string(), "VARCHAR")]
    session_id: Annotated[str | None, Stored(pa.string(), "VARCHAR")]
    tags: Annotated[list[str] | None, Stored(pa.list_(pa.string()), "VARCHAR[]")]
    metadata: Annotated[dict[str, str] | None, Stored(_META, "MAP(VARCHAR, VARCHAR)")]
    convention: Annotated[str, Stored(pa.string(), "VARCHAR")]
    span_name: Annotated[str | None, Stored(pa.string(), "VARCHAR")]
    input_content: Annotated[str | None, Stored(pa.string(), "VARCHAR")]
    output_content: Annotated[str | None, Stored(pa.string(), "VARCHAR")]
    received_at: Annotated[int, Stored(_TS, "TIMESTAMP WITH TIME ZONE")]
    # Why a call failed, as the client reported it (span status message or exception message): secrets and
    # personal data redacted, cut at ERROR_MESSAGE_MAX_CHARS. Added by m006, hence after received_at.
    error_message: Annotated[str | None, Stored(pa.string(), "VARCHAR")]
    # Where `provider` came from (ProviderSource); NULL when there is no provider. Added by m007.
    provider_source: Annotated[str | None, Stored(pa.string(), "VARCHAR")]
    # The sending application's release (resource attribute service.version). Added by m011.
    service_version: Annotated[str | None, Stored(pa.string(), "VARCHAR")]
    # One name per model (collector/model_names.py): genai-prices' matched id of the model asked for (else of the
    # model that answered), so an alias, its dated snapshots and its failed calls are one model. Added by m012.
    model: Annotated[str | None, Stored(pa.string(), "VARCHAR")]
    # The price book entry (core/pricebook.py) the cost came from; NULL when genai-prices priced it. Added by m013.
    price_entry_id: Annotated[int | None, Stored(pa.int64(), "BIGINT")]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CallRecord:
        """A row read back from the store or an Arrow table (timestamps as datetimes, metadata as pairs)."""
        values = {name: row[name] for name in _CALL_FIELDS}
        for name in ("start_time", "end_time", "received_at"):
            values[name] = epoch_us(values[name])
        meta = values["metadata"]
        if meta is not None and not isinstance(meta, dict):
            values["metadata"] = dict(meta)
        return cls(**values)

    def as_row(self) -> dict[str, Any]:
        """The record as a dict of its columns (shallow, unlike dataclasses.asdict)."""
        return {name: getattr(self, name) for name in _CALL_FIELDS}


@dataclass(slots=True)
class SpanRecord:
    """A span that is not a model call (or an aggregate demoted from one): a row of `spans`."""

    trace_id: Annotated[bytes, Stored(pa.binary(), "BLOB")]
    span_id: Annotated[bytes, Stored(pa.binary(), "BLOB")]
    parent_span_id: Annotated[bytes | None, Stored(pa.binary(), "BLOB")]
    project: Annotated[str, Stored(pa.string(), "VARCHAR")]
    service: Annotated[str | None, Stored(pa.string(), "VARCHAR")]
    name: Annotated[str | None, Stored(pa.string(), "VARCHAR")]
    kind: Annotated[int, Stored(pa.int8(), "TINYINT")]
    start_time: Annotated[int, Stored(_TS, "TIMESTAMP WITH TIME ZONE")]
    end_time: Annotated[int, Stored(_TS, "TIMESTAMP WITH TIME ZONE")]
    duration_ms: Annotated[float, Stored(pa.float64(), "DOUBLE")]
    status: Annotated[str, Stored(pa.string(), "VARCHAR")]
    status_message: Annotated[str | None, Stored(pa.string(), "VARCHAR")]
    attributes: Annotated[str | None, Stored(pa.string(), "VARCHAR")]  # the span's attributes as a JSON object
    received_at: Annotated[int, Stored(_TS, "TIMESTAMP WITH TIME ZONE")]


_CALL_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(CallRecord))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def epoch_us(value: int | datetime) -> int:
    """A timestamp as microseconds since the epoch (records hold ints; the store gives back datetimes)."""
    if isinstance(value, datetime):
        return (value - _EPOCH) // _MICROSECOND
    return value


CALL_COLUMNS: tuple[Column, ...] = columns_of(CallRecord)
ERROR_MESSAGE_MAX_CHARS = 500
SPAN_COLUMNS: tuple[Column, ...] = columns_of(SpanRecord)

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


_SCHEMAS: dict[tuple[Column, ...], tuple[pa.Schema, tuple[tuple[str, Callable[[Any], Any]], ...]]] = {}


def records_table(records: Sequence[Any], columns: tuple[Column, ...]) -> pa.Table:
    """Records (CallRecord, SpanRecord) -> a table of `columns`, built column by column (cheaper than from rows)."""
    cached = _SCHEMAS.get(columns)
    if cached is None:
        cached = _SCHEMAS[columns] = (arrow_schema(columns), tuple((c.name, attrgetter(c.name)) for c in columns))
    schema, getters = cached
    return pa.Table.from_pydict({name: list(map(get, records)) for name, get in getters}, schema=schema)
