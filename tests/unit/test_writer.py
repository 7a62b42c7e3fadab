"""The single writer on a real DuckDB file: re-sent rows are stored once, whichever insert path stores them; an
aggregate call is demoted to the same span row, whichever path demotes it."""

from __future__ import annotations

import json

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.aggregates import AggregateTracker
from collector.decode import Encoding, Signal
from collector.normalize import ContentOptions, SpanNormalizer
from collector.prepare import Preparer
from collector.pricing import Pricer
from collector.selfmetrics import CollectorStats
from collector.writer import WriteJob, Writer
from core.store import connect
from tests.load import genai_request


def _job(preparer: Preparer, body: bytes) -> WriteJob:
    prepared = preparer.prepare_raw(Signal.TRACES, Encoding.PROTOBUF, None, body, "default")
    return WriteJob(calls=prepared.calls, spans=prepared.spans)


def _commit(writer: Writer, job: WriteJob) -> None:
    writer.submit(job).result(timeout=30)


def test_resent_rows_are_stored_once_by_either_insert_path(tmp_path):
    db = connect(tmp_path / "s.duckdb")
    stats = CollectorStats()
    # Remember only 10 recent calls, so an older re-send is found in the store, not by the memory.
    writer = Writer(
        db,
        stats,
        queue_max_rows=100_000,
        batch_max_rows=50_000,
        batch_max_wait_s=0.001,
        retry_after_s=1,
        aggregates=AggregateTracker(memory=10),
    )
    writer.start()
    preparer = Preparer(SpanNormalizer(Pricer()), ContentOptions(), 20 * 2**20)
    first, _ = genai_request(1, 100)
    second, _ = genai_request(2, 100)
    try:
        _commit(writer, _job(preparer, first))
        _commit(writer, _job(preparer, second))
        _commit(writer, _job(preparer, second))  # its last calls are remembered: straight to OR IGNORE
        assert stats.get("callscope_calls_deduplicated_total") == 100
        _commit(writer, _job(preparer, first))  # older than the memory: found by the lookup in `calls` (m014)
        assert stats.get("callscope_calls_deduplicated_total") == 200
        assert stats.get("callscope_commit_conflicts_total") == 0
        fresh, _ = genai_request(3, 50)
        _commit(writer, _job(preparer, fresh))
    finally:
        writer.close()
    assert db.execute("SELECT count(*), count(DISTINCT span_id) FROM calls").fetchone() == (250, 250)
    db.close()


def test_a_rejected_transaction_rolls_back_and_the_next_one_commits(tmp_path):
    db = connect(tmp_path / "s.duckdb")
    writer = Writer(
        db, CollectorStats(), queue_max_rows=100_000, batch_max_rows=50_000, batch_max_wait_s=0.001, retry_after_s=1
    )
    writer.start()
    preparer = Preparer(SpanNormalizer(Pricer()), ContentOptions(), 20 * 2**20)
    try:
        job = _job(preparer, genai_request(4, 10)[0])
        bad = job.calls.set_column(job.calls.schema.get_field_index("pricing"), "pricing", [[None] * 10])
        future = writer.submit(WriteJob(calls=bad))  # NOT NULL violated: fails on both insert paths
        try:
            future.result(timeout=30)
            raise AssertionError("a NOT NULL violation must fail the request")
        except Exception as exc:
            assert "NOT NULL" in str(exc) or "constraint" in str(exc).lower()
        _commit(writer, _job(preparer, genai_request(5, 10)[0]))
    finally:
        writer.close()
    assert db.execute("SELECT count(*) FROM calls").fetchone() == (10,)
    db.close()


def _pair_request(trace_id: bytes, parent_id: bytes, child_id: bytes, which: str) -> bytes:
    """A framework call span (parent) over the provider call span (child) of one model call; `which` of them."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "agent"
    ss = rs.scope_spans.add()
    base = 1_760_000_000_000_000_000
    spans = {
        "parent": (parent_id, b"", "framework chat", base, base + 900_000_000, "claude-sonnet-4-5", "anthropic"),
        "child": (child_id, parent_id, "chat claude-sonnet-4-5", base + 1000, base + 800_000_000, None, None),
    }
    for name in ("parent", "child") if which == "both" else (which,):
        span_id, parent, span_name, start, end, model, provider = spans[name]
        span = ss.spans.add(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent,
            name=span_name,
            kind=3,
            start_time_unix_nano=start,
            end_time_unix_nano=end,
        )
        attrs = span.attributes
        attrs.add(key="gen_ai.operation.name").value.string_value = "chat"
        attrs.add(key="gen_ai.request.model").value.string_value = model or "claude-sonnet-4-5-20250929"
        if provider:
            attrs.add(key="gen_ai.provider.name").value.string_value = provider
        attrs.add(key="gen_ai.response.model").value.string_value = "claude-sonnet-4-5-20250929"
        attrs.add(key="gen_ai.usage.input_tokens").value.int_value = 1200
        attrs.add(key="gen_ai.usage.output_tokens").value.int_value = 80
        attrs.add(key="gen_ai.usage.cache_read.input_tokens").value.int_value = 1000
        attrs.add(key="gen_ai.usage.reasoning.output_tokens").value.int_value = 30
    return req.SerializeToString()


def test_a_demoted_call_is_the_same_span_whichever_path_demotes_it(tmp_path):
    """The parent call of a pair is an aggregate. It is demoted by the normaliser (both in one request), by the
    writer inside a transaction (the child was stored before), or by moving the stored parent (the parent was
    stored before its child arrived): the span row is the same every time, call_as_span's, with every figure."""
    trace_id, parent_id, child_id = bytes(range(1, 17)), b"\x0a" * 8, b"\x0b" * 8
    orders = {
        "one request": ["both"],
        "child first": ["child", "parent"],
        "parent first": ["parent", "child"],
    }
    preparer = Preparer(SpanNormalizer(Pricer()), ContentOptions(), 20 * 2**20)
    demoted = {}
    for label, requests in orders.items():
        db = connect(tmp_path / f"{label}.duckdb")
        writer = Writer(
            db, CollectorStats(), queue_max_rows=1000, batch_max_rows=1000, batch_max_wait_s=0.001, retry_after_s=1
        )
        writer.start()
        try:
            for which in requests:  # one commit each: the second request meets the first in the store
                _commit(writer, _job(preparer, _pair_request(trace_id, parent_id, child_id, which)))
        finally:
            writer.close()
        calls = db.execute("SELECT span_id, provider, input_tokens, cache_read_tokens FROM calls").fetchall()
        assert calls == [(child_id, "anthropic", 1200, 1000)], label  # the child is the call, counted once
        row = db.execute(
            "SELECT trace_id, span_id, parent_span_id, project, service, name, kind, start_time, end_time,"
            " duration_ms, status, status_message, attributes FROM spans"
        ).fetchall()
        assert len(row) == 1, label
        demoted[label] = row[0]
        db.close()
    assert demoted["child first"] == demoted["one request"]
    assert demoted["parent first"] == demoted["one request"]
    attributes = json.loads(demoted["one request"][-1])
    assert attributes == {
        "provider": "anthropic",
        "operation": "chat",
        "request_model": "claude-sonnet-4-5",
        "response_model": "claude-sonnet-4-5-20250929",
        "input_tokens": 1200,
        "output_tokens": 80,
        "cache_read_tokens": 1000,
        "reasoning_tokens": 30,
        "convention": "otel_genai",
        "callscope.aggregate": True,
    }
    assert demoted["one request"][:3] == (trace_id, parent_id, None)
    assert demoted["one request"][5] == "framework chat"


def test_a_resend_mixed_with_new_calls_stores_the_new_ones(tmp_path):
    """The OR IGNORE path (a remembered re-send) inserts into `calls` plainly: it has no key since m014, and the
    writer's own lookup has taken the stored calls out."""
    import pyarrow as pa

    db = connect(tmp_path / "s.duckdb")
    stats = CollectorStats()
    writer = Writer(db, stats, queue_max_rows=100_000, batch_max_rows=50_000, batch_max_wait_s=0.001, retry_after_s=1)
    writer.start()
    preparer = Preparer(SpanNormalizer(Pricer()), ContentOptions(), 20 * 2**20)
    old, new = _job(preparer, genai_request(5, 30)[0]), _job(preparer, genai_request(6, 20)[0])
    try:
        _commit(writer, old)
        _commit(writer, WriteJob(calls=pa.concat_tables([old.calls, new.calls])))
    finally:
        writer.close()
    assert db.execute("SELECT count(*), count(DISTINCT (trace_id, span_id))FROM calls").fetchone() == (50, 50)
    assert stats.get("callscope_calls_deduplicated_total") == 30
    db.close()


def test_a_resent_span_with_other_times_is_stored_once(tmp_path):
    """A span is (trace, span): sent again with another start time (a client bug, or a fuzzer), it is still the
    span stored first; only the first is kept."""
    db = connect(tmp_path / "s.duckdb")
    stats = CollectorStats()
    writer = Writer(db, stats, queue_max_rows=100_000, batch_max_rows=50_000, batch_max_wait_s=0.001, retry_after_s=1)
    writer.start()
    preparer = Preparer(SpanNormalizer(Pricer()), ContentOptions(), 20 * 2**20)
    body, _ = genai_request(4, 20)
    moved = ExportTraceServiceRequest.FromString(body)
    for resource in moved.resource_spans:
        for scope in resource.scope_spans:
            for span in scope.spans:
                span.start_time_unix_nano -= 3_600 * 10**9
                span.end_time_unix_nano -= 3_600 * 10**9
    try:
        _commit(writer, _job(preparer, body))
        _commit(writer, _job(preparer, moved.SerializeToString()))
    finally:
        writer.close()
    assert stats.get("callscope_calls_deduplicated_total") == 20
    stored = db.execute("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM calls").fetchone()
    db.close()
    assert stored == (20, 20)
