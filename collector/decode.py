"""Turn an OTLP/HTTP request body into a protobuf request message. Pure: no I/O, no state.

Protobuf and JSON both end as the same message type, so everything downstream has one path. JSON is read as
leniently as the reference collector: lowerCamelCase or snake_case keys, enum integers or names, 64-bit
integers as strings or numbers, trace/span ids as hex (as OTLP/JSON specifies) or base64.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from enum import StrEnum

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class Signal(StrEnum):
    TRACES = "traces"
    METRICS = "metrics"
    LOGS = "logs"


REQUEST_TYPES: dict[Signal, type[Message]] = {
    Signal.TRACES: ExportTraceServiceRequest,
    Signal.METRICS: ExportMetricsServiceRequest,
    Signal.LOGS: ExportLogsServiceRequest,
}
RESPONSE_TYPES: dict[Signal, type[Message]] = {
    Signal.TRACES: ExportTraceServiceResponse,
    Signal.METRICS: ExportMetricsServiceResponse,
    Signal.LOGS: ExportLogsServiceResponse,
}


class Encoding(StrEnum):
    PROTOBUF = "application/x-protobuf"
    JSON = "application/json"


class DecodeFailure(ValueError):
    """The body cannot be decoded; `status` is the HTTP status to answer (400, 413 or 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def content_encoding_of(content_type: str | None) -> Encoding:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in ("application/x-protobuf", "application/protobuf"):
        return Encoding.PROTOBUF
    if media == "application/json":
        return Encoding.JSON
    raise DecodeFailure(
        415, f"unsupported Content-Type {media or '(none)'!r}: use application/x-protobuf or application/json"
    )


def decompress(data: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Undo Content-Encoding, refusing (413) to inflate past `limit` bytes."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    for coding in reversed(codings):
        if coding == "identity":
            continue
        if coding in ("gzip", "x-gzip"):
            data = _gunzip(data, limit, coding)
        elif coding in ("deflate", "zlib"):
            # "deflate" is zlib-wrapped per RFC 9110, but some clients send raw deflate: accept both.
            wbits = zlib.MAX_WBITS if data[:1] and (data[0] & 0x0F) == 8 else -zlib.MAX_WBITS
            data = _inflate(data, zlib.decompressobj(wbits), limit, coding)
        elif coding == "zstd":
            data = _unzstd(data, limit)
        else:
            raise DecodeFailure(415, f"unsupported Content-Encoding {coding!r}: use gzip, deflate or zstd")
    if len(data) > limit:
        raise DecodeFailure(413, f"request body is {len(data)} bytes, over the limit of {limit}")
    return data


def _gunzip(data: bytes, limit: int, coding: str) -> bytes:
    """Every member of a gzip body: RFC 1952 allows several, concatenated, and gzip readers read them all."""
    out: list[bytes] = []
    size = 0
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        member = _inflate(data, inflater, limit - size, coding, limit)
        size += len(member)
        out.append(member)
        data = inflater.unused_data
        if not data:
            return b"".join(out)


def _inflate(data: bytes, inflater: zlib._Decompress, limit: int, coding: str, total_limit: int | None = None) -> bytes:
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise DecodeFailure(400, f"body is not valid {coding}: {exc}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise DecodeFailure(413, f"decompressed body exceeds the limit of {total_limit or limit} bytes")
    if not inflater.eof:
        raise DecodeFailure(400, f"body is not valid {coding}: truncated stream")
    return out


def _unzstd(data: bytes, limit: int) -> bytes:
    """Every frame of a zstd body. Each frame is read twice: first by a bounded reader (a bomb stops at the
    limit), then by a decompressobj, the one API that says whether the frame ended and what follows it (a
    truncated frame is refused, not taken for a short body; concatenated frames are all read)."""
    import zstandard

    out: list[bytes] = []
    size = 0
    try:
        while True:
            frame = zstandard.ZstdDecompressor().stream_reader(data).read(limit - size + 1)
            size += len(frame)
            if size > limit:
                raise DecodeFailure(413, f"decompressed body exceeds the limit of {limit} bytes")
            check = zstandard.ZstdDecompressor().decompressobj()
            check.decompress(data)
            if not check.eof:
                raise DecodeFailure(400, "body is not valid zstd: truncated frame")
            out.append(frame)
            data = check.unused_data
            if not data:
                return b"".join(out)
    except zstandard.ZstdError as exc:
        raise DecodeFailure(400, f"body is not valid zstd: {exc}") from exc


def decode_request(signal: Signal, encoding: Encoding, data: bytes) -> Message:
    """Parse an export request body of `signal` in `encoding` into its protobuf message."""
    message = REQUEST_TYPES[signal]()
    if encoding is Encoding.PROTOBUF:
        try:
            message.ParseFromString(data)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise DecodeFailure(400, f"body is not a valid OTLP {signal} protobuf message: {exc}") from exc
        return message
    try:
        tree = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DecodeFailure(400, f"body is not valid JSON: {exc}") from exc
    if not isinstance(tree, dict):
        raise DecodeFailure(400, f"OTLP/JSON body must be an object, got {type(tree).__name__}")
    try:
        json_format.ParseDict(_ids_to_base64(tree), message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise DecodeFailure(400, f"body is not a valid OTLP/JSON {signal} request: {exc}") from exc
    return message


def encode_response(message: Message, encoding: Encoding) -> bytes:
    if encoding is Encoding.PROTOBUF:
        return message.SerializeToString()
    return orjson.dumps(json_format.MessageToDict(message))


_ID_KEYS = frozenset({"traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"})


def _ids_to_base64(node: object) -> object:
    """OTLP/JSON carries ids as hex; protobuf's JSON mapping wants base64. Convert in place, leniently.

    An id that is neither hex nor base64 becomes empty, so the span is rejected by validation (partial
    success) instead of failing the whole request.
    """
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in _ID_KEYS and isinstance(value, str):
                    item[key] = _id_to_base64(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, dict | list))
    return node


def _id_to_base64(value: str) -> str:
    if len(value) in (16, 32):
        try:
            return base64.b64encode(bytes.fromhex(value)).decode()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
        if len(raw) in (8, 16):
            return value
    except (binascii.Error, ValueError):
        pass
    return ""
