"""Spans -> model-call records and plain span rows, for every convention in collector/conventions.py.

Pure and synchronous: an ExportTraceServiceRequest in, rows out. Spans that cannot be stored (missing or
malformed ids, no start time) are rejected one by one and named, so the rest of the batch is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from collector import conventions as cv
from collector.attributes import (
    attributes,
    json_object,
    to_bool,
    to_float,
    to_int,
    to_str,
    to_str_list,
)
from collector.pricing import Pricer
from collector.redact import redact
from core.records import ERROR_MESSAGE_MAX_CHARS, Status

_CLASS_REPR = re.compile(r"^<class '([\w.]+)'>$")
_HTTP_IN_MESSAGE = re.compile(r"(?:Error code|status(?:[ _]code)?|HTTP)[:= ]+([1-5]\d\d)\b", re.IGNORECASE)
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


@dataclass
class ContentOptions:
    capture: bool = False
    max_chars: int = 16_384


@dataclass
class Normalized:
    calls: list[dict[str, Any]] = field(default_factory=list)
    spans: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def error_message(self) -> str:
        return "; ".join(f"{n} span(s) rejected: {r}" for r, n in sorted(self.reasons.items()))


@dataclass(frozen=True)
class Shape:
    """What depends only on a span's shape (scope, SDK, attribute keys): its convention, for each field the
    sources present among its keys, and its metadata keys. Spans of one instrumentation share a shape, so
    this is worked out once per shape, not once per span."""

    convention: cv.Convention
    sources: dict[str, tuple[cv.Source, ...]]
    metadata_keys: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, attrs: dict[str, Any], scope_name: str, sdk_name: str | None) -> Shape:
        keys = set(attrs)
        sources = {name: tuple(s for s in srcs if s.key in keys) for name, srcs in cv.FIELDS.items()}
        metadata_keys = []
        for key in attrs:
            if key.startswith(cv.METADATA_PREFIXES):
                sub = key.split(".", 1)[1] if key.startswith("metadata.") else key[_prefix_len(key) :]
                if sub and sub not in cv.METADATA_SKIP:
                    metadata_keys.append((key, sub))
        return cls(_detect_convention(attrs, scope_name, sdk_name), sources, tuple(metadata_keys))


_SHAPE_CACHE: dict[tuple[str, str | None, tuple[str, ...]], Shape] = {}
_SHAPE_CACHE_LIMIT = 4096


def span_shape(attrs: dict[str, Any], scope_name: str, sdk_name: str | None) -> Shape:
    key = (scope_name, sdk_name, tuple(attrs))
    shape = _SHAPE_CACHE.get(key)
    if shape is None:
        if len(_SHAPE_CACHE) >= _SHAPE_CACHE_LIMIT:
            _SHAPE_CACHE.clear()
        shape = _SHAPE_CACHE[key] = Shape.of(attrs, scope_name, sdk_name)
    return shape


def detect_convention(attrs: dict[str, Any], scope_name: str, sdk_name: str | None) -> cv.Convention:
    """The convention a span speaks (cached per span shape)."""
    return span_shape(attrs, scope_name, sdk_name).convention


def _detect_convention(attrs: dict[str, Any], scope_name: str, sdk_name: str | None) -> cv.Convention:
    for conv in cv.CONVENTIONS:
        if any(k in attrs for k in conv.markers):
            return conv
        if conv.marker_prefixes and any(k.startswith(conv.marker_prefixes) for k in attrs):
            return conv
        if conv.scope_prefixes and scope_name.startswith(conv.scope_prefixes):
            return conv
        if scope_name in conv.scope_names:
            return conv
        if sdk_name and sdk_name in conv.sdk_names:
            return conv
    if "gen_ai.system" in attrs and "gen_ai.provider.name" not in attrs:
        return _DEPRECATED
    return cv.CONVENTIONS[-1]


_DEPRECATED = next(c for c in cv.CONVENTIONS if c.name == "otel_genai_deprecated")


def _first(attrs: dict[str, Any], field_name: str, sources: dict[str, tuple[cv.Source, ...]] = cv.FIELDS) -> Any:
    """The value of a field: the first of its sources present in `attrs` (`sources`: a shape's, to skip the
    absent ones)."""
    for src in sources[field_name]:
        value = attrs.get(src.key)
        if value is None:
            continue
        if src.json_key is not None:
            value = _json_path(value, src.json_key)
            if value is None:
                continue
        if src.scale != 1.0:
            f = to_float(value)
            if f is None:
                continue
            return f * src.scale
        return value
    return None


def _json_path(value: Any, path: str) -> Any:
    """`value` is a JSON object (or its text): the value at `path`, dots walking nested objects; None if absent."""
    for key in path.split("."):
        obj = json_object(value)
        if obj is None:
            return None
        value = obj.get(key)
    return value


def _operation(attrs: dict[str, Any], name: str, sources: dict[str, tuple[cv.Source, ...]]) -> str | None:
    kind = attrs.get("openinference.span.kind")
    if isinstance(kind, str):
        return cv.OPENINFERENCE_KINDS.get(kind.upper())
    lf_type = attrs.get("langfuse.observation.type")
    if isinstance(lf_type, str):
        return cv.LANGFUSE_TYPES.get(lf_type.lower(), "task")
    op_id = attrs.get("ai.operationId")
    if isinstance(op_id, str) or name.startswith("ai."):
        return cv.VERCEL_OPERATIONS.get(op_id if isinstance(op_id, str) else name)
    tl_kind = attrs.get("traceloop.span.kind")
    if isinstance(tl_kind, str) and tl_kind.lower() in cv.NON_CALL_OPERATIONS:
        return tl_kind.lower()
    raw = _first(attrs, "operation", sources)
    if isinstance(raw, str):
        low = raw.lower()
        return cv.OPERATION_ALIASES.get(low, low)
    return None


def _provider(attrs: dict[str, Any], sources: dict[str, tuple[cv.Source, ...]]) -> str | None:
    raw = _first(attrs, "provider", sources)
    if not isinstance(raw, str) or not raw:
        return None
    low = raw.lower()
    if low in cv.OTEL_PROVIDERS:
        return low
    if low in cv.PROVIDER_ALIASES:
        return cv.PROVIDER_ALIASES[low]
    if "." in low:  # Vercel "openai.chat", "anthropic.messages", "google.vertex.chat": the longest known prefix
        parts = low.split(".")
        for n in range(len(parts) - 1, 0, -1):
            head = ".".join(parts[:n])
            if head in cv.OTEL_PROVIDERS:
                return head
            if head in cv.PROVIDER_ALIASES:
                return cv.PROVIDER_ALIASES[head]
        return parts[0]
    return low


def _error_type(raw: Any) -> str | None:
    text = to_str(raw)
    if not text:
        return None
    m = _CLASS_REPR.match(text)
    if m:
        text = m.group(1)
    return text.rsplit(".", 1)[-1] if "." in text and " " not in text else text


def _finish_reason(raw: Any) -> str | None:
    if isinstance(raw, str) and raw.startswith("["):  # a JSON array as text (litellm)
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    return to_str(raw)


def _metadata(attrs: dict[str, Any], metadata_keys: tuple[tuple[str, str], ...]) -> dict[str, str] | None:
    meta: dict[str, str] = {}
    for key, sub in metadata_keys:
        s = to_str(attrs[key])
        if s is not None:
            meta[sub] = s
    for key in cv.METADATA_JSON_KEYS:
        obj = json_object(attrs.get(key))
        if obj:
            for k, v in obj.items():
                s = to_str(v)
                if s is not None and k not in cv.METADATA_SKIP:
                    meta.setdefault(str(k), s)
    return meta or None


def _prefix_len(key: str) -> int:
    for prefix in cv.METADATA_PREFIXES:
        if key.startswith(prefix):
            return len(prefix)
    return 0


def _indexed_content(attrs: dict[str, Any], prefixes: tuple[str, ...]) -> str | None:
    """Flattened message lists (gen_ai.prompt.0.content, llm.input_messages.0.message.role) -> a JSON list."""
    messages: dict[tuple[str, int], dict[str, Any]] = {}
    for key, value in attrs.items():
        if not key.startswith(prefixes):
            continue
        for prefix in prefixes:
            if key.startswith(prefix):
                rest = key[len(prefix) :]
                index, _, sub = rest.partition(".")
                if index.isdigit() and sub:
                    sub = sub.removeprefix("message.")
                    messages.setdefault((prefix, int(index)), {})[sub] = value
                break
    if not messages:
        return None
    return orjson.dumps([messages[k] for k in sorted(messages)]).decode()


def error_message(text: str | None) -> str | None:
    """An error message as stored: redacted like content (keys, e-mails, numbers), cut at a few hundred chars.

    Stored whether or not content capture is on: it says why a call failed, which the Errors page needs, and
    providers' messages name limits and codes rather than the prompt. Redaction covers the keys some echo back.
    """
    if not text:
        return None
    s = redact(text.strip())
    return s if len(s) <= ERROR_MESSAGE_MAX_CHARS else s[:ERROR_MESSAGE_MAX_CHARS] + "…"


def stored_content(text: Any, options: ContentOptions) -> str | None:
    """Content as stored: JSON text, redacted, cut at options.max_chars."""
    if text is None:
        return None
    s = text if isinstance(text, str) else orjson.dumps(text).decode()
    s = redact(s)
    return s if len(s) <= options.max_chars else s[: options.max_chars] + "…[truncated]"


def _response_model_from_output(attrs: dict[str, Any]) -> str | None:
    """OpenInference keeps the response model only inside output.value (the raw JSON response)."""
    obj = json_object(attrs.get("output.value"))
    model = obj.get("model") if obj else None
    return model if isinstance(model, str) else None


def _fix_token_semantics(rec: dict[str, Any], conv: cv.Convention) -> None:
    """Store OTel meaning: cached inside input, reasoning inside output, whatever the library meant."""
    inp, out = rec["input_tokens"], rec["output_tokens"]
    cached = (rec["cache_read_tokens"] or 0) + (rec["cache_write_tokens"] or 0)
    reasoning = rec["reasoning_tokens"] or 0
    if inp is not None and (conv.input_excludes_cache or inp < cached):
        rec["input_tokens"] = inp + cached
    if out is not None and (conv.output_excludes_reasoning or out < reasoning):
        rec["output_tokens"] = out + reasoning


class SpanNormalizer:
    """Turns export requests into rows. Holds only configuration and the price cache."""

    def __init__(self, pricer: Pricer, content: ContentOptions | None = None) -> None:
        self.pricer = pricer
        self.content = content or ContentOptions()

    def normalize(self, request: Any, project: str, received_us: int) -> Normalized:
        out = Normalized()
        for rs in request.resource_spans:
            res = attributes(rs.resource.attributes)
            service = to_str(res.get("service.name"))
            res_env = to_str(res.get("deployment.environment.name") or res.get("deployment.environment"))
            sdk_name = to_str(res.get("telemetry.sdk.name"))
            version = to_str(res.get("service.version"))
            for ss in rs.scope_spans:
                scope_name = ss.scope.name
                for span in ss.spans:
                    first_new = len(out.calls)
                    self._one(span, scope_name, sdk_name, service, res_env, project, received_us, out)
                    for call in out.calls[first_new:]:
                        call["service_version"] = version
        _attach_stream_logs(out)
        _collapse_aggregates(out)
        return out

    def _one(
        self,
        span: Any,
        scope_name: str,
        sdk_name: str | None,
        service: str | None,
        res_env: str | None,
        project: str,
        received_us: int,
        out: Normalized,
    ) -> None:
        trace_id, span_id = span.trace_id, span.span_id
        if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
            out.reject("trace_id must be 16 bytes and not all zero")
            return
        if len(span_id) != 8 or span_id == _ZERO_SPAN:
            out.reject("span_id must be 8 bytes and not all zero")
            return
        start, end = span.start_time_unix_nano, span.end_time_unix_nano
        if start <= 0:
            out.reject("start_time_unix_nano missing")
            return
        if end < start:
            end = start
        parent = span.parent_span_id or None
        if parent is not None and len(parent) != 8:
            parent = None
        attrs = attributes(span.attributes)
        if attrs.get("logfire.span_type") == "pending_span":
            return  # Logfire sends a placeholder when a span starts; the real one follows
        name = span.name
        shape = span_shape(attrs, scope_name, sdk_name)
        conv, src = shape.convention, shape.sources
        operation = _operation(attrs, name, src)
        request_model = to_str(_first(attrs, "request_model", src))
        response_model = to_str(_first(attrs, "response_model", src))
        status_code = span.status.code
        status_message = span.status.message or None
        streaming = _streaming(attrs, name, src)

        stream_log, stream_request = _stream_rule(conv.name, attrs)
        if stream_log is not None:
            streaming = True
            duration = to_float(attrs.get(stream_log.duration_key)) if stream_log.duration_key else None
            if duration is not None and 0 < duration * 1e9 < end:
                start = min(start, end - round(duration * 1e9))  # a log has no length: the stream's duration
        is_call = (
            operation not in cv.NON_CALL_OPERATIONS
            and (request_model is not None or response_model is not None)
            and (operation in cv.CALL_OPERATIONS or operation is None)
        )
        # The request span of a stream whose log span carries the call (see StreamLogRule), unless it failed.
        stream_request = stream_request and is_call and not _failed(span, attrs, src)
        if not is_call or stream_request:
            row = {
                "trace_id": trace_id,
                "span_id": span_id,
                "parent_span_id": parent,
                "project": project,
                "service": service,
                "name": name,
                "kind": span.kind,
                "start_time": start // 1000,
                "end_time": end // 1000,
                "duration_ms": (end - start) / 1e6,
                "status": Status.ERROR.value if status_code == 2 else Status.OK.value,
                "status_message": status_message,
                "attributes": orjson.dumps(attrs, default=str).decode(),
                "received_at": received_us,
            }
            if stream_request:
                row["_stream_request"] = request_model
            out.spans.append(row)
            return

        if response_model is None and conv.name == "openinference":
            response_model = _response_model_from_output(attrs)
        rec: dict[str, Any] = {f: to_int(_first(attrs, f, src)) for f in _TOKEN_FIELDS}
        _fix_token_semantics(rec, conv)

        error_type = _error_type(_first(attrs, "error_type", src))
        ttft = to_float(_first(attrs, "ttft_ms", src))
        http_status = to_int(_first(attrs, "http_status", src))
        input_content = output_content = exception_message = None
        for event in span.events:
            ev_name = event.name
            if ev_name in cv.FIRST_TOKEN_EVENTS:
                if ttft is None and event.time_unix_nano >= start:
                    ttft = (event.time_unix_nano - start) / 1e6
            elif ev_name == "exception":
                ev = attributes(event.attributes)
                error_type = error_type or _error_type(ev.get("exception.type"))
                exception_message = exception_message or to_str(ev.get("exception.message"))
                if http_status is None:
                    http_status = _http_status_from(exception_message)
            elif self.content.capture and ev_name in cv.CONTENT_EVENTS:
                target, key = cv.CONTENT_EVENTS[ev_name]
                value = attributes(event.attributes).get(key)
                if target == "input_content":
                    input_content = input_content or value
                else:
                    output_content = output_content or value
        if ttft is None:
            lf_start = attrs.get("langfuse.observation.completion_start_time")
            ttft = _ttft_from_timestamp(lf_start, start)
        if ttft is not None and streaming is None:
            streaming = True
        is_error = status_code == 2 or error_type is not None
        if is_error and error_type is None:
            error_type = "_OTHER"
        if is_error and http_status is None:
            http_status = _http_status_from(status_message)

        provider = _provider(attrs, src)
        model_for_price = response_model or request_model
        price = self.pricer.price(
            provider,
            model_for_price,
            rec["input_tokens"],
            rec["output_tokens"],
            rec["cache_read_tokens"],
            rec["cache_write_tokens"],
            is_error=is_error,
            at_ns=start,
        )
        environment = to_str(_first(attrs, "environment", src)) or res_env
        if self.content.capture:
            input_content = (
                _first(attrs, "input_content", src)
                or input_content
                or _indexed_content(attrs, cv.INPUT_CONTENT_PREFIXES)
            )
            output_content = (
                _first(attrs, "output_content", src)
                or output_content
                or _indexed_content(attrs, cv.OUTPUT_CONTENT_PREFIXES)
            )
        rec.update(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent,
            project=project,
            service=service,
            environment=environment,
            start_time=start // 1000,
            end_time=end // 1000,
            duration_ms=(end - start) / 1e6,
            ttft_ms=ttft if streaming else None,
            provider=provider,
            operation=operation or "chat",
            request_model=request_model,
            response_model=response_model,
            cost_usd=price.cost_usd,
            pricing=price.pricing.value,
            price_source=price.source,
            reported_cost_usd=to_float(_first(attrs, "reported_cost_usd", src)),
            streaming=bool(streaming),
            status=Status.ERROR.value if is_error else Status.OK.value,
            error_type=error_type if is_error else None,
            http_status=http_status,
            finish_reason=_finish_reason(_first(attrs, "finish_reason", src)),
            user_id=to_str(_first(attrs, "user_id", src)),
            session_id=to_str(_first(attrs, "session_id", src)),
            tags=to_str_list(_first(attrs, "tags", src)),
            metadata=_metadata(attrs, shape.metadata_keys),
            convention=conv.name,
            span_name=name,
            input_content=stored_content(input_content, self.content) if input_content else None,
            output_content=stored_content(output_content, self.content) if output_content else None,
            received_at=received_us,
            error_message=error_message(status_message or exception_message) if is_error else None,
        )
        if stream_log is not None:
            rec["_stream_log"] = True
        out.calls.append(rec)


def _streaming(attrs: dict[str, Any], name: str, sources: dict[str, tuple[cv.Source, ...]]) -> bool | None:
    streaming = to_bool(_first(attrs, "streaming", sources))
    if streaming is None and ("doStream" in name or "streamText" in name or "streamObject" in name):
        streaming = True  # Vercel AI SDK legacy spans say it only by their name
    return streaming


def _failed(span: Any, attrs: dict[str, Any], sources: dict[str, tuple[cv.Source, ...]]) -> bool:
    return (
        span.status.code == 2
        or _first(attrs, "error_type", sources) is not None
        or any(event.name == "exception" for event in span.events)
    )


def _stream_rule(convention: str, attrs: dict[str, Any]) -> tuple[cv.StreamLogRule | None, bool]:
    """(the rule when this span is a stream's log span, whether it is the request span of such a stream)."""
    for rule in cv.STREAM_LOG_RULES:
        if rule.convention != convention:
            continue
        value = attrs.get(rule.attribute)
        if isinstance(value, str) and value.startswith(rule.prefix):
            return rule, False
        flag = attrs.get(rule.request_stream.key)
        if rule.request_stream.json_key is not None:
            flag = _json_path(flag, rule.request_stream.json_key)
        if to_bool(flag):
            return None, True
    return None, False


def _http_status_from(message: str | None) -> int | None:
    if not message:
        return None
    m = _HTTP_IN_MESSAGE.search(message)
    return int(m.group(1)) if m else None


def _ttft_from_timestamp(value: Any, start_ns: int) -> float | None:
    """An ISO timestamp of the first token -> ms after the start. The Langfuse Python SDK JSON-encodes it, so the
    text may arrive quoted ('"2026-01-15T09:00:00.350000+00:00"')."""
    if not isinstance(value, str) or not value:
        return None
    from datetime import UTC, datetime

    value = value.strip().strip('"')
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    ms = ts.timestamp() * 1000 - start_ns / 1e6
    return ms if ms >= 0 else None


def _attach_stream_logs(out: Normalized) -> None:
    """A stream-log call (StreamLogRule) whose request span is in this batch starts when that request started:
    the request span is its sibling (or, in older versions, its parent) in the same trace with the same request
    model, the latest one that started before the log."""
    requests = [(s, s.pop("_stream_request")) for s in out.spans if "_stream_request" in s]
    claimed: set[int] = set()
    for call in out.calls:
        if not call.pop("_stream_log", False) or not requests:
            continue
        best = None
        for req, model in requests:
            if (
                id(req) in claimed
                or req["trace_id"] != call["trace_id"]
                or model != call["request_model"]
                or req["start_time"] > call["start_time"]
                or call["parent_span_id"] not in (req["parent_span_id"], req["span_id"])
            ):
                continue
            if best is None or req["start_time"] > best["start_time"]:
                best = req
        if best is not None:
            claimed.add(id(best))
            call["start_time"] = best["start_time"]
            call["duration_ms"] = (call["end_time"] - best["start_time"]) / 1e3


def _collapse_aggregates(out: Normalized) -> None:
    """Count a model call once: a call with a descendant call in the batch is an aggregate (a Vercel root, a
    framework span over the provider span) and moves to the spans table."""
    if not out.calls:
        return
    calls_by_key = {(c["trace_id"], c["span_id"]): c for c in out.calls}
    parents: dict[tuple[bytes, bytes], bytes | None] = {k: c["parent_span_id"] for k, c in calls_by_key.items()}
    for s in out.spans:
        parents[(s["trace_id"], s["span_id"])] = s["parent_span_id"]
    aggregates: set[tuple[bytes, bytes]] = set()
    for (trace_id, _), call in calls_by_key.items():
        parent = call["parent_span_id"]
        depth = 0
        while parent is not None and depth < 64:
            key = (trace_id, parent)
            if key in calls_by_key:
                aggregates.add(key)
            parent = parents.get(key)
            depth += 1
    if aggregates:
        kept = []
        for c in out.calls:
            if (c["trace_id"], c["span_id"]) in aggregates:
                out.spans.append(call_as_span(c))
            else:
                kept.append(c)
        out.calls = kept


def call_as_span(call: dict[str, Any]) -> dict[str, Any]:
    """An aggregate call demoted to a plain span row (its figures kept in the attributes)."""
    summary = {
        k: call[k]
        for k in ("provider", "operation", "request_model", "response_model", *_TOKEN_FIELDS, "convention")
        if call.get(k) is not None
    }
    summary["callscope.aggregate"] = True
    return {
        "trace_id": call["trace_id"],
        "span_id": call["span_id"],
        "parent_span_id": call["parent_span_id"],
        "project": call["project"],
        "service": call["service"],
        "name": call["span_name"],
        "kind": 0,
        "start_time": call["start_time"],
        "end_time": call["end_time"],
        "duration_ms": call["duration_ms"],
        "status": call["status"],
        "status_message": call["error_type"],
        "attributes": orjson.dumps(summary).decode(),
        "received_at": call["received_at"],
    }
