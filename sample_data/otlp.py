"""Generated calls -> OpenTelemetry SDK spans (ReadableSpan) speaking each service's convention.

Each encoder writes the attribute set its instrumentation library emits (see collector/conventions.py), with
explicit start/end times, so the collector's normalisation is exercised and backfill works. Traces get their
structure too: the Vercel AI SDK agent loop has its ai.generateText/ai.streamText root and ai.toolCall spans
between the steps; the OpenInference search has a CHAIN root over its embedding and rerank calls.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pyarrow as pa
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from sample_data import catalog as cat

Row = dict[str, Any]
Attrs = dict[str, Any]
_NS = 1000  # rows hold microseconds

# the provider spelling of each library (the collector maps them back to one name)
_OPENLLMETRY_SYSTEM = {"openai": "openai", "anthropic": "Anthropic", "gcp.gemini": "Gemini"}
_OPENINFERENCE_SYSTEM = {"openai": "openai", "anthropic": "anthropic", "gcp.gemini": "vertexai"}
_VERCEL_PROVIDER = {"openai": "openai.chat", "anthropic": "anthropic.messages", "gcp.gemini": "google.generative-ai"}
_OPENLIT_PROVIDER = {"gcp.gemini": "gemini", "mistral_ai": "mistral"}
_OTEL_SCOPE = {"openai": "openai_v2", "anthropic": "anthropic", "gcp.gemini": "google_genai"}
_TOOLS = ("web_search", "fetch_page", "run_python", "read_file")


def rows_of(table: pa.Table) -> list[Row]:
    """Table rows as dicts with plain values and times as integer microseconds (what the encoders need)."""
    cols = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.int64())
        cols[name] = col
    return pa.table(cols).to_pylist()


def shift(table: pa.Table, delta_us: int) -> pa.Table:
    """The same calls moved in time by delta_us."""
    for name in ("start_time", "end_time", "received_at"):
        i = table.column_names.index(name)
        typ = table.schema.field(name).type
        moved = pa.compute.add(table.column(name).cast(pa.int64()), delta_us).cast(typ)
        table = table.set_column(i, name, moved)
    return table


def spans_for(rows: list[Row]) -> Iterator[ReadableSpan]:
    """The spans of the traces of `rows` (rows of one trace must be adjacent or at least all present)."""
    traces: dict[bytes, list[Row]] = {}
    for row in rows:
        traces.setdefault(row["trace_id"], []).append(row)
    for calls in traces.values():
        yield from _trace(calls)


def _trace(calls: list[Row]) -> Iterator[ReadableSpan]:
    calls.sort(key=lambda r: r["start_time"])
    conv = calls[0]["convention"]
    for row in calls:
        yield _call_span(row)
    root_id = calls[0]["parent_span_id"]
    if root_id is None:
        return
    if conv == "vercel_ai":
        yield from _vercel_structure(calls, root_id)
    elif conv == "openinference":
        yield _span(
            calls[0],
            "rag-search",
            span_id=root_id,
            parent=None,
            start=calls[0]["start_time"] - 3_000,
            end=calls[-1]["end_time"] + 2_000,
            attrs={"openinference.span.kind": "CHAIN", **_oi_context(calls[0])},
            scope="openinference.instrumentation.langchain",
        )


# ---------------------------------------------------------------------------------------------- span building


def _context(trace_id: bytes, span_id: bytes) -> SpanContext:
    return SpanContext(
        int.from_bytes(trace_id, "big"), int.from_bytes(span_id, "big"), False, TraceFlags(TraceFlags.SAMPLED)
    )


_RESOURCES: dict[tuple[str, str, str, str], Resource] = {}


def _resource(row: Row) -> Resource:
    conv = row["convention"]
    version = row.get("service_version")
    key = (row["service"], row["environment"] or "", conv, version or "")
    res = _RESOURCES.get(key)
    if res is None:
        env_key = (
            "deployment.environment"
            if conv in ("otel_genai_deprecated", "openlit")
            else ("deployment.environment.name")
        )
        attrs: Attrs = {"service.name": row["service"], "telemetry.sdk.language": "python"}
        if version:
            attrs["service.version"] = version
        if conv != "langfuse":  # Langfuse carries the environment on each span
            attrs[env_key] = row["environment"]
        attrs["telemetry.sdk.name"] = "openlit" if conv == "openlit" else "opentelemetry"
        res = _RESOURCES[key] = Resource(attrs)
    return res


def _span(
    row: Row,
    name: str,
    *,
    span_id: bytes,
    parent: bytes | None,
    start: int,
    end: int,
    attrs: Attrs,
    scope: str,
    kind: SpanKind = SpanKind.INTERNAL,
    events: tuple[Event, ...] = (),
    status: Status | None = None,
) -> ReadableSpan:
    return ReadableSpan(
        name=name,
        context=_context(row["trace_id"], span_id),
        parent=_context(row["trace_id"], parent) if parent else None,
        resource=_resource(row),
        attributes={k: v for k, v in attrs.items() if v is not None},
        events=events,
        kind=kind,
        status=status or Status(StatusCode.UNSET),
        start_time=start * _NS,
        end_time=end * _NS,
        instrumentation_scope=InstrumentationScope(scope, "demo"),
    )


def _call_span(row: Row) -> ReadableSpan:
    name, scope, attrs, events = ENCODERS[row["convention"]](row)
    status = None
    if row["status"] == "error":
        kind = next(e for e in cat.ERRORS if e.error_type == row["error_type"] and e.http_status == row["http_status"])
        status = Status(StatusCode.ERROR, kind.message)
        exc = Event(
            "exception",
            {"exception.type": row["error_type"], "exception.message": kind.message},
            timestamp=row["end_time"] * _NS,
        )
        events = (*events, exc)
    return _span(
        row,
        name,
        span_id=row["span_id"],
        parent=row["parent_span_id"],
        start=row["start_time"],
        end=row["end_time"],
        attrs=attrs,
        scope=scope,
        kind=SpanKind.CLIENT,
        events=events,
        status=status,
    )


def _derived_id(*parts: bytes | str | int) -> bytes:
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
    return h.digest()


# ---------------------------------------------------------------------------------------------- helpers


def _ok(row: Row) -> bool:
    return row["status"] == "ok"


def _meta(row: Row) -> dict[str, str]:
    return dict(row["metadata"] or [])


def _ttft_s(row: Row) -> float | None:
    return row["ttft_ms"] / 1000 if row["ttft_ms"] is not None else None


def _first_token_event(row: Row, name: str) -> tuple[Event, ...]:
    if row["ttft_ms"] is None:
        return ()
    return (Event(name, {}, timestamp=row["start_time"] * _NS + round(row["ttft_ms"] * 1e6)),)


def _finish(row: Row) -> list[str] | None:
    return [row["finish_reason"]] if row["finish_reason"] else None


def _usage(row: Row, **names: str) -> Attrs:
    """Token counts under the given attribute names (field -> key), only for calls that reported usage."""
    if not _ok(row):
        return {}
    return {key: row[field] for field, key in names.items() if row[field] is not None}


# ---------------------------------------------------------------------------------------------- encoders


def _otel_genai(row: Row) -> tuple[str, str, Attrs, tuple[Event, ...]]:
    provider = row["provider"]
    attrs: Attrs = {
        "gen_ai.operation.name": row["operation"],
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": row["request_model"],
        "gen_ai.response.model": row["response_model"],
        "gen_ai.request.stream": True if row["streaming"] else None,
        "gen_ai.response.finish_reasons": _finish(row),
        "gen_ai.response.time_to_first_chunk": _ttft_s(row),
        "gen_ai.conversation.id": row["session_id"],
        "user.id": row["user_id"],
        "error.type": row["error_type"],
        **_usage(
            row,
            input_tokens="gen_ai.usage.input_tokens",
            output_tokens="gen_ai.usage.output_tokens",
            cache_read_tokens="gen_ai.usage.cache_read.input_tokens",
            cache_write_tokens="gen_ai.usage.cache_creation.input_tokens",
            reasoning_tokens="gen_ai.usage.reasoning.output_tokens",
        ),
    }
    attrs.update({f"metadata.{k}": v for k, v in _meta(row).items()})
    scope = f"opentelemetry.instrumentation.{_OTEL_SCOPE.get(provider, provider)}"
    return row["span_name"], scope, attrs, ()


def _otel_genai_deprecated(row: Row) -> tuple[str, str, Attrs, tuple[Event, ...]]:
    attrs: Attrs = {
        "gen_ai.system": row["provider"],
        "gen_ai.request.model": row["request_model"],
        "gen_ai.response.model": row["response_model"],
        "gen_ai.response.finish_reasons": _finish(row),
        "error.type": row["error_type"],
        "server.address": "api.openai.com",
        **_usage(row, input_tokens="gen_ai.usage.prompt_tokens", output_tokens="gen_ai.usage.completion_tokens"),
    }
    attrs.update({f"metadata.{k}": v for k, v in _meta(row).items()})
    return row["span_name"], "opentelemetry.instrumentation.openai", attrs, ()


def _openllmetry(row: Row) -> tuple[str, str, Attrs, tuple[Event, ...]]:
    provider = row["provider"]
    usage = _usage(
        row,
        input_tokens="gen_ai.usage.input_tokens",
        output_tokens="gen_ai.usage.output_tokens",
        cache_read_tokens="gen_ai.usage.cache_read_input_tokens",
        cache_write_tokens="gen_ai.usage.cache_creation_input_tokens",
        reasoning_tokens="llm.usage.reasoning_tokens",
    )
    if usage:
        usage["llm.usage.total_tokens"] = row["input_tokens"] + row["output_tokens"]
    attrs: Attrs = {
        "llm.request.type": "chat",
        "gen_ai.system": _OPENLLMETRY_SYSTEM.get(provider, provider),
        "gen_ai.request.model": row["request_model"],
        "gen_ai.response.model": row["response_model"],
        "llm.is_streaming": row["streaming"],
        "gen_ai.completion.0.finish_reason": row["finish_reason"],
        "traceloop.association.properties.user_id": row["user_id"],
        "traceloop.association.properties.session_id": row["session_id"],
        "error.type": row["error_type"],
        **usage,
    }
    attrs.update({f"traceloop.association.properties.{k}": v for k, v in _meta(row).items()})
    scope = f"opentelemetry.instrumentation.{provider.split('.')[-1]}"
    return row["span_name"], scope, attrs, _first_token_event(row, "llm.content.completion.chunk")


def _oi_context(row: Row) -> Attrs:
    return {
        "session.id": row["session_id"],
        "user.id": row["user_id"],
        "metadata": orjson.dumps(_meta(row)).decode(),
        "tag.tags": row["tags"],
    }


def _openinference(row: Row) -> tuple[str, str, Attrs, tuple[Event, ...]]:
    provider = row["provider"]
    embedding = row["operation"] == "embeddings"
    params = {"model": row["request_model"]}
    if row["streaming"]:
        params["stream"] = True
    attrs: Attrs = {
        "openinference.span.kind": "EMBEDDING" if embedding else "LLM",
        "llm.system": _OPENINFERENCE_SYSTEM.get(provider, provider),
        "llm.provider": provider.split(".")[-1],
        "llm.model_name": row["response_model"] or row["request_model"],
        "llm.invocation_parameters": orjson.dumps(params).decode(),
        "llm.finish_reason": row["finish_reason"],
        "error.type": row["error_type"],
        **_oi_context(row),
        **_usage(
            row,
            input_tokens="llm.token_count.prompt",
            output_tokens="llm.token_count.completion",
            cache_read_tokens="llm.token_count.prompt_details.cache_read",
            cache_write_tokens="llm.token_count.prompt_details.cache_write",
            reasoning_tokens="llm.token_count.completion_details.reasoning",
        ),
    }
    if _ok(row):
        attrs["llm.token_count.total"] = row["input_tokens"] + row["output_tokens"]
        # OpenInference keeps the answering model only in the raw response
        attrs["output.value"] = orjson.dumps(
            {"object": "list" if embedding else "chat.completion", "model": row["response_model"]}
        ).decode()
        attrs["output.mime_type"] = "application/json"
    return (
        row["span_name"],
        "openinference.instrumentation.openai",
        attrs,
        _first_token_event(row, "First Token Stream Event"),
    )


def _vercel_ai(row: Row) -> tuple[str, str, Attrs, tuple[Event, ...]]:
    op = row["span_name"]
    attrs: Attrs = {
        "operation.name": f"{op} research",
        "ai.operationId": op,
        "ai.telemetry.functionId": "research",
        "ai.model.id": row["request_model"],
        "ai.model.provider": _VERCEL_PROVIDER.get(row["provider"], row["provider"]),
        "ai.response.model": row["response_model"],
        "ai.response.finishReason": row["finish_reason"],
        "ai.response.msToFirstChunk": row["ttft_ms"],
        "ai.telemetry.metadata.userId": row["user_id"],
        "ai.telemetry.metadata.sessionId": row["session_id"],
        "ai.telemetry.metadata.tags": row["tags"],
        "error.type": row["error_type"],
        **_usage(
            row,
            input_tokens="ai.usage.inputTokens",
            output_tokens="ai.usage.outputTokens",
            cache_read_tokens="ai.usage.cachedInputTokens",
            reasoning_tokens="ai.usage.reasoningTokens",
        ),
    }
    attrs.update({f"ai.telemetry.metadata.{k}": v for k, v in _meta(row).items()})
    return op, "ai", attrs, _first_token_event(row, "ai.stream.firstChunk")


def _vercel_structure(calls: list[Row], root_id: bytes) -> Iterator[ReadableSpan]:
    """The agent loop's root span (totals, an aggregate) and a tool call between consecutive steps."""
    first = calls[0]
    op = "ai.streamText" if first["streaming"] else "ai.generateText"
    ok = [c for c in calls if _ok(c)]
    totals = {
        "ai.usage.inputTokens": sum(c["input_tokens"] for c in ok),
        "ai.usage.outputTokens": sum(c["output_tokens"] for c in ok),
    }
    yield _span(
        first,
        op,
        span_id=root_id,
        parent=None,
        start=first["start_time"] - 2_000,
        end=calls[-1]["end_time"] + 1_000,
        attrs={
            "operation.name": f"{op} research",
            "ai.operationId": op,
            "ai.model.id": first["request_model"],
            "ai.model.provider": _VERCEL_PROVIDER.get(first["provider"], first["provider"]),
            "ai.telemetry.functionId": "research",
            "ai.telemetry.metadata.userId": first["user_id"],
            "ai.telemetry.metadata.sessionId": first["session_id"],
            **(totals if ok else {}),
        },
        scope="ai",
    )
    for i, (prev, nxt) in enumerate(itertools.pairwise(calls)):
        tool = _TOOLS[int.from_bytes(nxt["span_id"][:2], "big") % len(_TOOLS)]
        yield _span(
            prev,
            "ai.toolCall",
            span_id=_derived_id(root_id, i),
            parent=root_id,
            start=prev["end_time"] + 1_000,
            end=max(nxt["start_time"] - 1_000, prev["end_time"] + 2_000),
            attrs={
                "operation.name": "ai.toolCall research",
                "ai.operationId": "ai.toolCall",
                "ai.toolCall.name": tool,
                "ai.toolCall.id": f"call_{_derived_id(root_id, i, 't').hex()}",
            },
            scope="ai",
        )


def _langfuse(row: Row) -> tuple[str, str, Attrs, tuple[Event, ...]]:
    usage = None
    if _ok(row):
        usage = {
            "input": row["input_tokens"] - row["cache_read_tokens"] - row["cache_write_tokens"],
            "output": row["output_tokens"] - row["reasoning_tokens"],
            "cache_read_input_tokens": row["cache_read_tokens"],
            "cache_creation_input_tokens": row["cache_write_tokens"],
            "output_reasoning_tokens": row["reasoning_tokens"],
        }
    attrs: Attrs = {
        "langfuse.observation.type": "generation",
        "langfuse.observation.model.name": row["request_model"],
        "langfuse.observation.usage_details": orjson.dumps(usage).decode() if usage else None,
        "langfuse.observation.cost_details": (
            orjson.dumps({"total": row["reported_cost_usd"]}).decode() if row["reported_cost_usd"] is not None else None
        ),
        "langfuse.environment": row["environment"],
        "langfuse.trace.name": row["service"],
        "langfuse.trace.tags": orjson.dumps(row["tags"]).decode() if row["tags"] else None,
        "user.id": row["user_id"],
        "session.id": row["session_id"],
        "error.type": row["error_type"],
    }
    attrs.update({f"langfuse.trace.metadata.{k}": v for k, v in _meta(row).items()})
    return row["span_name"], "langfuse-sdk", attrs, ()


def _openlit(row: Row) -> tuple[str, str, Attrs, tuple[Event, ...]]:
    provider = row["provider"]
    ttft = _ttft_s(row)
    if ttft is None and _ok(row):
        ttft = (row["end_time"] - row["start_time"]) / 1e6  # OpenLIT: the whole duration when not streaming
    attrs: Attrs = {
        "telemetry.sdk.name": "openlit",
        "gen_ai.operation.name": row["operation"],
        "gen_ai.provider.name": _OPENLIT_PROVIDER.get(provider, provider),
        "gen_ai.request.model": row["request_model"],
        "gen_ai.response.model": row["response_model"],
        "gen_ai.request.stream": row["streaming"],
        "gen_ai.server.time_to_first_token": ttft,
        "gen_ai.response.finish_reasons": _finish(row),
        "gen_ai.usage.cost": row["reported_cost_usd"],
        "deployment.environment": row["environment"],
        "service.name": row["service"],
        "gen_ai.request.user": row["user_id"],
        "session.id": row["session_id"],
        "error.type": row["error_type"],
        **_usage(
            row,
            input_tokens="gen_ai.usage.input_tokens",
            output_tokens="gen_ai.usage.output_tokens",
            cache_read_tokens="gen_ai.usage.cache_read.input_tokens",
            cache_write_tokens="gen_ai.usage.cache_creation.input_tokens",
            reasoning_tokens="gen_ai.usage.reasoning_tokens",
        ),
    }
    attrs.update({f"metadata.{k}": v for k, v in _meta(row).items()})
    return row["span_name"], "openlit.otel.tracing", attrs, ()


def _logfire(row: Row) -> tuple[str, str, Attrs, tuple[Event, ...]]:
    model = row["request_model"]
    attrs: Attrs = {
        "logfire.span_type": "span",
        "logfire.msg_template": "Chat Completion with {request_data[model]!r}",
        "logfire.msg": f"Chat Completion with {model!r}",
        "request_data": orjson.dumps({"model": model, "stream": False}).decode(),
        "gen_ai.system": row["provider"],
        "gen_ai.provider.name": row["provider"],
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.response.model": row["response_model"],
        "gen_ai.response.finish_reasons": _finish(row),
        "logfire.tags": row["tags"],
        "user.id": row["user_id"],
        "session.id": row["session_id"],
        "error.type": row["error_type"],
        "async": True,
        **_usage(
            row,
            input_tokens="gen_ai.usage.input_tokens",
            output_tokens="gen_ai.usage.output_tokens",
            cache_read_tokens="gen_ai.usage.cache_read.input_tokens",
            cache_write_tokens="gen_ai.usage.cache_creation.input_tokens",
            reasoning_tokens="gen_ai.usage.reasoning.output_tokens",
        ),
    }
    attrs.update({f"metadata.{k}": v for k, v in _meta(row).items()})
    return row["span_name"], "logfire.openai", attrs, ()


ENCODERS: dict[str, Callable[[Row], tuple[str, str, Attrs, tuple[Event, ...]]]] = {
    "otel_genai": _otel_genai,
    "otel_genai_deprecated": _otel_genai_deprecated,
    "openllmetry": _openllmetry,
    "openinference": _openinference,
    "vercel_ai": _vercel_ai,
    "langfuse": _langfuse,
    "openlit": _openlit,
    "logfire": _logfire,
}
