"""A real instrumentation library (official opentelemetry-instrumentation-openai-v2 with the openai client)
drives calls against a local fake LLM server and exports to a running callscope: every call is recorded,
429/500 answers as errors with their type; with content capture on, the content arrives redacted."""

from __future__ import annotations

import duckdb
import openai
import pytest
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tests.fake_llm import FakeLLM
from tests.helpers import ServerProcess, export_rows


@pytest.fixture
def content_server(tmp_path):
    proc = ServerProcess(tmp_path / "data", env={"CALLSCOPE_CAPTURE_CONTENT": "true"}).start()
    yield proc
    if proc.proc.poll() is None:
        proc.stop()


def test_openai_v2_instrumentation_end_to_end(content_server, monkeypatch):
    server = content_server
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_AND_EVENT")
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{server.http_url}/v1/traces")))
    logger_provider = LoggerProvider(resource=Resource.create({"service.name": "support-bot"}))
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{server.http_url}/v1/logs"))
    )
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
    outcomes = []
    try:
        with FakeLLM(first_chunk_ms=80) as llm:
            client = openai.OpenAI(base_url=llm.base_url, api_key="sk-test-not-real", max_retries=0)
            for i in range(12):
                marker = {9: " [status=429]", 10: " [status=500]"}.get(i, "")
                messages = [{"role": "user", "content": f"Hi, mail me at jane.doe@example.com{marker}"}]
                try:
                    if i in (6, 7):
                        stream = client.chat.completions.create(
                            model="gpt-4o-mini",
                            messages=messages,
                            stream=True,
                            max_tokens=12,
                            stream_options={"include_usage": True},
                        )
                        for _ in stream:
                            pass
                    else:
                        client.chat.completions.create(model="gpt-4.1-mini", messages=messages, max_tokens=5 + i)
                    outcomes.append(None)
                except openai.APIStatusError as exc:
                    outcomes.append((type(exc).__name__, exc.status_code))
    finally:
        tracer_provider.force_flush(30_000)
        logger_provider.force_flush(30_000)
        instrumentor.uninstrument()
        tracer_provider.shutdown()
        logger_provider.shutdown()
    assert server.stop() == 0

    rows = sorted(export_rows(server.data_dir), key=lambda r: r["start_time"])
    assert len(rows) == 12
    for i, (row, outcome) in enumerate(zip(rows, outcomes, strict=True)):
        assert row["service"] == "support-bot"
        assert row["provider"] == "openai" and row["convention"] in ("otel_genai", "otel_genai_deprecated")
        if outcome is None:
            assert row["status"] == "ok"
            assert row["input_tokens"] == 17  # 10 x 1 message + 7, as the fake server counts
            assert row["output_tokens"] == (12 if i in (6, 7) else 5 + i)
            assert row["cost_usd"] > 0
        else:
            assert (row["status"], row["error_type"], row["http_status"]) == ("error", *outcome)
    assert [o for o in outcomes if o] == [("RateLimitError", 429), ("InternalServerError", 500)]

    db = duckdb.connect(str(server.data_dir / "callscope.duckdb"), read_only=True)
    stored = db.execute(
        "SELECT coalesce(input_content, '') FROM calls UNION ALL SELECT coalesce(content, '') FROM content_events"
    ).fetchall()
    text = " ".join(r[0] for r in stored)
    db.close()
    assert "jane.doe@example.com" not in text
    assert "[REDACTED_EMAIL]" in text, "content capture is on: the prompt arrives, redacted"
