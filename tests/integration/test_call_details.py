"""What the call page shows of one call, end to end through a live server fed by the real OTel SDK exporter:
why a failed call failed (its error message, redacted and cut) and what each token kind cost."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from genai_prices import Usage, calc_price
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from core.records import ERROR_MESSAGE_MAX_CHARS
from tests.helpers import ServerProcess

KEY = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0" * 2
CALL = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
}


class RateLimitError(Exception):
    """Named like the OpenAI client's error, as an instrumentation would record it."""


def emit(server: ServerProcess) -> dict[str, str]:
    """Four chat spans through the SDK's HTTP/protobuf exporter; returns their span ids by role."""
    provider = TracerProvider(resource=Resource.create({"service.name": "details-test"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=server.http_url + "/v1/traces")))
    tracer = provider.get_tracer("test.details")
    ids: dict[str, str] = {}

    def call(role: str, attrs: dict[str, Any], fail: Any = None) -> None:
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes={**CALL, **attrs}) as span:
            if fail is not None:
                fail(span)
        ids[role] = f"{span.get_span_context().span_id:016x}"
        ids["trace_" + role] = f"{span.get_span_context().trace_id:032x}"

    priced = {
        "gen_ai.response.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 12_000,
        "gen_ai.usage.output_tokens": 700,
        "gen_ai.usage.cache_read.input_tokens": 4_000,
    }
    call("ok", priced)
    # The status description says why (and echoes the key the client used, as some providers do).
    call(
        "status",
        {"error.type": "RateLimitError"},
        lambda s: s.set_status(Status(StatusCode.ERROR, f"Error code: 429 - Rate limit reached for {KEY}")),
    )
    # No description, only the exception event the instrumentation recorded.
    call(
        "exception",
        {},
        lambda s: (
            s.record_exception(RateLimitError("Error code: 429 - You exceeded your current quota")),
            s.set_status(Status(StatusCode.ERROR)),
        ),
    )
    call("long", {"error.type": "BadRequestError"}, lambda s: s.set_status(Status(StatusCode.ERROR, "x" * 2000)))
    provider.shutdown()
    return ids


def get_call(server: ServerProcess, ids: dict[str, str], role: str) -> dict[str, Any]:
    url = f"{server.http_url}/api/v1/calls/{ids['trace_' + role]}/{ids[role]}"
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_error_messages_are_stored_redacted_and_searchable(server: ServerProcess) -> None:
    ids = emit(server)
    by_status = get_call(server, ids, "status")
    assert by_status["status"] == "error" and by_status["http_status"] == 429
    assert by_status["error_message"] == "Error code: 429 - Rate limit reached for [REDACTED_API_KEY]"
    assert KEY not in str(by_status)
    by_exception = get_call(server, ids, "exception")
    assert by_exception["error_type"] == "RateLimitError"
    assert by_exception["error_message"] == "Error code: 429 - You exceeded your current quota"
    long = get_call(server, ids, "long")["error_message"]
    assert long == "x" * ERROR_MESSAGE_MAX_CHARS + "…"
    assert get_call(server, ids, "ok")["error_message"] is None

    # The calls list carries the message, and search finds a call by it.
    listed = httpx.get(
        server.http_url + "/api/v1/calls", params={"last": "1h", "q": "exceeded your current quota"}, timeout=30
    ).json()
    assert [row["span_id"] for row in listed["data"]] == [ids["exception"]]
    assert listed["data"][0]["error_message"] == by_exception["error_message"]


def test_cost_split_by_token_kind_adds_up_to_the_cost(server: ServerProcess) -> None:
    ids = emit(server)
    call = get_call(server, ids, "ok")
    parts = call["cost_parts"]
    assert set(parts) == {"input", "cache_read", "cache_write", "output"}
    assert sum(parts.values()) == call["cost_usd"]  # the same floats, added in the same order, as at ingest

    # Each part against genai-prices' own calculator for that token kind alone.
    at = datetime.fromisoformat(call["start_time"].replace("Z", "+00:00")).astimezone(UTC)

    def price(**usage: int) -> float:
        return float(calc_price(Usage(**usage), "gpt-4o", provider_id="openai", genai_request_timestamp=at).total_price)

    assert abs(parts["input"] - price(input_tokens=8_000)) < 1e-12
    assert abs(parts["output"] - price(output_tokens=700)) < 1e-12
    cache_read_alone = price(input_tokens=4_000, cache_read_tokens=4_000)
    assert abs(parts["cache_read"] - cache_read_alone) < 1e-12 and parts["cache_read"] < parts["input"] / 2
    assert parts["cache_write"] == 0
    # A failed call billed nothing: no split to show.
    assert get_call(server, ids, "status")["cost_parts"] is None or get_call(server, ids, "status")["cost_usd"] == 0
