"""Regressions found by the fuzzer (bench/fuzz.py), each on the minimal body that shows it.

Before their fixes, each of these bodies was answered 503 "could not commit" (an exception inside the
collector, which a client retries for ever), or acknowledged with data silently dropped. Now each is
answered 200 and stored, with the value that cannot be stored as NULL, or refused with a 400 naming why.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import duckdb
import pytest
import zstandard
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collector.attributes import to_int
from collector.decode import DecodeFailure, decompress
from tests.helpers import ServerProcess, post_otlp

UINT64_MAX = 2**64 - 1
START = 1_760_000_000_000_000_000


def _trace_request(*spans: dict) -> ExportTraceServiceRequest:
    """A request of spans given as {"id": n, "kind": k, "attrs": {key: value}}."""
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for s in spans:
        span = scope.spans.add(
            trace_id=bytes([s["id"]]) * 16,
            span_id=bytes([s["id"]]) * 8,
            name="span",
            kind=s.get("kind", 3),
            start_time_unix_nano=START,
            end_time_unix_nano=START + 1_000_000,
        )
        if s.get("error"):
            span.status.code = 2
        for key, value in s.get("attrs", {}).items():
            kv = span.attributes.add(key=key)
            if isinstance(value, str):
                kv.value.string_value = value
            else:
                kv.value.int_value = value
    return request


def _post_ok(server: ServerProcess, body: bytes, signal: str = "traces", **headers: str) -> None:
    response = post_otlp(server.http_url, body, signal_name=signal, headers=headers)
    assert response.status_code == 200, response.content
    if signal == "traces":
        assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")


@pytest.fixture
def capture_server(tmp_path: Path):
    proc = ServerProcess(tmp_path / "data", env={"CALLSCOPE_CAPTURE_CONTENT": "true"}).start()
    yield proc
    if proc.proc and proc.proc.poll() is None:
        proc.stop()


def test_fuzzer_findings_are_stored_not_failed(capture_server):
    server = capture_server
    # 1. A token count written as "1e400": a float, but an infinite one (to_int raised OverflowError).
    _post_ok(
        server,
        _trace_request(
            {
                "id": 1,
                "attrs": {
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": "1e400",
                    "gen_ai.usage.output_tokens": 5,
                },
            }
        ).SerializeToString(),
    )
    # 2. An "HTTP status" past int32 (the http_status column is INTEGER; Arrow refused the whole request).
    _post_ok(
        server,
        _trace_request(
            {"id": 2, "error": True, "attrs": {"gen_ai.request.model": "gpt-4o", "http.response.status_code": 2**31}},
            {"id": 3, "error": True, "attrs": {"gen_ai.request.model": "gpt-4o", "http.response.status_code": 429}},
        ).SerializeToString(),
    )
    # 3. A span kind outside the enum (open in proto3: any int32; the column is TINYINT).
    _post_ok(server, _trace_request({"id": 4, "kind": 200}).SerializeToString())
    # 4. Histogram counts past 2^63-1 (uint64 in OTLP, BIGINT in the store).
    metrics = ExportMetricsServiceRequest()
    metric = metrics.resource_metrics.add().scope_metrics.add().metrics.add(name="fuzz.histogram")
    metric.histogram.data_points.add(count=UINT64_MAX, time_unix_nano=START, bucket_counts=[UINT64_MAX])
    metric.histogram.data_points.add(count=3, time_unix_nano=START + 1, bucket_counts=[1, 2])
    _post_ok(server, metrics.SerializeToString(), "metrics")
    # 5. A gen_ai.choice event whose "message" is not an object (content capture on).
    logs = ExportLogsServiceRequest()
    record = logs.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=START, event_name="gen_ai.choice")
    record.body.kvlist_value.values.add(key="message").value.bool_value = True
    _post_ok(server, logs.SerializeToString(), "logs")
    # 6. Concatenated gzip members and zstd frames (both valid): every one is read, not just the first.
    body = _trace_request(*({"id": n, "attrs": {"gen_ai.request.model": "gpt-4o"}} for n in (5, 6))).SerializeToString()
    half = len(body) // 2
    _post_ok(server, gzip.compress(body[:half]) + gzip.compress(body[half:]), **{"content-encoding": "gzip"})
    body = _trace_request(*({"id": n, "attrs": {"gen_ai.request.model": "gpt-4o"}} for n in (7, 8))).SerializeToString()
    zstd = zstandard.ZstdCompressor()
    _post_ok(server, zstd.compress(body[:half]) + zstd.compress(body[half:]), **{"content-encoding": "zstd"})
    # 7. A truncated zstd frame: 400 with the reason (it was read as an empty body and acknowledged).
    cut = zstd.compress(_trace_request({"id": 9, "attrs": {"gen_ai.request.model": "gpt-4o"}}).SerializeToString())
    response = post_otlp(server.http_url, cut[:-4], headers={"content-encoding": "zstd"})
    assert response.status_code == 400
    assert "truncated" in status_pb2.Status.FromString(response.content).message
    assert server.stop() == 0
    assert "Traceback" not in server.log()

    db = duckdb.connect(str(server.data_dir / "callscope.duckdb"), read_only=True)
    calls = {
        row[0][0]: row[1:]
        for row in db.execute("SELECT trace_id, input_tokens, output_tokens, http_status FROM calls").fetchall()
    }
    assert calls[1] == (None, 5, None)
    assert calls[2][2] is None and calls[3][2] == 429
    assert {5, 6, 7, 8} <= calls.keys() and 9 not in calls
    assert db.execute("SELECT kind FROM spans WHERE trace_id = ?", [bytes([4]) * 16]).fetchall() == [(0,)]
    points = db.execute("SELECT count, bucket_counts FROM metric_points ORDER BY time").fetchall()
    assert points == [(None, None), (3, [1, 2])]
    assert db.execute("SELECT role, content FROM content_events").fetchall() == [("choice", '{"message":true}')]


@pytest.mark.parametrize(("text", "expected"), [("1e400", None), ("-1e400", None), ("1e3", 1000), ("12", 12)])
def test_token_counts_written_as_huge_floats_are_ignored(text, expected):
    assert to_int(text) == expected


def test_truncated_or_trailing_zstd_is_refused_and_frames_are_all_read():
    zstd = zstandard.ZstdCompressor()
    frame = zstd.compress(b"a" * 1000)
    assert decompress(frame + zstd.compress(b"b" * 10), "zstd", 10_000) == b"a" * 1000 + b"b" * 10
    for bad in (frame[:-1], frame[:4], b"", frame + b"junk"):
        with pytest.raises(DecodeFailure) as err:
            decompress(bad, "zstd", 10_000)
        assert err.value.status == 400
    with pytest.raises(DecodeFailure) as err:  # the limit counts every frame
        decompress(frame + frame, "zstd", 1500)
    assert err.value.status == 413


def test_gzip_members_are_all_read_within_the_limit():
    assert decompress(gzip.compress(b"ab") + gzip.compress(b"cd"), "gzip", 100) == b"abcd"
    with pytest.raises(DecodeFailure) as err:
        decompress(gzip.compress(b"a" * 60) + gzip.compress(b"b" * 60), "gzip", 100)
    assert err.value.status == 413
    with pytest.raises(DecodeFailure) as err:
        decompress(gzip.compress(b"ab") + b"junk", "gzip", 100)
    assert err.value.status == 400
