"""Mutations of OTLP request bodies: bytes, decoded messages, OTLP/JSON trees and text, and compression.

Every function takes a `random.Random` and draws all its choices from it, so a body is reproduced from the
seed of its Random, and under hypothesis (`st.randoms(use_true_random=False)`) a failing body shrinks.
The values are chosen to hit the collector's edges: the OTel GenAI attribute keys the normaliser reads
(collector/conventions.py), ids of every wrong length, NaN and infinities, 64-bit extremes, huge and deeply
nested values, invalid UTF-8, and timestamps at both ends of their range.
"""

from __future__ import annotations

import base64
import copy
import gzip
import random
import re
import zlib
from typing import Any

import zstandard
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from bench.fuzzing import wire
from collector import conventions as cv
from collector.signals import CONTENT_LOG_EVENTS

INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
NAN, INF = float("nan"), float("inf")

# -- byte level -------------------------------------------------------------------------------------------

_INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x0A, 0x12, 0x1A, 0x22)


def mutate_bytes(data: bytes, rng: random.Random, others: tuple[bytes, ...] = ()) -> bytes:
    """One to four byte-level mutations: truncation, bit flips, interesting bytes, inserted/deleted/duplicated/
    swapped ranges, a splice with another body, a lying length prefix."""
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3, 4))):
        out = _one_byte_mutation(out, rng, others)
    return bytes(out)


def _one_byte_mutation(out: bytearray, rng: random.Random, others: tuple[bytes, ...]) -> bytearray:
    n = len(out)
    op = rng.randrange(10)
    if n == 0:
        return bytearray(rng.randbytes(rng.randrange(1, 64)))
    if op == 0:  # truncation
        return out[: rng.randrange(n)]
    if op == 1:  # bit flips
        for _ in range(rng.choice((1, 1, 2, 8))):
            i = rng.randrange(n)
            out[i] ^= 1 << rng.randrange(8)
        return out
    if op == 2:  # an interesting byte
        out[rng.randrange(n)] = rng.choice(_INTERESTING_BYTES)
        return out
    if op == 3:  # random bytes inserted
        i = rng.randrange(n + 1)
        return out[:i] + rng.randbytes(rng.choice((1, 4, 16, 256))) + out[i:]
    if op == 4:  # a range deleted
        i = rng.randrange(n)
        return out[:i] + out[i + rng.randrange(1, min(n - i, 512) + 1) :]
    if op == 5:  # a range duplicated
        i = rng.randrange(n)
        j = min(n, i + rng.randrange(1, 512))
        return out[:j] + out[i:j] + out[j:]
    if op == 6:  # two ranges swapped
        a, b = sorted(rng.sample(range(n + 1), 2)) if n > 1 else (0, n)
        c = rng.randrange(b, n + 1)
        return out[:a] + out[b:c] + out[a:b] + out[c:]
    if op == 7 and others:  # spliced with another body
        other = rng.choice(others)
        return out[: rng.randrange(n + 1)] + other[rng.randrange(len(other) + 1) :]
    if op == 8:  # a length prefix that lies
        return bytearray(wire.lying_length(bytes(out), rng))
    return out + rng.randbytes(rng.choice((1, 3, 100)))  # trailing junk


# -- values ---------------------------------------------------------------------------------------------

_STRINGS = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\u202e\u0000\ufeff",
    "💥" * 50,
    "NaN",
    "inf",
    "-Infinity",
    "-1",
    "0",
    "1e400",
    "-1e400",
    "99999999999999999999999999",
    "4.2e1",
    "0x1F",
    "true",
    "[1, 2",
    '["a", 1, null, {"b": []}]',
    "[]",
    "{",
    '{"model": "gpt-4o", "stream": "yes"}',
    '{"model": 5, "stream": true}',
    '{"prompt_tokens": "x", "completion_tokens": -5, "prompt_tokens_details": {"cached_tokens": 1e400}}',
    '{"input": 1e308, "output": null, "total": [], "input_cached_tokens": "12"}',
    "<class 'openai.RateLimitError'>",
    "Error code: 429 - rate limited",
    "HTTP 999999999999",
    "status_code=500",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59.999999-14:00",
    '"2026-01-15T09:00:00.350000+00:00"',
    "2026-13-45T99:99:99Z",
    "streaming response from 'gpt-4o' took 1.5s",
    "a" * 1000,
)


def interesting_string(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.02:
        return "x" * rng.choice((65_535, 65_536, 65_537, 300_000))  # attribute strings are cut at 64 KiB
    if r < 0.1:
        return "".join(chr(rng.choice((rng.randrange(32, 127), rng.randrange(0x80, 0xD800)))) for _ in range(20))
    return rng.choice(_STRINGS)


def interesting_int(rng: random.Random) -> int:
    return rng.choice((0, 1, -1, 7, 2**31 - 1, 2**31, 2**62, 2**62 - 1, INT64_MAX, INT64_MIN, 10**15))


def interesting_double(rng: random.Random) -> float:
    return rng.choice((NAN, INF, -INF, -0.0, 0.0, 1e308, -1e308, 5e-324, 0.5, 1.5, 1e15, 1e19, 12.0))


def interesting_any_value(rng: random.Random, depth: int = 0) -> AnyValue:
    """An AnyValue of any kind (or none set) with an edge value; arrays and kvlists nest a few levels."""
    v = AnyValue()
    kind = rng.randrange(8 if depth < 3 else 6)
    if kind == 0:
        v.string_value = interesting_string(rng)
    elif kind == 1:
        v.int_value = interesting_int(rng)
    elif kind == 2:
        v.double_value = interesting_double(rng)
    elif kind == 3:
        v.bool_value = rng.random() < 0.5
    elif kind == 4:
        v.bytes_value = rng.randbytes(rng.choice((0, 1, 8, 16, 100)))
    elif kind == 5:
        pass  # no value set at all
    elif kind == 6:
        v.array_value.SetInParent()
        for _ in range(rng.choice((0, 1, 3))):
            v.array_value.values.add().CopyFrom(interesting_any_value(rng, depth + 1))
    else:
        v.kvlist_value.SetInParent()
        for _ in range(rng.choice((0, 1, 3))):
            key = rng.choice(_KVLIST_KEYS)
            v.kvlist_value.values.add(key=key).value.CopyFrom(interesting_any_value(rng, depth + 1))
    return v


_KVLIST_KEYS = (
    "role",
    "content",
    "message",
    "model",
    "stream",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "input",
    "output",
    "index",
    "",
)

# Every attribute key the normaliser reads, plus a few it should ignore.
ATTRIBUTE_KEYS: tuple[str, ...] = tuple(
    sorted(
        {src.key for sources in cv.FIELDS.values() for src in sources}
        | {rule.attribute for rule in cv.STREAM_LOG_RULES}
        | {rule.request_stream.key for rule in cv.STREAM_LOG_RULES}
        | {k for rule in cv.STREAM_LOG_RULES if (k := rule.duration_key)}
        | {k for conv in cv.CONVENTIONS for k in conv.markers}
        | {p + "x" for conv in cv.CONVENTIONS for p in conv.marker_prefixes}
        | {p + "user_id" for p in cv.METADATA_PREFIXES}
        | {p + "0.content" for p in cv.INPUT_CONTENT_PREFIXES + cv.OUTPUT_CONTENT_PREFIXES}
        | {p + "1.message.role" for p in cv.INPUT_CONTENT_PREFIXES + cv.OUTPUT_CONTENT_PREFIXES}
        | set(cv.METADATA_JSON_KEYS)
        | {
            "openinference.span.kind",
            "langfuse.observation.type",
            "langfuse.observation.completion_start_time",
            "ai.operationId",
            "traceloop.span.kind",
            "output.value",
            "event.name",
            "gen_ai.event.name",
            "service.name",
            "telemetry.sdk.name",
            "deployment.environment",
            "exception.type",
            "exception.message",
            "random.key",
            "",
        }
    )
)

# The keys that decide whether a span is a model call (and how it is counted): left alone in the spans of a
# partial batch that must be stored as calls.
CALL_DECIDING_KEYS = frozenset(
    {src.key for name in ("request_model", "response_model", "operation") for src in cv.FIELDS[name]}
    | {rule.attribute for rule in cv.STREAM_LOG_RULES}
    | {rule.request_stream.key for rule in cv.STREAM_LOG_RULES}
    | {
        "openinference.span.kind",
        "langfuse.observation.type",
        "ai.operationId",
        "traceloop.span.kind",
        "logfire.span_type",
    }
)
_SAFE_KEYS = tuple(k for k in ATTRIBUTE_KEYS if k not in CALL_DECIDING_KEYS)


def interesting_attribute(rng: random.Random, *, keep_call: bool = False) -> KeyValue:
    key = rng.choice(_SAFE_KEYS if keep_call else ATTRIBUTE_KEYS)
    kv = KeyValue(key=key)
    kv.value.CopyFrom(interesting_any_value(rng))
    return kv


def wrong_length_id(rng: random.Random, right: int) -> bytes:
    """An id of any length but `right`, or all zeros of the right length (both invalid in OTLP)."""
    if rng.random() < 0.15:
        return bytes(right)
    length = rng.choice([n for n in range(0, 34) if n != right])
    return rng.randbytes(length)


def interesting_time(rng: random.Random) -> int:
    return rng.choice((0, 1, 1_000, 1_700_000_000_000_000_000, INT64_MAX, 2**63, UINT64_MAX, 2**62))


# -- decoded messages -------------------------------------------------------------------------------------


def fuzz_span(span: Any, rng: random.Random, *, keep_call: bool = False) -> None:
    """Edge values in one span. With keep_call, the span stays a storable model call: valid ids and start
    time, and the attributes that decide call-ness untouched."""
    for _ in range(rng.choice((1, 2, 3, 6))):
        op = rng.randrange(9)
        if op == 0:
            for _ in range(rng.choice((1, 3, 8))):
                span.attributes.append(interesting_attribute(rng, keep_call=keep_call))
        elif op == 1:
            span.kind = rng.choice((0, 5, 6, 127, 128, 255, 256, INT32_MAX, INT32_MIN, -1))
        elif op == 2:
            span.status.code = rng.choice((0, 1, 2, 3, INT32_MAX, INT32_MIN))
            span.status.message = interesting_string(rng)
        elif op == 3:
            if keep_call:
                span.start_time_unix_nano = rng.choice((1, 1_700_000_000_000_000_000, INT64_MAX, UINT64_MAX))
            else:
                span.start_time_unix_nano = interesting_time(rng)
            span.end_time_unix_nano = interesting_time(rng)
        elif op == 4:
            event = span.events.add(
                name=rng.choice((*sorted(cv.FIRST_TOKEN_EVENTS), *sorted(cv.CONTENT_EVENTS), "exception", "", "\x00")),
                time_unix_nano=interesting_time(rng),
            )
            for _ in range(rng.choice((0, 1, 3))):
                key = rng.choice(("exception.type", "exception.message", "gen_ai.prompt", "gen_ai.completion"))
                event.attributes.add(key=key).value.CopyFrom(interesting_any_value(rng))
        elif op == 5:
            link = span.links.add(trace_id=rng.randbytes(rng.randrange(0, 20)), span_id=rng.randbytes(8))
            link.attributes.append(interesting_attribute(rng))
        elif op == 6 and not keep_call:
            which = rng.choice(("trace_id", "span_id", "parent_span_id"))
            setattr(span, which, wrong_length_id(rng, 16 if which == "trace_id" else 8))
        elif op == 7:
            span.parent_span_id = rng.choice((b"", rng.randbytes(8), rng.randbytes(3), bytes(8)))
        else:
            span.name = interesting_string(rng)
            if keep_call and span.name.startswith("ai."):
                span.name = "x" + span.name
            span.trace_state = interesting_string(rng)
            span.flags = rng.choice((0, 1, 0xFFFFFFFF))
            span.dropped_attributes_count = rng.choice((0, 0xFFFFFFFF))
    if rng.random() < 0.2:
        shuffled = list(span.attributes)
        rng.shuffle(shuffled)
        del span.attributes[:]
        span.attributes.extend(shuffled)


def fuzz_traces(request: Any, rng: random.Random) -> None:
    """Edge values in some spans, resources and scopes of an ExportTraceServiceRequest."""
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    for _ in range(rng.choice((1, 2, 4))):
        r = rng.random()
        if spans and r < 0.7:
            fuzz_span(rng.choice(spans), rng)
        elif request.resource_spans and r < 0.85:
            rs = rng.choice(request.resource_spans)
            for _ in range(rng.choice((1, 3))):
                rs.resource.attributes.append(interesting_attribute(rng))
            for ss in rs.scope_spans:
                if rng.random() < 0.3:
                    ss.scope.name = rng.choice(("logfire", "langfuse-sdk", "openinference.x", "ai", "\x00", ""))
        elif spans:
            span = rng.choice(spans)
            copy = request.resource_spans[0].scope_spans.add().spans.add() if request.resource_spans else None
            if copy is not None:
                copy.CopyFrom(span)  # the same span twice: a re-send within one request
                if rng.random() < 0.5:
                    copy.parent_span_id = span.span_id  # ... or its own child
                    copy.span_id = rng.randbytes(8)


_LOG_EVENTS = (*sorted(CONTENT_LOG_EVENTS), "other.event", "")


def fuzz_logs(request: Any, rng: random.Random) -> None:
    records = [r for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    if not records:
        records = [request.resource_logs.add().scope_logs.add().log_records.add()]
    for _ in range(rng.choice((1, 2, 4))):
        record = rng.choice(records)
        op = rng.randrange(6)
        if op == 0:
            record.body.CopyFrom(interesting_any_value(rng))
        elif op == 1:
            record.event_name = rng.choice(_LOG_EVENTS)
            record.attributes.add(key=rng.choice(("event.name", "gen_ai.event.name"))).value.CopyFrom(
                interesting_any_value(rng)
            )
        elif op == 2:
            record.trace_id = wrong_length_id(rng, 16)
            record.span_id = wrong_length_id(rng, 8)
        elif op == 3:
            record.time_unix_nano = interesting_time(rng)
            record.observed_time_unix_nano = interesting_time(rng)
        elif op == 4:
            record.severity_number = rng.choice((0, 24, 25, INT32_MAX, INT32_MIN))
            record.severity_text = interesting_string(rng)
        else:
            record.attributes.append(interesting_attribute(rng))


def fuzz_metrics(request: Any, rng: random.Random) -> None:
    metrics = [m for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    if not metrics:
        metrics = [request.resource_metrics.add().scope_metrics.add().metrics.add(name="m")]
    for _ in range(rng.choice((1, 2, 4))):
        metric = rng.choice(metrics)
        op = rng.randrange(7)
        if op == 0:
            metric.name, metric.unit = interesting_string(rng), interesting_string(rng)
        elif op == 1:
            point = metric.histogram.data_points.add(count=rng.choice((0, 1, INT64_MAX, UINT64_MAX)))
            point.bucket_counts.extend(rng.choice(([], [UINT64_MAX], [1, 2, 3], [2**63])))
            point.explicit_bounds.extend(rng.choice(([], [NAN], [INF, -INF], [1.0, 0.5])))
            if rng.random() < 0.5:
                point.sum, point.min, point.max = interesting_double(rng), interesting_double(rng), NAN
            point.time_unix_nano = interesting_time(rng)
        elif op == 2:
            which = rng.choice(("sum", "gauge"))
            point = getattr(metric, which).data_points.add(time_unix_nano=interesting_time(rng))
            if rng.random() < 0.5:
                point.as_double = interesting_double(rng)
            else:
                point.as_int = interesting_int(rng)
        elif op == 3:
            point = metric.exponential_histogram.data_points.add(
                count=rng.choice((0, UINT64_MAX)), scale=rng.choice((0, 20, -10, INT32_MAX, INT32_MIN))
            )
            point.positive.offset = rng.choice((0, INT32_MIN, INT32_MAX))
            point.positive.bucket_counts.extend(rng.choice(([], [UINT64_MAX], [1] * 1000)))
            point.sum = interesting_double(rng)
        elif op == 4:
            point = metric.summary.data_points.add(count=rng.choice((0, UINT64_MAX)), sum=interesting_double(rng))
            point.quantile_values.add(quantile=interesting_double(rng), value=interesting_double(rng))
        elif op == 5:
            kind = metric.WhichOneof("data")
            if kind is not None:
                for point in getattr(metric, kind).data_points:
                    point.attributes.append(interesting_attribute(rng))
                    if hasattr(point, "exemplars"):
                        ex = point.exemplars.add(trace_id=wrong_length_id(rng, 16), span_id=rng.randbytes(3))
                        ex.as_double = interesting_double(rng)
        else:
            metric.ClearField(metric.WhichOneof("data") or "name")  # a metric with no data


# -- OTLP/JSON ------------------------------------------------------------------------------------------

_WRONG_TYPES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1.5,
    1e308,
    10**30,
    -(10**30),
    "",
    "x",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "SPAN_KIND_NOPE",
    [],
    [1, "a", None],
    {},
    {"stringValue": 5},
    {"intValue": "99999999999999999999"},
    {"doubleValue": "NaN"},
    {"arrayValue": {"values": "no"}},
    {"kvlistValue": {"values": [{"key": 1}]}},
)


def json_paths(node: Any, limit: int = 5000) -> list[tuple[Any, ...]]:
    """The path (keys and indexes) of every node under `node`, the root's children first (breadth first), so
    every level of the tree is reachable."""
    paths: list[tuple[Any, ...]] = []
    frontier: list[tuple[tuple[Any, ...], Any]] = [((), node)]
    while frontier and len(paths) < limit:
        nxt = []
        for path, item in frontier:
            children = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
            for key, child in children:
                paths.append((*path, key))
                nxt.append(((*path, key), child))
        frontier = nxt
    return paths


def _set(tree: Any, path: tuple[Any, ...], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _get(tree: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def wrong_type_at(tree: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A copy of `tree` with the node at `path` replaced by `value`."""
    out = copy.deepcopy(tree)
    _set(out, path, copy.deepcopy(value))
    return out


def mutate_json_tree(tree: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """One to three structural mutations of an OTLP/JSON tree (in place; returns it)."""
    for _ in range(rng.choice((1, 1, 2, 3))):
        paths = json_paths(tree)
        if not paths:
            return tree
        path = rng.choice(paths)
        op = rng.randrange(8)
        if op == 0:  # a value of a wrong type, at any level
            _set(tree, path, copy.deepcopy(rng.choice(_WRONG_TYPES)))
        elif op == 1:  # ids of every length, hex, base64 or neither
            id_paths = [p for p in paths if p[-1] in ("traceId", "spanId", "parentSpanId", "trace_id", "span_id")]
            if id_paths:
                raw = rng.randbytes(rng.randrange(0, 34))
                _set(
                    tree,
                    rng.choice(id_paths),
                    rng.choice((raw.hex(), base64.b64encode(raw).decode(), "zz" * 16, "", raw.hex().upper())),
                )
        elif op == 2:  # numbers at their limits, as JSON numbers or strings
            num_paths = [p for p in paths if isinstance(_get(tree, p), int | float) or str(p[-1]).endswith("Nano")]
            if num_paths:
                _set(tree, rng.choice(num_paths), rng.choice((UINT64_MAX, UINT64_MAX + 1, -1, "-5", 1e19, "1e3", 0.5)))
        elif op == 3:  # deep nesting (a placeholder: the text is spliced in by dumps, past any encoder's limit)
            _set(tree, path, DEEP_PLACEHOLDER.format(rng.choice((50, 101, 200, 1000, 20_000))))
        elif op == 4:  # a duplicate of a list element / a dropped key
            parent = _get(tree, path[:-1])
            if isinstance(parent, list):
                parent.append(copy.deepcopy(parent[path[-1]]))
            elif isinstance(parent, dict):
                parent.pop(path[-1], None)
        elif op == 5:  # snake_case where lowerCamelCase is expected, or unknown keys
            parent = _get(tree, path[:-1])
            if isinstance(parent, dict) and isinstance(path[-1], str):
                snake = "".join("_" + c.lower() if c.isupper() else c for c in path[-1])
                parent[rng.choice((snake, path[-1] + "X", "unknownField"))] = parent.pop(path[-1])
        elif op == 6:  # attribute values of every kind
            attr_paths = [p for p in paths if p[-1] == "value" and isinstance(_get(tree, p), dict)]
            if attr_paths:
                _set(tree, rng.choice(attr_paths), any_value_json(rng))
        else:  # enums by unknown names or out-of-range numbers
            enum_paths = [p for p in paths if p[-1] in ("kind", "code", "severityNumber", "aggregationTemporality")]
            if enum_paths:
                _set(tree, rng.choice(enum_paths), rng.choice(("SPAN_KIND_NOPE", 2**31, -(2**31) - 1, 99, "2")))
    return tree


DEEP_PLACEHOLDER = "__callscope_fuzz_deep_{}__"
_DEEP = re.compile(rb'"__callscope_fuzz_deep_(\d+)__"')


def nested_json_value(depth: int) -> bytes:
    """An OTLP/JSON AnyValue nested `depth` arrays deep, as text."""
    return b'{"arrayValue":{"values":[' * depth + b'{"stringValue":"leaf"}' + b"]}}" * depth


def splice_deep_values(text: bytes) -> bytes:
    """Replace the placeholders mutate_json_tree leaves for deep nesting by the nested text."""
    return _DEEP.sub(lambda m: nested_json_value(int(m.group(1))), text)


def any_value_json(rng: random.Random) -> dict[str, Any]:
    """An AnyValue in OTLP/JSON with an edge value, including the forms only JSON can carry (NaN as text,
    64-bit integers as strings, bytes as base64)."""
    return rng.choice(
        (
            {"stringValue": interesting_string(rng)},
            {"intValue": str(interesting_int(rng))},
            {"intValue": interesting_int(rng)},
            {"intValue": "18446744073709551616"},
            {"doubleValue": rng.choice(("NaN", "Infinity", "-Infinity", 1e308, "1.5"))},
            {"boolValue": rng.choice((True, "true", 1))},
            {"bytesValue": rng.choice(("AAEC", "not base64!", ""))},
            {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}, {}]}},
            {"kvlistValue": {"values": [{"key": "message", "value": {"stringValue": "x"}}]}},
            {},
        )
    )


def mutate_json_text(text: bytes, rng: random.Random) -> bytes:
    """A textual mutation JSON trees cannot express: invalid UTF-8, lone surrogates, NaN literals, duplicate
    keys, a byte-order mark, nesting deeper than any parser allows, or plain byte damage."""
    op = rng.randrange(8)
    quotes = [i for i, b in enumerate(text) if b == 0x22]
    if op == 0 and quotes:  # invalid UTF-8 inside a string
        i = rng.choice(quotes) + 1
        return text[:i] + rng.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80\x80")) + text[i:]
    if op == 1 and quotes:  # an escaped lone surrogate
        i = rng.choice(quotes) + 1
        return text[:i] + rng.choice((b"\\ud800", b"\\udfff", b"\\u0000")) + text[i:]
    if op == 2:  # NaN / Infinity literals where numbers are
        return text.replace(b'"1', b'NaN, "1', 1) if rng.random() < 0.5 else text.replace(b": 0", b": Infinity")
    if op == 3:  # a duplicate key
        return text.replace(b'{"', b'{"resourceSpans": 5, "', 1)
    if op == 4:
        return b"\xef\xbb\xbf" + text  # a byte-order mark
    if op == 5:
        depth = rng.choice((1000, 100_000))
        return b"[" * depth + b"]" * depth
    if op == 6:
        return text.replace(b"{", b"{" * rng.choice((300, 5000)), 1)
    return mutate_bytes(text, rng)


# -- compression ---------------------------------------------------------------------------------------

CODINGS = ("gzip", "deflate", "zstd")


def compress(data: bytes, coding: str, pieces: int = 1) -> bytes:
    """`data` compressed; with pieces > 1, as that many concatenated gzip members / zlib streams / zstd frames
    (valid for gzip and zstd, whose readers must read them all)."""
    if pieces > 1:
        step = -(-len(data) // pieces) or 1
        return b"".join(compress(data[i : i + step], coding) for i in range(0, max(len(data), 1), step))
    if coding == "gzip":
        return gzip.compress(data, compresslevel=1, mtime=0)  # mtime=0: the same bytes every run
    if coding == "deflate":
        return zlib.compress(data, 1)
    return zstandard.ZstdCompressor(level=1).compress(data)


def bad_compression(data: bytes, rng: random.Random) -> tuple[bytes, str, frozenset[int]]:
    """(body, Content-Encoding, the statuses that are right) for a body whose compression is wrong."""
    coding = rng.choice(CODINGS)
    op = rng.randrange(6)
    if op == 0:  # declared but not compressed
        # raw deflate has no header: some plain bytes are a valid raw deflate stream
        return data, coding, frozenset({400} if coding != "deflate" else {200, 400, 413})
    if op == 1:  # truncated
        packed = compress(data, coding)
        return packed[: rng.randrange(max(1, len(packed) - 1))], coding, frozenset({400})
    if op == 2:  # damaged inside
        packed = bytearray(compress(data, coding))
        for _ in range(4):
            packed[rng.randrange(len(packed))] ^= 0xFF
        return bytes(packed), coding, frozenset({200, 400, 413})  # a damaged stream may still inflate
    if op == 3:  # a valid header and then garbage
        magic = {
            "gzip": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03",
            "deflate": b"\x78\x9c",
            "zstd": b"\x28\xb5\x2f\xfd",
        }
        return magic[coding] + rng.randbytes(rng.choice((0, 5, 100))), coding, frozenset({400})
    if op == 4:  # an encoding nobody supports, or a list of them
        name = rng.choice(("br", "compress", "x-snappy", "gzip, br", "*", "identity, lz4", "gzip;q=1"))
        return data, name, frozenset({415})
    # compressed twice but declared once: inflates to compressed bytes, which do not decode
    return compress(compress(data, coding), coding), coding, frozenset({400})
