"""Langfuse-shaped calls into a running callscope: the real Langfuse SDK's OpenAI integration (tests/langfuse_app.py,
its own process) exporting over OTLP/HTTP, and model-only spans from the real OpenTelemetry SDK.

Expected figures come from the usage objects the (fake) OpenAI answered with and from genai_prices.calc_price,
never from callscope's own parsing or pricer.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from genai_prices import Usage, calc_price
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from tests.helpers import ROOT, ServerProcess, export_rows
from tests.langfuse_app import CALLS


def _genai_prices_cost(model: str, provider_id: str, inp: int, out: int, cache_read: int | None = None) -> float:
    usage = Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cache_read or None)
    return float(calc_price(usage, model, provider_id=provider_id).total_price)


def test_langfuse_openai_integration_records_cached_and_reasoning_tokens(server: ServerProcess) -> None:
    app = subprocess.run(
        [sys.executable, "-m", "tests.langfuse_app", f"{server.http_url}/v1/traces"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert app.returncode == 0, app.stderr
    sent = [json.loads(line) for line in app.stdout.splitlines() if line.startswith("{")]
    assert [s["model"] for s in sent] == [c[0] for c in CALLS]
    assert server.stop() == 0

    rows = sorted(export_rows(server.data_dir), key=lambda r: r["start_time"])
    assert [r["request_model"] for r in rows] == [s["model"] for s in sent]
    cached_calls = 0
    for row, s in zip(rows, sent, strict=True):
        usage = s["usage"]  # OpenAI's: totals include the details
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
        ctx = f"{s['model']}: {row}"
        assert row["convention"] == "langfuse", ctx
        assert row["input_tokens"] == usage["prompt_tokens"], ctx
        assert row["output_tokens"] == usage["completion_tokens"], ctx
        assert row["cache_read_tokens"] == cached, ctx
        assert row["reasoning_tokens"] == reasoning, ctx
        assert row["provider"] == "openai" and row["provider_source"] == "inferred", ctx
        assert row["streaming"] is s["stream"], ctx
        expected = _genai_prices_cost(s["model"], "openai", usage["prompt_tokens"], usage["completion_tokens"], cached)
        assert row["cost_usd"] == pytest.approx(expected, rel=1e-9), ctx
        if cached:
            cached_calls += 1
            full_price = _genai_prices_cost(s["model"], "openai", usage["prompt_tokens"], usage["completion_tokens"])
            assert row["cost_usd"] < full_price, f"{ctx}: cached prompt tokens are billed below the input price"
    assert cached_calls == 3 and sum(1 for s in sent if s["stream"]) == 2


def _emit_model_only_and_named(endpoint: str) -> list[tuple[str, str | None, str]]:
    """Spans through the real SDK: (model, provider the span names or None, span name)."""
    sent = [
        ("claude-3-5-haiku-20241022", None, "a"),
        ("gpt-4o", "azure.ai.openai", "b"),  # gpt-4o matches OpenAI's models, but the client said Azure
        ("gemini-2.5-flash", None, "c"),
        ("gpt-4o", None, "d"),
        ("acme-unknown-7", None, "e"),  # no provider's models match: none is invented
        ("claude-3-5-haiku-20241022", "anthropic", "f"),
    ]
    provider = TracerProvider(resource=Resource.create({"service.name": "model-only"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    tracer = provider.get_tracer("test.model_only")
    for i, (model, named, name) in enumerate(sent):
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": 1000 + 100 * i,
            "gen_ai.usage.output_tokens": 50 + i,
        }
        if named:
            attrs["gen_ai.provider.name"] = named
        with tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attrs):
            time.sleep(0.002)
    assert provider.force_flush(30_000)
    provider.shutdown()
    return sent


# our provider name -> genai-prices provider id (the independent computation prices under it)
_GENAI_PRICES_ID = {"anthropic": "anthropic", "openai": "openai", "gcp.gen_ai": "google", "azure.ai.openai": "azure"}


def test_provider_is_inferred_for_model_only_spans_and_the_by_provider_view_agrees(server: ServerProcess) -> None:
    sent = _emit_model_only_and_named(f"{server.http_url}/v1/traces")
    now = datetime.now(UTC)
    window = {"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(minutes=5)).isoformat()}
    response = httpx.get(
        f"{server.http_url}/api/v1/stats",
        params={**window, "group_by": "provider", "metrics": "calls,cost_usd,input_tokens"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    by_provider = {row["provider"]: row for row in response.json()["data"]}
    assert server.stop() == 0

    rows = {r["span_id"]: r for r in export_rows(server.data_dir)}
    assert len(rows) == len(sent)
    got = sorted((r["request_model"], r["provider"], r["provider_source"], r["input_tokens"]) for r in rows.values())
    want_provider = {
        "a": ("anthropic", "inferred"),
        "b": ("azure.ai.openai", "client"),
        "c": ("gcp.gen_ai", "inferred"),
        "d": ("openai", "inferred"),
        "e": (None, None),
        "f": ("anthropic", "client"),
    }
    want = sorted((model, *want_provider[name], 1000 + 100 * i) for i, (model, _, name) in enumerate(sent))
    assert got == want

    # Each call's cost is genai-prices' for the provider it is stored under; the unknown model stays unpriced.
    expected_by_provider: dict[str | None, list[float]] = {}
    for r in rows.values():
        if r["provider"] is None:
            assert r["cost_usd"] is None and r["pricing"] == "unpriced"
            expected_by_provider.setdefault(None, [])
            continue
        cost = _genai_prices_cost(
            r["request_model"], _GENAI_PRICES_ID[r["provider"]], r["input_tokens"], r["output_tokens"]
        )
        assert r["cost_usd"] == pytest.approx(cost, rel=1e-9), r
        expected_by_provider.setdefault(r["provider"], []).append(cost)
    # The "by provider" view groups by the same stored provider, with the same prices.
    assert set(by_provider) == set(expected_by_provider)
    for name, costs in expected_by_provider.items():
        row = by_provider[name]
        if name is None:
            assert row["calls"] == 1 and row["cost_usd"] is None
        else:
            assert row["calls"] == len(costs)
            assert row["cost_usd"] == pytest.approx(sum(costs), rel=1e-9)
