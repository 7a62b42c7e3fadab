"""Property-based tests of the decoders: any bytes either decode or raise DecodeFailure (never anything
else), and OTLP/JSON round-trips to the same message as protobuf.

The fuzz cases of bench/fuzzing (mutations of real captured bodies) run here in-process under hypothesis,
through the collector's Preparer and its real writer into a DuckDB file: hypothesis drives the Random the
mutators draw from, so a failing body shrinks. tests/test_fuzz_server.py sends the same cases to a server."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.fuzzing import mutators
from bench.fuzzing.cases import OVERLOAD, Case, Seeds, dumps, make_case
from collector.decode import DecodeFailure, Encoding, Signal, content_encoding_of, decode_request, decompress
from collector.normalize import ContentOptions, SpanNormalizer
from collector.prepare import Preparer
from collector.pricing import Pricer
from collector.selfmetrics import CollectorStats
from collector.writer import WriteJob, Writer
from core.store import connect

_NORMALIZER = SpanNormalizer(Pricer())
_CONTENT = ContentOptions(capture=True)
_PREPARER = Preparer(SpanNormalizer(Pricer(), _CONTENT), _CONTENT, 20 * 1024 * 1024)
SEEDS = Seeds.load()

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


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Writer, object]]:
    """The collector's real writer on a DuckDB file, and a cursor to read back what it committed."""
    db = connect(Path(tmp_path_factory.mktemp("fuzz")) / "callscope.duckdb")
    writer = Writer(
        db, CollectorStats(), queue_max_rows=10**6, batch_max_rows=10**5, batch_max_wait_s=0.001, retry_after_s=1
    )
    writer.start()
    yield writer, db.cursor()
    writer.close()
    db.close()


def _prepare_and_commit(case: Case, writer: Writer, cursor) -> None:
    """What the receivers do with a body, minus the sockets; asserts the answer the case allows."""
    try:
        encoding = content_encoding_of(case.content_type)
    except DecodeFailure as exc:
        assert exc.status in case.expected, (case.generator, exc)
        return
    prepared = _PREPARER.prepare_raw(case.signal, encoding, case.content_encoding, case.body, "default")
    if prepared.failure is not None:
        status, reason = prepared.failure
        assert status in case.expected - OVERLOAD and reason, (case.generator, status, reason)
        return
    assert 200 in case.expected, (case.generator, "decoded, but expected", case.expected)
    job = WriteJob(calls=prepared.calls, spans=prepared.spans, content=prepared.content, metrics=prepared.metrics)
    writer.submit(job).result(timeout=30)  # a commit that fails raises here
    if case.rejected is not None:
        assert prepared.rejected == case.rejected, prepared.message
        for trace_id, span_id in case.good_ids:
            n = cursor.execute(
                "SELECT count(*) FROM calls WHERE trace_id = ? AND span_id = ?", [trace_id, span_id]
            ).fetchone()[0]
            assert n == 1, (trace_id.hex(), span_id.hex())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rng=st.randoms(use_true_random=False), transport=st.sampled_from(["http", "grpc"]))
def test_fuzz_cases_prepare_and_commit(store, rng, transport):
    writer, cursor = store
    _prepare_and_commit(make_case(SEEDS, rng, transport), writer, cursor)


def test_a_wrong_type_at_every_level_of_a_json_request_is_a_clean_400_or_decodes(store):
    """Nodes of a real OTLP/JSON body at every level (three per level) replaced by every wrong type: a 400
    naming the problem, or a request that normalises and commits."""
    writer, _ = store
    tree = next(t for t in SEEDS.json[Signal.TRACES] if len(orjson.dumps(t)) < 9000)
    by_depth: dict[int, list[tuple]] = {}
    for path in mutators.json_paths(tree):
        by_depth.setdefault(len(path), []).append(path)
    assert len(by_depth) >= 8  # resourceSpans > 0 > scopeSpans > 0 > spans > 0 > attributes > 0 > value ...
    pick = random.Random(0)
    outcomes = {"400": 0, "200": 0}
    futures = []
    for paths in by_depth.values():
        for path, value in itertools.product(pick.sample(paths, min(3, len(paths))), mutators._WRONG_TYPES):
            body = dumps(mutators.wrong_type_at(tree, path, value))
            prepared = _PREPARER.prepare_raw(Signal.TRACES, Encoding.JSON, None, body, "default")
            if prepared.failure is not None:
                assert prepared.failure[0] == 400 and prepared.failure[1], prepared.failure
                outcomes["400"] += 1
            else:
                job = WriteJob(calls=prepared.calls, spans=prepared.spans, content=prepared.content)
                futures.append(writer.submit(job))
                outcomes["200"] += 1
    for future in futures:
        future.result(timeout=60)
    assert outcomes["400"] > 50 and outcomes["200"] > 50, outcomes  # both kinds of answer are exercised
