"""The seasonal robust baseline and score of one hourly series, against numpy on hand-made series: which past hours
form the baseline (same hour of the week, else of the day, else rolling), median/MAD, the floors, directions."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.anomalies.scoring import MAD_TO_SD, score_series
from analytics.anomalies.series import SERIES

MONDAY = 1_767_571_200_000_000  # 2026-01-05T00:00Z, a Monday, in microseconds
WEEK, DAY = 168, 24


def weekly_calls(weeks: int, rng: np.random.Generator) -> np.ndarray:
    """Calls per hour with a daily and weekly rhythm and Poisson noise."""
    hours = np.arange(weeks * WEEK)
    daily = 200 + 800 * np.exp(-((((hours % DAY) - 14) / 4) ** 2))
    weekly = np.where((hours // DAY) % 7 >= 5, 0.4, 1.0)
    return rng.poisson(daily * weekly).astype(float)


def test_same_hour_of_the_week_median_and_mad_against_numpy() -> None:
    rng = np.random.default_rng(1)
    values = weekly_calls(5, rng)
    target = 4 * WEEK + 14  # Monday 14:00 of the fifth week
    values[target] = values[target] * 2.5
    calls = values.copy()
    got = score_series(values, calls, np.array([target]), SERIES["calls"], first_hour_us=MONDAY, weeks=4, threshold=5.0)
    past = values[[target - k * WEEK for k in (1, 2, 3, 4)]]
    median = np.median(past)
    spread = max(MAD_TO_SD * np.median(np.abs(past - median)), np.sqrt(median) + 1, 0.05 * median)
    assert got.basis == ["hour_of_week"] and got.history[0] == 4
    assert got.baseline[0] == pytest.approx(median)
    assert got.spread[0] == pytest.approx(spread)
    assert got.score[0] == pytest.approx((values[target] - median) / spread)
    assert got.anomalous[0]


def test_an_ordinary_week_of_seasonal_traffic_has_no_calls_anomaly() -> None:
    rng = np.random.default_rng(2)
    values = weekly_calls(5, rng)
    targets = np.arange(4 * WEEK, 5 * WEEK)
    got = score_series(values, values, targets, SERIES["calls"], first_hour_us=MONDAY, weeks=4, threshold=5.0)
    assert set(got.basis) == {"hour_of_week"}
    assert not got.anomalous.any(), np.abs(got.score).max()


def test_short_history_falls_back_to_the_same_hour_of_similar_days() -> None:
    rng = np.random.default_rng(3)
    values = weekly_calls(2, rng)[: 9 * DAY]  # nine days: Monday .. Tuesday of the next week
    target = 8 * DAY + 14  # Tuesday 14:00 of week 2: one Tuesday before, not 3 weeks
    got = score_series(values, values, np.array([target]), SERIES["calls"], first_hour_us=MONDAY, weeks=4, threshold=5)
    weekdays_before = [target - d * DAY for d in range(1, 9) if ((target - d * DAY) // DAY) % 7 < 5]
    assert got.basis == ["hour_of_day"] and got.history[0] == len(weekdays_before) == 6
    assert got.baseline[0] == pytest.approx(np.median(values[weekdays_before]))
    # a Saturday is compared with Saturdays and Sundays only: the one weekend day before is not enough
    saturday = 5 * DAY + 14
    sat = score_series(
        values, values, np.array([saturday]), SERIES["calls"], first_hour_us=MONDAY, weeks=4, threshold=5
    )
    assert sat.basis == [None] and np.isnan(sat.score[0])  # calls never use the rolling baseline


def test_rates_use_the_last_day_while_history_is_short_and_only_rises_count() -> None:
    rates = np.full(30, 0.02)
    rates[-1] = 0.30
    calls = np.full(30, 400.0)
    got = score_series(
        rates, calls, np.array([29, 20]), SERIES["error_rate"], first_hour_us=MONDAY, weeks=4, threshold=5
    )
    assert got.basis == ["rolling", "rolling"]
    floor = np.sqrt(0.02 * 0.98 / 400)  # the binomial noise of 400 calls, the MAD being 0
    assert got.spread[0] == pytest.approx(floor) and got.score[0] == pytest.approx(0.28 / floor)
    assert got.anomalous.tolist() == [True, False]
    rates[-1] = 0.0  # fewer errors than usual is not an anomaly, however far below
    low = score_series(rates, calls, np.array([29]), SERIES["error_rate"], first_hour_us=MONDAY, weeks=4, threshold=2)
    assert low.score[0] <= -2 and not low.anomalous[0]


def test_calls_drop_is_an_anomaly_but_a_handful_where_there_were_none_is_not() -> None:
    rng = np.random.default_rng(4)
    values = weekly_calls(5, rng)
    target = 4 * WEEK + 15
    values[target] = 0.0  # traffic stopped
    got = score_series(values, values, np.array([target]), SERIES["calls"], first_hour_us=MONDAY, weeks=4, threshold=5)
    assert got.score[0] < -5 and got.anomalous[0]
    sparse = np.zeros(5 * WEEK)
    sparse[-1] = 6.0
    few = score_series(
        sparse,
        sparse,
        np.array([len(sparse) - 1]),
        SERIES["calls"],
        first_hour_us=MONDAY,
        weeks=4,
        threshold=5,
        min_calls=30,
    )
    assert few.score[0] == pytest.approx(6.0) and not few.anomalous[0]  # median 0, floor 1: score 6, too few calls


def test_one_past_incident_moves_neither_median_nor_mad() -> None:
    values = np.tile(np.array([100.0]), 5 * WEEK) + np.arange(5 * WEEK) % 3
    target = 4 * WEEK + 10
    clean = score_series(
        values, values, np.array([target]), SERIES["calls"], first_hour_us=MONDAY, weeks=4, threshold=5
    )
    values[target - WEEK] = 5000.0  # last week's same hour was an incident
    dirty = score_series(
        values, values, np.array([target]), SERIES["calls"], first_hour_us=MONDAY, weeks=4, threshold=5
    )
    assert dirty.baseline[0] == clean.baseline[0] and dirty.spread[0] == clean.spread[0]


def test_missing_values_are_skipped_and_new_series_are_not_scored() -> None:
    values = np.full(3 * WEEK, np.nan)
    values[-1] = 50.0
    got = score_series(
        values, values, np.array([len(values) - 1]), SERIES["latency_p95"], first_hour_us=MONDAY, weeks=4, threshold=5
    )
    assert got.basis == [None] and got.history[0] == 0 and not got.anomalous[0]
