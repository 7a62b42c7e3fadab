"""The seasonal robust baseline and score of one hourly series, against numpy on hand-made series: which past hours
form the baseline (same hour of the week, else of the day, else rolling), median/MAD, the floors, directions."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.anomalies.scoring import MAD_TO_SD, row_medians, score_series
from analytics.anomalies.series import SERIES

MONDAY = 1_767_571_200_000_000  # 2026-01-05T00:00Z, a Monday, in microseconds
WEEK, DAY = 168, 24


def weekly_calls(weeks: int, rng: np.random.Generator) -> np.ndarray:
    """Calls per hour with a daily and weekly rhythm and Poisson noise."""
    hours = np.arange(weeks * WEEK)
    daily = 200 + 800 * np.exp(-((((hours % DAY) - 14) / 4) ** 2))
    weekly = np.where((hours // DAY) % 7 >= 5, 0.4, 1.0)
    return rng.poisson(daily * weekly).astype(float)


def seasonal_by_definition(values: np.ndarray, h: int, weeks: int) -> tuple[float, float, int]:
    """Median and MAD of the same hour 1..weeks weeks before (at least 3 points), else of the same hour of the 14
    days before on days of the same kind (weekday / weekend), at least 3; NaN when neither."""
    points = [
        values[h - k * WEEK] for k in range(1, weeks + 1) if h - k * WEEK >= 0 and not np.isnan(values[h - k * WEEK])
    ]
    if len(points) < 3:
        weekend = (h // DAY) % 7 >= 5  # the series starts on a Monday
        points = [
            values[h - d * DAY]
            for d in range(1, 15)
            if h - d * DAY >= 0 and ((h - d * DAY) // DAY % 7 >= 5) == weekend and not np.isnan(values[h - d * DAY])
        ]
    if len(points) < 3:
        return float("nan"), float("nan"), 0
    median = float(np.median(points))
    return median, float(np.median(np.abs(np.array(points) - median))), len(points)


def calls_score_by_definition(values: np.ndarray, h: int, weeks: int) -> tuple[float, float]:
    """(baseline, spread) of the calls metric at hour h, from the definition in analytics/anomalies/scoring.py."""
    median, mad, _ = seasonal_by_definition(values, h, weeks)
    ratios = []
    for j in range(max(0, h - WEEK), h):
        m, _, _ = seasonal_by_definition(values, j, weeks)
        if m > 0:
            ratios.append((j, values[j] / m))
    day = [r for j, r in ratios if j >= h - DAY]
    level = float(np.median(day)) if len(day) >= 6 else 1.0
    week = np.array([r for _, r in ratios])
    noise = MAD_TO_SD * float(np.median(np.abs(week - np.median(week)))) if len(week) >= 24 else 0.0
    baseline = median * level
    floor = max(np.sqrt(baseline) + 1, 0.05 * baseline)
    return baseline, max(MAD_TO_SD * mad * level, noise * baseline, floor)


def test_the_score_follows_its_definition_over_a_week() -> None:
    rng = np.random.default_rng(1)
    values = weekly_calls(5, rng)
    targets = np.arange(4 * WEEK, 5 * WEEK, 7)  # every 7th hour of the fifth week: every hour of day and weekday
    values[targets[10]] *= 2.5  # one hour of a surge
    got = score_series(values, values, targets, SERIES["calls"], first_hour_us=MONDAY, weeks=4, threshold=5.0)
    for i, h in enumerate(targets):
        baseline, spread = calls_score_by_definition(values, int(h), 4)
        assert got.basis[i] == "hour_of_week" and got.history[i] == 4
        assert got.baseline[i] == pytest.approx(baseline, rel=1e-9), h
        assert got.spread[i] == pytest.approx(spread, rel=1e-9), h
        assert got.score[i] == pytest.approx((values[h] - baseline) / spread, rel=1e-9)
    assert got.anomalous.tolist() == [i == 10 for i in range(len(targets))]


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
    median = np.median(values[weekdays_before])
    assert got.baseline[0] == pytest.approx(median * 1.0, rel=0.1)  # moved by the last day's level, ~1 here
    assert got.baseline[0] == pytest.approx(calls_score_by_definition(values, target, 4)[0], rel=1e-9)
    # a Saturday is compared with Saturdays and Sundays only: the one weekend day before is not enough
    saturday = 5 * DAY + 14
    sat = score_series(
        values, values, np.array([saturday]), SERIES["calls"], first_hour_us=MONDAY, weeks=4, threshold=5
    )
    assert sat.basis == [None] and np.isnan(sat.score[0])  # calls never use the rolling baseline


def test_a_lasting_change_is_news_for_hours_not_weeks() -> None:
    rng = np.random.default_rng(5)
    values = weekly_calls(6, rng)
    change = 4 * WEEK + 10
    values[change:] *= 2.0  # traffic doubles for good (a new customer)
    targets = np.arange(change, change + 3 * DAY)
    got = score_series(values, values, targets, SERIES["calls"], first_hour_us=MONDAY, weeks=4, threshold=5)
    flagged = targets[got.anomalous] - change
    assert 0 in flagged and flagged.max() < DAY  # flagged from its first hour, quiet within a day


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


def test_row_medians_equal_numpy_nanmedian() -> None:
    rng = np.random.default_rng(6)
    points = rng.normal(size=(200, 9))
    points[rng.random(points.shape) < 0.3] = np.nan
    points[0] = np.nan  # a row without values
    want = np.array([np.nanmedian(r) if not np.isnan(r).all() else np.nan for r in points])
    np.testing.assert_allclose(row_medians(points), want, equal_nan=True)
