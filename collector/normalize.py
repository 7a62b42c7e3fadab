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
from collector.aggregates import collapse_aggregates
from collector.attributes import (
    attributes,
    json_object,
    to_bool,
    to_float,
    to_int,
    to_str,
    to_str_list,
)
from collector.pricing import Price, Pricer
from collector.redact import redact
from collector.usage import usage_tokens
from core.records import ERROR_MESSAGE_MAX_CHARS, CallRecord, ProviderSource, SpanRecord, Status

_CLASS_REPR = re.compile(r"^<class '([\w.]+)'>$")
_HTTP_IN_MESSAGE = re.compile(r"(?:Error code|status(?:[ _]code)?|HTTP)[:= ]+([1-5]\d\d)\b", re.IGNORECASE)
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_MAX_SPAN_KIND = 5  # SPAN_KIND_CONSUMER; the enum is open, so a client may send any int32
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
    """The rows of one request, and what was rejected and why."""

    calls: list[CallRecord] = field(default_factory=list)
    spans: list[SpanRecord] = field(default_factory=list)
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    # Streams recorded as two spans (see conventions.StreamLogRule): the log spans' calls (also in `calls`), and
    # the request spans (also in `spans`) with their request model, matched by _attach_stream_logs.
    stream_logs: list[CallRecord] = field(default_factory=list)
    stream_requests: list[tuple[SpanRecord, str | None]] = field(default_factory=list)

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
    metadata_keys: tuple[tuple[str, str, bool], ...]  # (attribute, metadata key, whether the value is JSON text)
    usage_objects: tuple[str, ...]  # the keys of cv.USAGE_OBJECTS present

    @classmethod
    def of(cls, attrs: dict[str, Any], scope_name: str, sdk_name: str | None) -> Shape:
        keys = set(attrs)
        sources = {name: tuple(s for s in srcs if s.key in keys) for name, srcs in cv.FIELDS.items()}
        metadata_keys = []
        for key in attrs:
            if key.startswith(cv.METADATA_PREFIXES):
                sub = key.split(".", 1)[1] if key.startswith("metadata.") else key[_prefix_len(key) :]
                if sub and sub not in cv.METADATA_SKIP:
                    metadata_keys.append((key, sub, key.startswith(cv.METADATA_JSON_VALUE_PREFIXES)))
        usage_objects = tuple(k for k in cv.USAGE_OBJECTS if k in keys)
        return cls(_detect_convention(attrs, scope_name, sdk_name), sources, tuple(metadata_keys), usage_objects)


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
    if isinstance(raw, str) and raw.startswith(("[", '"')):  # a JSON array (litellm) or string (Langfuse) as text
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    return to_str(raw)


def _metadata(attrs: dict[str, Any], metadata_keys: tuple[tuple[str, str, bool], ...]) -> dict[str, str] | None:
    meta: dict[str, str] = {}
    for key, sub, json_value in metadata_keys:
        s = to_str(attrs[key])
        if s is not None:
            meta[sub] = _json_string(s) if json_value else s
    for key in cv.METADATA_JSON_KEYS:
        obj = json_object(attrs.get(key))
        if obj:
            for k, v in obj.items():
                s = to_str(v)
                if s is not None and k not in cv.METADATA_SKIP:
                    meta.setdefault(str(k), s)
    return meta or None


def _json_string(text: str) -> str:
    """A value its SDK wrote as JSON (Langfuse: '"support"'): a JSON string literal unquoted, anything else as is."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
        if isinstance(value, str):
            return value
    return text


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


@dataclass(frozen=True, slots=True)
class _Resource:
    """What every span of one resource shares."""

    service: str | None
    environment: str | None
    sdk_name: str | None
    version: str | None  # service.version: the application's release


class SpanNormalizer:
    """Turns export requests into rows. Holds only configuration and the price cache.

    A span goes through these steps (`_span`): its identity (ids and times, or rejected), its shape (cached per
    instrumentation), classification (a model call or a plain span), then for a call: tokens, events (first
    token, exceptions, content events), errors, provider and price, content. Each step is a function of its own;
    they hand each other plain values, not objects, because this runs for every span."""

    def __init__(self, pricer: Pricer, content: ContentOptions | None = None) -> None:
        self.pricer = pricer
        self.content = content or ContentOptions()

    def normalize(self, request: Any, project: str, received_us: int) -> Normalized:
        out = Normalized()
        for rs in request.resource_spans:
            res = attributes(rs.resource.attributes)
            resource = _Resource(
                service=to_str(res.get("service.name")),
                environment=to_str(res.get("deployment.environment.name") or res.get("deployment.environment")),
                sdk_name=to_str(res.get("telemetry.sdk.name")),
                version=to_str(res.get("service.version")),
            )
            for ss in rs.scope_spans:
                scope_name = ss.scope.name
                for span in ss.spans:
                    self._span(span, scope_name, resource, project, received_us, out)
        _attach_stream_logs(out)
        out.calls, demoted = collapse_aggregates(out.calls, out.spans)
        out.spans.extend(demoted)
        return out

    def _span(
        self, span: Any, scope_name: str, resource: _Resource, project: str, received_us: int, out: Normalized
    ) -> None:
        identity = _identity(span)
        if isinstance(identity, str):
            out.reject(identity)
            return
        trace_id, span_id, parent, start, end = identity
        attrs = attributes(span.attributes)
        if attrs.get("logfire.span_type") == "pending_span":
            return  # Logfire sends a placeholder when a span starts; the real one follows
        shape = span_shape(attrs, scope_name, resource.sdk_name)
        src = shape.sources
        name = span.name
        operation, request_model, response_model, streaming, stream_log, stream_request, start = _classify(
            span, name, attrs, shape, start, end
        )
        if operation is _NOT_A_CALL or stream_request:
            status_code = span.status.code
            record = SpanRecord(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=parent,
                project=project,
                service=resource.service,
                name=name,
                kind=span.kind if 0 <= span.kind <= _MAX_SPAN_KIND else 0,  # unknown kinds: UNSPECIFIED
                start_time=start // 1000,
                end_time=end // 1000,
                duration_ms=(end - start) / 1e6,
                status=_ERROR if status_code == 2 else _OK,
                status_message=span.status.message or None,
                attributes=orjson.dumps(attrs, default=str).decode(),
                received_at=received_us,
            )
            out.spans.append(record)
            if stream_request:
                out.stream_requests.append((record, request_model))
            return

        if response_model is None and shape.convention is _OPENINFERENCE:
            response_model = _response_model_from_output(attrs)
        inp, out_tokens, cache_read, cache_write, reasoning = _tokens(attrs, shape)
        ttft, error_type, http_status, exception_message, input_event, output_event = self._events(
            span, attrs, src, start
        )
        if ttft is not None and streaming is None:
            streaming = True
        is_error, error_type, http_status, message = _errors(span, error_type, http_status, exception_message)
        provider, provider_source, price = self._price(
            attrs,
            src,
            request_model,
            response_model,
            inp,
            out_tokens,
            cache_read,
            cache_write,
            reasoning,
            is_error,
            start,
        )
        input_content, output_content = self._content(attrs, src, input_event, output_event)
        record = CallRecord(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent,
            project=project,
            service=resource.service,
            environment=to_str(_first(attrs, "environment", src)) or resource.environment,
            start_time=start // 1000,
            end_time=end // 1000,
            duration_ms=(end - start) / 1e6,
            ttft_ms=ttft if streaming else None,
            provider=provider,
            operation=operation or "chat",
            request_model=request_model,
            response_model=response_model,
            input_tokens=inp,
            output_tokens=out_tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            reasoning_tokens=reasoning,
            cost_usd=price.cost_usd,
            pricing=price.pricing,  # a StrEnum member is its str value (reading .value costs a call)
            price_source=price.source,
            reported_cost_usd=to_float(_first(attrs, "reported_cost_usd", src)),
            streaming=bool(streaming),
            status=_ERROR if is_error else _OK,
            error_type=error_type,
            http_status=http_status,
            finish_reason=_finish_reason(_first(attrs, "finish_reason", src)),
            user_id=to_str(_first(attrs, "user_id", src)),
            session_id=to_str(_first(attrs, "session_id", src)),
            tags=to_str_list(_first(attrs, "tags", src)),
            metadata=_metadata(attrs, shape.metadata_keys),
            convention=shape.convention.name,
            span_name=name,
            input_content=input_content,
            output_content=output_content,
            received_at=received_us,
            error_message=message,
            provider_source=provider_source,
            service_version=resource.version,
            model=self.pricer.model_name(provider, request_model, response_model),
            price_entry_id=price.entry_id,
        )
        out.calls.append(record)
        if stream_log is not None:
            out.stream_logs.append(record)

    def _events(
        self, span: Any, attrs: dict[str, Any], src: dict[str, tuple[cv.Source, ...]], start: int
    ) -> tuple[float | None, str | None, int | None, str | None, Any, Any]:
        """What the attributes and span events say of the first token, the error and (when captured) the content:
        (ttft_ms, error_type, http_status, exception message, input content event, output content event)."""
        error_type = _error_type(_first(attrs, "error_type", src))
        ttft = to_float(_first(attrs, "ttft_ms", src))
        http_status = _valid_http_status(to_int(_first(attrs, "http_status", src)))
        input_event = output_event = exception_message = None
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
                    input_event = input_event or value
                else:
                    output_event = output_event or value
        if ttft is None:
            ttft = _ttft_from_timestamp(attrs.get("langfuse.observation.completion_start_time"), start)
        return ttft, error_type, http_status, exception_message, input_event, output_event

    def _price(
        self,
        attrs: dict[str, Any],
        src: dict[str, tuple[cv.Source, ...]],
        request_model: str | None,
        response_model: str | None,
        inp: int | None,
        out: int | None,
        cache_read: int | None,
        cache_write: int | None,
        reasoning: int | None,
        is_error: bool,
        start: int,
    ) -> tuple[str | None, str | None, Price]:
        """(provider, where it came from, price). A call that names no provider gets the one genai-prices' model
        matching gives its model, and is priced under that same provider; a provider the client sent is kept."""
        model = response_model or request_model
        provider = _provider(attrs, src)
        if provider is not None:
            source = _CLIENT
        elif model and (provider := self.pricer.provider_for(model)) is not None:
            source = _INFERRED
        else:
            source = None
        price = self.pricer.price(
            provider, model, inp, out, cache_read, cache_write, is_error=is_error, at_ns=start, reasoning=reasoning
        )
        return provider, source, price

    def _content(
        self, attrs: dict[str, Any], src: dict[str, tuple[cv.Source, ...]], input_event: Any, output_event: Any
    ) -> tuple[str | None, str | None]:
        """Prompt and completion as stored (redacted, cut), only when content capture is on."""
        if not self.content.capture:
            return None, None
        input_content = (
            _first(attrs, "input_content", src) or input_event or _indexed_content(attrs, cv.INPUT_CONTENT_PREFIXES)
        )
        output_content = (
            _first(attrs, "output_content", src) or output_event or _indexed_content(attrs, cv.OUTPUT_CONTENT_PREFIXES)
        )
        return (
            stored_content(input_content, self.content) if input_content else None,
            stored_content(output_content, self.content) if output_content else None,
        )


_NOT_A_CALL = "not a call"  # the operation _classify gives a span that is not a model call
# Enum values as plain constants: reading an enum member's .value costs as much as a small function call.
_OK, _ERROR = Status.OK.value, Status.ERROR.value
_CLIENT, _INFERRED = ProviderSource.CLIENT.value, ProviderSource.INFERRED.value
_OPENINFERENCE = next(c for c in cv.CONVENTIONS if c.name == "openinference")


def _identity(span: Any) -> tuple[bytes, bytes, bytes | None, int, int] | str:
    """(trace_id, span_id, parent_span_id, start ns, end ns), or why the span cannot be stored."""
    trace_id, span_id = span.trace_id, span.span_id
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
        return "trace_id must be 16 bytes and not all zero"
    if len(span_id) != 8 or span_id == _ZERO_SPAN:
        return "span_id must be 8 bytes and not all zero"
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if start <= 0:
        return "start_time_unix_nano missing"
    parent = span.parent_span_id or None
    if parent is not None and len(parent) != 8:
        parent = None
    return trace_id, span_id, parent, start, max(end, start)


def _classify(
    span: Any, name: str, attrs: dict[str, Any], shape: Shape, start: int, end: int
) -> tuple[str | None, str | None, str | None, bool | None, cv.StreamLogRule | None, bool, int]:
    """Whether the span is a model call, and what that depends on: (operation or _NOT_A_CALL, request model,
    response model, streaming, the stream-log rule when it is a stream's log span, whether it is the request
    span of such a stream (stored as a plain span), start ns (a stream log starts when its stream did))."""
    src = shape.sources
    operation = _operation(attrs, name, src)
    request_model = to_str(_first(attrs, "request_model", src))
    response_model = to_str(_first(attrs, "response_model", src))
    streaming = _streaming(attrs, name, src)
    stream_log, stream_request = _stream_rule(shape.convention.name, attrs)
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
    if not is_call:
        operation = _NOT_A_CALL
    return operation, request_model, response_model, streaming, stream_log, stream_request, start


def _tokens(attrs: dict[str, Any], shape: Shape) -> list[int | None]:
    """[input, output, cache_read, cache_write, reasoning] with OTel meaning: the first source present for each,
    then a usage object (collector/usage.py) for those still unknown."""
    src = shape.sources
    tokens = [to_int(_first(attrs, name, src)) for name in _TOKEN_FIELDS]
    for key in shape.usage_objects:
        if None not in tokens:
            break
        for i, n in enumerate(usage_tokens(attrs[key])):
            if tokens[i] is None:
                tokens[i] = n
    inp, out, cache_read, cache_write, reasoning = tokens
    cached = (cache_read or 0) + (cache_write or 0)
    if inp is not None and inp < cached:  # a count that cannot include the cached tokens excludes them
        tokens[0] = inp + cached
    if out is not None and reasoning is not None and out < reasoning:
        tokens[1] = out + reasoning
    return tokens


def _errors(
    span: Any, error_type: str | None, http_status: int | None, exception_message: str | None
) -> tuple[bool, str | None, int | None, str | None]:
    """(is_error, error_type, http_status, error message as stored). A call failed when its status says so or an
    error type was reported; an error without a type is `_OTHER`."""
    status_message = span.status.message or None
    is_error = span.status.code == 2 or error_type is not None
    if not is_error:
        return False, None, http_status, None
    if http_status is None:
        http_status = _http_status_from(status_message)
    return True, error_type or "_OTHER", http_status, error_message(status_message or exception_message)


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


def _valid_http_status(status: int | None) -> int | None:
    """An HTTP status code (100-599) or None: anything else is not one, and would not fit its column."""
    return status if status is not None and 100 <= status <= 599 else None


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
    requests = out.stream_requests
    if not requests or not out.stream_logs:
        return
    claimed: set[int] = set()
    for call in out.stream_logs:
        best = None
        for req, model in requests:
            if (
                id(req) in claimed
                or req.trace_id != call.trace_id
                or model != call.request_model
                or req.start_time > call.start_time
                or call.parent_span_id not in (req.parent_span_id, req.span_id)
            ):
                continue
            if best is None or req.start_time > best.start_time:
                best = req
        if best is not None:
            claimed.add(id(best))
            call.start_time = best.start_time
            call.duration_ms = (call.end_time - best.start_time) / 1e3
