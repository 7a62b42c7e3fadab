"""Cost at ingest follows genai-prices for the call's own time (off-peak discounts, dated price changes)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from genai_prices import Usage, calc_price

from collector import pricing
from collector.pricing import Pricer


@pytest.mark.parametrize("hour", [3, 12, 17, 23])
def test_time_dependent_prices_use_the_call_time(hour: int) -> None:
    at = datetime(2026, 1, 12, hour, 5, tzinfo=UTC)
    got = Pricer().price("deepseek", "deepseek-chat", 859, 393, 0, 0, is_error=False, at_ns=int(at.timestamp()) * 10**9)
    want = calc_price(
        Usage(input_tokens=859, output_tokens=393), "deepseek-chat", provider_id="deepseek", genai_request_timestamp=at
    )
    assert got.cost_usd == pytest.approx(float(want.total_price), rel=1e-12)


def test_off_peak_is_cheaper_and_rates_are_cached_per_price() -> None:
    pricer = Pricer()
    peak = pricer.rates(
        "deepseek", "deepseek-chat", at_ns=int(datetime(2026, 1, 12, 12, tzinfo=UTC).timestamp()) * 10**9
    )
    night = pricer.rates(
        "deepseek", "deepseek-chat", at_ns=int(datetime(2026, 1, 12, 20, tzinfo=UTC).timestamp()) * 10**9
    )
    assert peak is not None and night is not None and night.output < peak.output
    again = pricer.rates(
        "deepseek", "deepseek-chat", at_ns=int(datetime(2026, 1, 13, 12, tzinfo=UTC).timestamp()) * 10**9
    )
    assert again is peak
    assert not pricer.is_time_dependent("openai", "gpt-4o-mini")


@pytest.mark.parametrize(
    ("model", "provider", "genai_prices_id"),
    [
        ("gpt-4o", "openai", "openai"),
        ("gpt-4o-mini-2024-07-18", "openai", "openai"),
        ("claude-3-5-haiku-20241022", "anthropic", "anthropic"),
        ("gemini-2.5-flash", "gcp.gen_ai", "google"),  # whichever Google API served it
        ("mistral-large-latest", "mistral_ai", "mistral"),
        ("grok-3", "x_ai", "x-ai"),
        ("deepseek-chat", "deepseek", "deepseek"),
    ],
)
def test_provider_inferred_from_the_model_prices_as_genai_prices_does(
    model: str, provider: str, genai_prices_id: str
) -> None:
    pricer = Pricer()
    assert pricer.provider_for(model) == provider
    at = datetime(2026, 1, 12, 12, tzinfo=UTC)
    got = pricer.price(provider, model, 5000, 700, 3000, None, is_error=False, at_ns=int(at.timestamp()) * 10**9)
    usage = Usage(input_tokens=5000, output_tokens=700, cache_read_tokens=3000)
    want = calc_price(usage, model, provider_id=genai_prices_id, genai_request_timestamp=at)
    assert got.cost_usd == pytest.approx(float(want.total_price), rel=1e-12)


def test_no_provider_is_invented_for_an_unknown_model() -> None:
    assert Pricer().provider_for("acme-llm-1") is None


def test_caches_stay_bounded_under_endless_new_model_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """Model names come from clients: a million made-up ones must not grow a worker's memory without bound, ours
    nor genai-prices' own lookup caches (which remember every name asked about)."""
    monkeypatch.setattr(pricing, "_CACHE_LIMIT", 200)
    pricer = Pricer()
    snapshot = pricer._snapshot
    for i in range(2_000):
        assert pricer.provider_for(f"made-up-model-{i}") is None
        assert pricer.rates("openai", f"made-up-model-{i}") is None
    assert len(pricer._providers) <= 200 and len(pricer._cache) <= 200
    assert len(snapshot._provider_cache) + len(snapshot._provider_misses) + len(snapshot._lookup_cache) <= 3 * 200
    assert pricer.provider_for("gpt-4o") == "openai"  # still right after the trims
    got = pricer.price("openai", "gpt-4o", 1000, 100, None, None, is_error=False)
    want = calc_price(Usage(input_tokens=1000, output_tokens=100), "gpt-4o", provider_id="openai")
    assert got.cost_usd == pytest.approx(float(want.total_price), rel=1e-12)
