"""Budgets on a real store file: spend to date against numpy over the same rows, the forecast on a series whose
future is known, crossing dates, signals, and bad budgets refused with nothing stored."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from analytics.budgets import evaluate, load_budgets, parse_budget, save_budget
from analytics.errors import QueryError
from analytics.forecast import crossing_day, forecast
from core.store import connect
from tests.calls_factory import make_calls, store_rows

NOW = datetime(2026, 3, 18, 15, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    rows = make_calls(3000, datetime(2026, 1, 1, tzinfo=UTC), NOW, seed=11)
    store_rows(tmp_path, rows)
    db = connect(tmp_path / "callscope.duckdb")
    yield db, rows
    db.close()


def test_spend_to_date_and_burn_rate_match_the_rows(store):
    db, rows = store
    budget = save_budget(db, parse_budget({"name": "agent", "amount_usd": 5.0, "filters": {"service": "agent"}}))
    result = evaluate(db, budget, NOW)
    month = datetime(2026, 3, 1, tzinfo=UTC)
    costs = np.array(
        [r["cost_usd"] for r in rows if r["service"] == "agent" and month <= r["start_time"] < NOW and r["cost_usd"]]
    )
    assert math.isclose(result["spent_usd"], costs.sum(), rel_tol=1e-12)
    elapsed = (NOW - month).total_seconds() / 86400
    assert math.isclose(result["burn_rate_usd_per_day"], costs.sum() / elapsed, rel_tol=1e-12)
    assert result["period_start"] == "2026-03-01T00:00:00+00:00" and result["period_end"] == "2026-04-01T00:00:00+00:00"
    assert result["forecast_low_usd"] <= result["forecast_usd"] <= result["forecast_high_usd"]
    assert result["forecast_low_usd"] >= result["spent_usd"]
    assert result["spent_share"] == pytest.approx(costs.sum() / 5.0)
    assert result["thresholds_crossed"] == [t for t in (0.5, 0.8, 1.0) if costs.sum() >= 5.0 * t]
    assert result["overrun"] == (result["forecast_usd"] > 5.0)
    days = {d["day"]: d["spent_usd"] for d in result["daily"]}
    by_day: dict[str, float] = {}
    for r in rows:
        if r["service"] == "agent" and month <= r["start_time"] < NOW and r["cost_usd"]:
            key = r["start_time"].date().isoformat()
            by_day[key] = by_day.get(key, 0.0) + r["cost_usd"]
    assert days.keys() == by_day.keys()
    assert all(math.isclose(days[k], by_day[k], rel_tol=1e-9) for k in by_day)
    assert [b.name for b in load_budgets(db)] == ["agent"]


def test_a_month_in_a_time_zone_starts_at_local_midnight(store):
    db, _ = store
    budget = parse_budget({"name": "tokyo", "amount_usd": 10, "tz": "Asia/Tokyo"})
    result = evaluate(db, budget, NOW)
    assert result["period_start"] == "2026-03-01T00:00:00+09:00"


def test_the_forecast_is_exact_on_a_series_with_a_known_weekly_shape():
    shape = np.array([1.2, 1.3, 1.25, 1.2, 1.05, 0.55, 0.45])
    start = date(2026, 1, 5)  # a Monday
    days = [start + timedelta(days=i) for i in range(70)]
    daily = np.array([10.0 * shape[d.weekday()] for d in days])
    fc = forecast(daily[:60], [d.weekday() for d in days[:60]], 0.0, [d.weekday() for d in days[60:]])
    assert math.isclose(fc.expected, daily[60:].sum(), rel_tol=1e-9)
    assert fc.high - fc.low < 1e-6 * fc.expected  # no noise, no drift: no spread
    assert crossing_day(0.0, fc.remaining, daily[60:63].sum() - 1e-9) == 2


def test_the_forecast_follows_growth_and_its_interval_widens_with_noise():
    rng = np.random.default_rng(1)
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(90)]
    level = 100 * np.exp(0.01 * np.arange(90))
    noisy = level * rng.lognormal(0, 0.2, 90)
    fc = forecast(noisy[:60], [d.weekday() for d in days[:60]], 0.0, [d.weekday() for d in days[60:]])
    assert abs(fc.expected - level[60:].sum()) / level[60:].sum() < 0.15  # grows with the series
    assert fc.low < level[60:].sum() < fc.high


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"name": "zero", "amount_usd": 0}, "more than 0"),
        ({"name": "neg", "amount_usd": -5}, "more than 0"),
        ({"name": "x", "amount_usd": "lots"}, "not a number"),
        ({"name": "typo", "amount_usd": 5, "filters": {"servce": "agent"}}, "unknown dimension 'servce'"),
        ({"name": "p", "amount_usd": 5, "period": "fortnight"}, "period"),
        ({"name": "r", "amount_usd": 5, "period": "rolling"}, "rolling budget needs"),
        ({"name": "tz", "amount_usd": 5, "tz": "Mars/Olympus"}, "zone"),
        ({"amount_usd": 5}, "name is required"),
        ({"name": "f", "amount_usd": 5, "colour": "red"}, "unknown budget field"),
    ],
)
def test_bad_budgets_are_refused_and_nothing_is_stored(store, raw, reason):
    db, _ = store
    with pytest.raises(QueryError, match=reason):
        save_budget(db, parse_budget(raw))
    assert db.execute("SELECT count(*) FROM budgets").fetchone()[0] == 0


def test_a_duplicate_name_is_refused(store):
    db, _ = store
    save_budget(db, parse_budget({"name": "a", "amount_usd": 5}))
    with pytest.raises(QueryError, match="exists already"):
        save_budget(db, parse_budget({"name": "a", "amount_usd": 7}))
    assert [(b.name, b.amount_usd) for b in load_budgets(db)] == [("a", 5.0)]
