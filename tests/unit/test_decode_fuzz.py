"""Property-based tests of the decoders: any bytes either decode or raise DecodeFailure (never anything
else), and OTLP/JSON round-trips to the same message as protobuf."""

from __future__ import annotations

import orjson
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.decode import DecodeFailure, Encoding, Signal, decode_request, decompress
from collector.normalize import SpanNormalizer
from collector.pricing import Pricer

_NORMALIZER = SpanNormalizer(Pricer())

_values = st.one_of(
    st.text(max_size=50).map(lambda s: {"stringValue": s}),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(lambda i: {"intValue": str(i)}),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: {"doubleValue": f}),
    st.booleans().map(lambda b: {"boolValue": b}),
)
_keys = st.sampled_from(
    [
        "gen_ai.request.model",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.provider.name",
        "gen_ai.request.stream",
        "llm.token_count.prompt",
        "user.id",
        "error.type",
        "gen_ai.operation.name",
        "openinference.span.kind",
        "langfuse.observation.usage_details",
        "tag.tags",
        "random.key",
    ]
)
_span = st.fixed_dictionaries(
    {
        "traceId": st.binary(min_size=16, max_size=16).map(bytes.hex),
        "spanId": st.binary(min_size=8, max_size=8).map(bytes.hex),
        "name": st.text(max_size=20),
        "kind": st.integers(0, 5),
        "startTimeUnixNano": st.integers(0, 2**63 - 1).map(str),
        "endTimeUnixNano": st.integers(0, 2**63 - 1).map(str),
        "attributes": st.lists(st.fixed_dictionaries({"key": _keys, "value": _values}), max_size=12),
    }
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_any_bytes_decode_or_fail_cleanly(data):
    for encoding in Encoding:
        try:
            message = decode_request(Signal.TRACES, encoding, data)
        except DecodeFailure as exc:
            assert exc.status == 400
        else:
            _NORMALIZER.normalize(message, "default", 0)  # whatever decodes must normalise without raising


@settings(max_examples=100)
@given(st.binary(max_size=500), st.sampled_from(["gzip", "deflate", "zstd", "identity"]))
def test_any_compressed_garbage_fails_cleanly(data, coding):
    try:
        decompress(data, coding, 1 << 20)
    except DecodeFailure as exc:
        assert exc.status in (400, 413)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_span, min_size=1, max_size=5))
def test_json_and_protobuf_decode_to_the_same_message(spans):
    body = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
    from_json = decode_request(Signal.TRACES, Encoding.JSON, orjson.dumps(body))
    from_pb = decode_request(Signal.TRACES, Encoding.PROTOBUF, from_json.SerializeToString())
    assert from_json == from_pb
    assert [s.trace_id.hex() for s in from_pb.resource_spans[0].scope_spans[0].spans] == [s["traceId"] for s in spans]
    out = _NORMALIZER.normalize(from_pb, "default", 0)
    assert len(out.calls) + len(out.spans) + out.rejected == len(spans)


def test_protobuf_json_mapping_round_trip():
    req = ExportTraceServiceRequest()
    span = (
        req.resource_spans.add()
        .scope_spans.add()
        .spans.add(trace_id=bytes(range(16)), span_id=bytes(range(8)), name="n")
    )
    span.attributes.add(key="k").value.int_value = 2**62
    as_json = json_format.MessageToDict(req)
    as_json["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = bytes(range(16)).hex()
    as_json["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = bytes(range(8)).hex()
    assert decode_request(Signal.TRACES, Encoding.JSON, orjson.dumps(as_json)) == req
