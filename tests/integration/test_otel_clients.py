"""The real OpenTelemetry SDK exporters (HTTP protobuf and gRPC) and a raw OTLP/JSON post deliver spans
that come out of `callscope export` with the right values."""

from __future__ import annotations

import time

import orjson
import pytest
from genai_prices import Usage, calc_price
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.helpers import export_rows, post_otlp


def _emit_calls(exporter, n: int = 20) -> list[dict]:
    """Emit n chat spans under an agent span through the real SDK; return what was sent, per call."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": "sdk-client", "deployment.environment.name": "prod"})
    )
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=8))
    tracer = provider.get_tracer("test.genai")
    sent = []
    with tracer.start_as_current_span(
        "invoke_agent support", kind=SpanKind.INTERNAL, attributes={"gen_ai.operation.name": "invoke_agent"}
    ):
        for i in range(n):
            model = ["gpt-4o-mini", "gpt-4.1", "claude-sonnet-4-5"][i % 3]
            provider_name = "anthropic" if model.startswith("claude") else "openai"
            inp, out, cached = 100 + i, 10 + i, (i % 4) * 8
            failed = i % 7 == 6
            attrs = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": provider_name,
                "gen_ai.request.model": model,
                "user.id": f"user-{i % 3}",
                "session.id": "s-1",
                "gen_ai.request.stream": i % 2 == 0,
            }
            if not failed:
                attrs.update(
                    {
                        "gen_ai.response.model": model,
                        "gen_ai.usage.input_tokens": inp,
                        "gen_ai.usage.output_tokens": out,
                        "gen_ai.usage.cache_read.input_tokens": cached,
                        "gen_ai.response.finish_reasons": ["stop"],
                        "gen_ai.response.time_to_first_chunk": 0.123,
                    }
                )
            with tracer.start_as_current_span(f"chat {model}", kind=SpanKind.CLIENT, attributes=attrs) as span:
                if failed:
                    span.set_attribute("error.type", "RateLimitError")
                    span.set_attribute("http.response.status_code", 429)
                    span.set_status(Status(StatusCode.ERROR, "Error code: 429"))
                time.sleep(0.002)
            ctx = span.get_span_context()
            sent.append(
                {
                    "trace_id": f"{ctx.trace_id:032x}",
                    "span_id": f"{ctx.span_id:016x}",
                    "model": model,
                    "provider": provider_name,
                    "input": inp,
                    "output": out,
                    "cached": cached,
                    "failed": failed,
                    "streaming": i % 2 == 0,
                    "user": f"user-{i % 3}",
                }
            )
    assert provider.force_flush(30_000)
    provider.shutdown()
    return sent


def _check(rows: list[dict], sent: list[dict]) -> None:
    by_id = {r["span_id"]: r for r in rows}
    assert len(rows) == len(sent), "the agent span is not a call; every chat span is exactly one"
    for s in sent:
        r = by_id[s["span_id"]]
        assert r["trace_id"] == s["trace_id"]
        assert r["request_model"] == s["model"]
        assert r["provider"] == s["provider"]
        assert r["service"] == "sdk-client" and r["environment"] == "prod"
        assert r["user_id"] == s["user"] and r["session_id"] == "s-1"
        assert r["streaming"] is s["streaming"]
        if s["failed"]:
            assert (r["status"], r["error_type"], r["http_status"]) == ("error", "RateLimitError", 429)
            assert r["input_tokens"] is None
        else:
            assert r["status"] == "ok"
            assert (r["input_tokens"], r["output_tokens"], r["cache_read_tokens"]) == (
                s["input"],
                s["output"],
                s["cached"],
            )
            expected = calc_price(
                Usage(input_tokens=s["input"], output_tokens=s["output"], cache_read_tokens=s["cached"]),
                s["model"],
                provider_id=s["provider"],
            )
            assert r["cost_usd"] == pytest.approx(float(expected.total_price), rel=1e-9)
            assert r["ttft_ms"] == (pytest.approx(123.0) if s["streaming"] else None)
            assert r["finish_reason"] == "stop"


def test_sdk_http_protobuf_exporter(server):
    sent = _emit_calls(HttpExporter(endpoint=f"{server.http_url}/v1/traces"))
    assert server.stop() == 0
    _check(export_rows(server.data_dir), sent)


def test_sdk_http_exporter_with_gzip(server):
    from opentelemetry.exporter.otlp.proto.http import Compression

    sent = _emit_calls(HttpExporter(endpoint=f"{server.http_url}/v1/traces", compression=Compression.Gzip), n=6)
    assert server.stop() == 0
    _check(export_rows(server.data_dir), sent)


def test_sdk_grpc_exporter(server):
    sent = _emit_calls(GrpcExporter(endpoint=server.grpc_target, insecure=True))
    assert server.stop() == 0
    _check(export_rows(server.data_dir), sent)


def test_raw_otlp_json_post_lenient_forms(server):
    """camelCase and snake_case keys, enum names and integers, 64-bit ints as strings or numbers, hex ids."""
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-client"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "chat gpt-4o",
                                "kind": "SPAN_KIND_CLIENT",
                                "startTimeUnixNano": "1731000000000000000",
                                "endTimeUnixNano": 1731000001500000000,
                                "attributes": [
                                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                                    {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1000"}},
                                    {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 200}},
                                ],
                                "status": {"code": "STATUS_CODE_OK"},
                            },
                            {
                                "trace_id": "5b8efff798038103d269b633813fc60d",
                                "span_id": "eee19b7ec3c1b175",
                                "name": "chat claude",
                                "kind": 3,
                                "start_time_unix_nano": 1731000002000000000,
                                "end_time_unix_nano": "1731000002250000000",
                                "attributes": [
                                    {"key": "gen_ai.request.model", "value": {"string_value": "claude-haiku-4-5"}},
                                    {"key": "gen_ai.provider.name", "value": {"string_value": "anthropic"}},
                                    {"key": "error.type", "value": {"string_value": "InternalServerError"}},
                                ],
                                "status": {"code": 2, "message": "Error code: 500"},
                            },
                        ]
                    }
                ],
            }
        ]
    }
    response = post_otlp(server.http_url, orjson.dumps(body), "application/json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {}  # full success: no partialSuccess
    assert server.stop() == 0
    rows = sorted(export_rows(server.data_dir), key=lambda r: r["start_time"])
    assert [r["span_id"] for r in rows] == ["eee19b7ec3c1b174", "eee19b7ec3c1b175"]
    first, second = rows
    assert first["start_time"] == "2024-11-07T17:20:00.000000Z" and first["duration_ms"] == 1500.0
    assert (first["input_tokens"], first["output_tokens"]) == (1000, 200)
    expected = calc_price(Usage(input_tokens=1000, output_tokens=200), "gpt-4o", provider_id="openai")
    assert first["cost_usd"] == pytest.approx(float(expected.total_price))
    assert (second["status"], second["error_type"], second["http_status"]) == ("error", "InternalServerError", 500)
    assert second["duration_ms"] == 250.0
