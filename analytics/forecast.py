"""Spend forecast to a period's end: a local level times weekday factors, with a prediction interval.

Method (why): LLM spend is a sum of many small calls, driven by people's working week, so a day's spend is
roughly level x weekday factor x noise, and the level wanders (features ship, users come). That is a
multiplicative seasonal local-level model; the forecast is its simple, robust form:
- weekday factors: each weekday's mean spend over the history divided by the mean (shrunk to 1 by the number of
  weeks seen: 4 weeks count half), renormalised to average 1;
- level: the mean deseasonalised spend of the last 14 complete days (fewer if fewer exist);
- the rest of the period: level x the factor of each remaining day (today's remaining fraction included);
- interval: the day-to-day noise (sd of deseasonalised days around their 7-day mean) plus a level that drifts
  as a random walk (its per-day variance from the variance of week-to-week changes of the weekly means) plus
  the level's own estimation error; the sum's variance adds up these terms over the remaining days and the
  interval is normal at `level` (90% by default), never below what is already spent.
bench/forecast_backtest.py measures its error and coverage on generated traffic; the README reports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL_DAYS = 14
SHRINK_WEEKS = 4.0


@dataclass(frozen=True)
class Forecast:
    spent: float  # in the period so far
    expected: float  # total at the period's end (spent + the forecast of the rest)
    low: float
    high: float
    level: float  # the interval's nominal coverage
    daily_level: float  # the deseasonalised spend per day the forecast extends
    remaining: list[float]  # the expected spend of each remaining day (the first is the rest of today)
    method: str = "seasonal local level (weekday factors), normal interval"


def weekday_factors(daily: np.ndarray, weekdays: np.ndarray) -> np.ndarray:
    """Factor per weekday (0 = Monday), mean 1, shrunk toward 1 when history is short."""
    overall = daily.mean() if daily.size else 0.0
    if overall <= 0:
        return np.ones(7)
    out = np.ones(7)
    for d in range(7):
        sel = daily[weekdays == d]
        if sel.size:
            raw = sel.mean() / overall
            w = sel.size / (sel.size + SHRINK_WEEKS)
            out[d] = w * raw + (1 - w) * 1.0
    return out * 7 / out.sum()


def forecast(
    history: Sequence[float],
    history_weekdays: Sequence[int],
    spent: float,
    remaining_weekdays: Sequence[int],
    today_fraction_left: float = 0.0,
    level: float = 0.9,
) -> Forecast:
    """`history`: complete days' spend before now (oldest first; may start before the period), with their
    weekdays; `spent`: spend in the period so far; `remaining_weekdays`: the weekday of today (if
    `today_fraction_left` > 0, first) and of each later day of the period."""
    daily = np.asarray(history, dtype=float)
    wds = np.asarray(history_weekdays, dtype=int)
    rem = np.asarray(remaining_weekdays, dtype=int)
    if daily.size == 0 or rem.size == 0:
        return Forecast(spent, spent, spent, spent, level, 0.0, [0.0] * len(rem))
    factors = weekday_factors(daily, wds)
    deseason = daily / factors[wds]
    recent = deseason[-LEVEL_DAYS:]
    lvl = float(recent.mean())
    weights = factors[rem].astype(float)
    if today_fraction_left > 0:
        weights[0] *= today_fraction_left
    expected_days = lvl * weights
    # noise: deviations of deseasonalised days from their centred weekly mean
    if deseason.size >= 7:
        smooth = np.convolve(deseason, np.ones(7) / 7, mode="valid")
        resid = deseason[3 : 3 + smooth.size] - smooth
        noise_var = float(resid.var(ddof=1)) * 7 / 6 if resid.size > 1 else float(deseason.var())
    else:
        noise_var = float(deseason.var(ddof=1)) if deseason.size > 1 else lvl**2
    # drift: week-to-week changes of weekly means beyond what the noise explains, per day
    weeks = deseason[deseason.size % 7 :].reshape(-1, 7).mean(axis=1) if deseason.size >= 14 else np.array([])
    drift_var = 0.0
    if weeks.size >= 3:
        drift_var = max(float(np.diff(weeks).var(ddof=1)) - 2 * noise_var / 7, 0.0) / 7
    level_var = noise_var / max(recent.size, 1)
    h = np.cumsum(weights)  # days ahead of each remaining day, weighting today's part by its fraction
    w = weights
    var = float(
        (w**2).sum() * noise_var
        + w.sum() ** 2 * level_var
        + drift_var * float(np.sum(np.outer(w, w) * np.minimum.outer(h, h)))
    )
    z = float(stats.norm.ppf(0.5 + level / 2))
    rest = float(expected_days.sum())
    half = z * var**0.5
    return Forecast(
        spent=spent,
        expected=spent + rest,
        low=spent + max(rest - half, 0.0),
        high=spent + rest + half,
        level=level,
        daily_level=lvl,
        remaining=[float(x) for x in expected_days],
    )


def crossing_day(spent: float, remaining: Sequence[float], budget: float) -> int | None:
    """Index of the remaining day on which expected cumulative spend reaches `budget` (0: today), or None."""
    if spent >= budget:
        return 0
    total = spent
    for i, x in enumerate(remaining):
        total += x
        if total >= budget:
            return i
    return None
