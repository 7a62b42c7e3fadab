"""What-if on a real store: the other model's cost of the same calls equals genai-prices' own calc_price of each
call's tokens on that model (summed here), also across a price tier; the saving per month is scaled from the
window."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from genai_prices import Usage, calc_price

from analytics.query import Filters, Selection
from analytics.timewin import TimeRange
from analytics.whatif import DAYS_PER_MONTH, TargetRates, whatif
from collector.price_book import PriceBookService
from core.store import connect
from tests.calls_factory import make_calls, store_rows

START, END = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 15, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    rows = make_calls(800, START, END, seed=5)
    for row in rows[:6]:  # calls beyond gemini-2.5-pro's first price tier (200k input tokens)
        row["input_tokens"], row["cache_read_tokens"] = 250_000 + row["input_tokens"], 0
    store_rows(tmp_path, rows)
    db = connect(tmp_path / "callscope.duckdb")
    service = PriceBookService(db)
    service.load()
    yield db, rows, service
    db.close()


def genai(row: dict, model: str) -> float:
    usage = Usage(
        input_tokens=row["input_tokens"] or 0,
        output_tokens=row["output_tokens"] or 0,
        cache_read_tokens=row["cache_read_tokens"] or None,
    )
    return float(calc_price(usage, model).total_price)


def rates_of(service):
    def rates(model: str) -> TargetRates | None:
        found = service.target_rates(model)
        return None if found is None else TargetRates(**found)

    return rates


@pytest.mark.parametrize("other", ["gpt-4o-mini", "claude-sonnet-4", "gemini-2.5-pro"])
def test_other_model_cost_equals_genai_prices_call_by_call(store, other):
    db, rows, service = store
    selection = Selection(TimeRange(START, END), Filters())
    result = whatif(db, selection, [other], rates_of(service))
    models = {r["request_model"] for r in rows} - {other}
    assert {r["model"] for r in result} == models
    for line in result:
        same = [r for r in rows if r["request_model"] == line["model"]]
        want = sum(genai(r, other) for r in same)
        assert line["calls"] == len(same)
        assert math.isclose(line["other_cost_usd"], want, rel_tol=1e-9), line["model"]
        paid = [r["cost_usd"] for r in same if r["cost_usd"] is not None]
        if paid:
            assert math.isclose(line["saving_usd"], sum(paid) - want, rel_tol=1e-9, abs_tol=1e-12)
            assert math.isclose(line["saving_per_month_usd"], (sum(paid) - want) / 14 * DAYS_PER_MONTH, rel_tol=1e-9)
        else:
            assert line["saving_usd"] is None and line["unpriced_calls"] == len(same)
        assert line["reasoning_tokens"] == sum(r["reasoning_tokens"] or 0 for r in same)


def test_an_unknown_other_model_has_no_cost_and_a_filter_applies(store):
    db, rows, service = store
    selection = Selection(TimeRange(START, END), Filters.parse({"service": ["agent"]}))
    result = whatif(db, selection, ["no-such-model-xyz"], rates_of(service))
    assert all(r["other_cost_usd"] is None and r["saving_usd"] is None for r in result)
    assert sum(r["calls"] for r in result) == sum(1 for r in rows if r["service"] == "agent")


def test_a_price_book_entry_prices_the_other_model(store):
    db, rows, service = store
    now = datetime.now(UTC)
    service.add(
        {
            "provider": "*",
            "model": "my-ft",
            "input_mtok": 2,
            "output_mtok": 8,
            "reasoning_mtok": 20,
            "valid_from": (now - timedelta(days=1)).isoformat(),
        },
        "alice",
    )
    line = next(
        r for r in whatif(db, Selection(TimeRange(START, END)), ["my-ft"], rates_of(service)) if r["model"] == "gpt-4.1"
    )
    same = [r for r in rows if r["request_model"] == "gpt-4.1"]
    want = sum(
        (r["input_tokens"] * 2 + (r["output_tokens"] - r["reasoning_tokens"]) * 8 + r["reasoning_tokens"] * 20) / 1e6
        for r in same
    )
    assert math.isclose(line["other_cost_usd"], want, rel_tol=1e-9)


def test_rows_are_named_by_the_canonical_model_as_every_other_answer(tmp_path):
    """An alias, its dated snapshot in the answer and a failed call that only asked for it are one model, the
    canonical `model` column's; the dashboard's model list (the same column) then finds its own rows."""
    rows = make_calls(60, START, END, seed=9)
    for i, row in enumerate(rows):
        row["provider"], row["request_model"], row["model"] = "openai", "gpt-4o-mini", "gpt-4o-mini"
        row["response_model"] = None if i % 3 == 0 else "gpt-4o-mini-2024-07-18"  # every third call failed
    store_rows(tmp_path, rows)
    db = connect(tmp_path / "callscope.duckdb")
    try:
        service = PriceBookService(db)
        service.load()
        result = whatif(db, Selection(TimeRange(START, END)), ["claude-sonnet-4"], rates_of(service))
    finally:
        db.close()
    assert [(r["model"], r["calls"]) for r in result] == [("gpt-4o-mini", 60)]
    want = sum(genai(r, "claude-sonnet-4") for r in rows)
    assert math.isclose(result[0]["other_cost_usd"], want, rel_tol=1e-9)
