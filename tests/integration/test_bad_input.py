"""Bad input gets a clear 4xx (google.rpc.Status with the reason) or partial success naming what was
rejected; the good spans of the same request are stored; the server stays up."""

from __future__ import annotations

import gzip

import httpx
import orjson
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.helpers import export_rows, post_otlp


def _span_json(i: int, **over) -> dict:
    span = {
        "traceId": f"{i + 1:032x}",
        "spanId": f"{i + 1:016x}",
        "name": "chat gpt-4o",
        "kind": 3,
        "startTimeUnixNano": str(1_731_000_000_000_000_000 + i * 1_000_000),
        "endTimeUnixNano": str(1_731_000_000_500_000_000 + i * 1_000_000),
        "attributes": [
            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "10"}},
        ],
    }
    span.update(over)
    return span


def _request(spans: list[dict]) -> bytes:
    return orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})


def test_malformed_bodies_get_400_with_reason(server):
    good = ExportTraceServiceRequest()
    good.resource_spans.add().scope_spans.add().spans.add(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="x", start_time_unix_nano=1
    )
    raw = good.SerializeToString()
    cases = [
        (raw[:-3], "application/x-protobuf"),  # truncated protobuf
        (b"\xff\xfe garbage \x00\x01\x02" * 10, "application/x-protobuf"),
        (b"{not json", "application/json"),
        (b'["an array"]', "application/json"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5, "kind": "NOPE"}]}]}]}', "application/json"),
        (b'{"resourceSpans": "\xff\xfe"}', "application/json"),  # invalid UTF-8
    ]
    for body, ctype in cases:
        response = post_otlp(server.http_url, body, ctype)
        assert response.status_code == 400, (body[:40], response.text)
        if ctype == "application/json":
            status = response.json()
        else:
            status = status_pb2.Status.FromString(response.content)
            status = {"code": status.code, "message": status.message}
        assert status["code"] == 3 and status["message"], status  # INVALID_ARGUMENT with a reason
    assert httpx.get(server.http_url + "/healthz").status_code == 200


def test_status_codes_at_the_edge(server):
    url = server.http_url + "/v1/traces"
    assert httpx.get(url).status_code == 405
    assert httpx.put(url, content=b"").status_code == 405
    assert httpx.post(url, content=b"{}", headers={"content-type": "text/plain"}).status_code == 415
    r = httpx.post(url, content=b"{}", headers={"content-type": "application/json", "content-encoding": "br"})
    assert r.status_code == 415 and "br" in r.json()["message"]
    r = httpx.post(url, content=b"not gzip", headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert r.status_code == 400
    # a gzip bomb: small on the wire, over the 20 MiB limit once inflated
    bomb = gzip.compress(b"\x00" * (21 * 1024 * 1024))
    r = httpx.post(url, content=bomb, headers={"content-type": "application/x-protobuf", "content-encoding": "gzip"})
    assert r.status_code == 413
    assert httpx.post(url, content=b"{}", headers={"content-type": "application/json"}).status_code == 200


def test_mixed_batch_keeps_the_good_spans(server):
    spans = [
        _span_json(0),
        _span_json(1, traceId="zz-not-hex"),  # bad id
        _span_json(2, spanId=""),  # missing span id
        _span_json(3, traceId="00000000000000000000000000000000"),  # all-zero id
        _span_json(
            4,
            attributes=[  # wrong attribute types: lenient, the call is kept
                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                {"key": "gen_ai.usage.input_tokens", "value": {"stringValue": "not a number"}},
                {"key": "gen_ai.usage.output_tokens", "value": {"doubleValue": -5}},
                {"key": "gen_ai.request.stream", "value": {"intValue": "1"}},
            ],
        ),
        _span_json(
            5,
            attributes=[  # huge values are cut, not refused
                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                {"key": "user.id", "value": {"stringValue": "u" * 1_000_000}},
            ],
        ),
        _span_json(6, startTimeUnixNano="0"),  # no start time
        _span_json(7),
    ]
    response = post_otlp(server.http_url, _request(spans), "application/json")
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "4"
    assert "trace_id" in partial["errorMessage"] and "span_id" in partial["errorMessage"]
    assert "start_time" in partial["errorMessage"]

    # the same over protobuf: partial success in the protobuf response
    req = ExportTraceServiceRequest()
    spans_pb = req.resource_spans.add().scope_spans.add().spans
    spans_pb.add(
        trace_id=b"\x09" * 16,
        span_id=b"\x09" * 8,
        name="ok",
        start_time_unix_nano=10**18,
        end_time_unix_nano=10**18 + 5,
    )
    spans_pb.add(trace_id=b"\x09" * 3, span_id=b"\x09" * 8, name="bad", start_time_unix_nano=10**18)
    response = post_otlp(server.http_url, req.SerializeToString())
    assert response.status_code == 200
    assert ExportTraceServiceResponse.FromString(response.content).partial_success.rejected_spans == 1

    assert server.stop() == 0
    rows = {r["span_id"]: r for r in export_rows(server.data_dir)}
    assert set(rows) == {f"{i + 1:016x}" for i in (0, 4, 5, 7)}
    lenient = rows[f"{5:016x}"]
    assert lenient["input_tokens"] is None and lenient["output_tokens"] is None and lenient["streaming"] is True
    assert len(rows[f"{6:016x}"]["user_id"]) == 65_536


def test_a_resent_batch_is_stored_once(server):
    body = _request([_span_json(i) for i in range(50)])
    for _ in range(3):
        assert post_otlp(server.http_url, body, "application/json").status_code == 200
    assert server.stop() == 0
    rows = export_rows(server.data_dir)
    assert len(rows) == 50
    assert len({r["span_id"] for r in rows}) == 50
