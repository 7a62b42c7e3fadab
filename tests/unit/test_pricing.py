"""Cost at ingest follows genai-prices for the call's own time (off-peak discounts, dated price changes)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from genai_prices import Usage, calc_price

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
