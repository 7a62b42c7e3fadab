"""Spend forecast to a period's end: a local level times weekday factors, with a prediction interval.

Method (why): LLM spend is a sum of many small calls, driven by people's working week, so a day's spend is
roughly level x weekday factor x noise, and the level wanders and grows (features ship, users come). That is a
multiplicative seasonal local-level model with a trend; the forecast is its simple, robust form:
- weekday factors: each weekday's mean spend over the history (up to 8 weeks) divided by the mean, shrunk to 1 by
  the number of weeks seen (4 weeks count half), renormalised to average 1;
- growth: the slope of the log of the last 8 weekly (deseasonalised) means, clipped to +-3 % a day;
- level: the mean deseasonalised spend of the last 14 complete days, carried forward by the growth from the
  window's centre to now;
- the rest of the period: level x growth x the factor of each remaining day (today's remaining fraction included);
- interval (normal, 90 % by default): day noise (relative deviations of deseasonalised days from their centred
  7-day mean) + a level that wanders as a random walk in log space (per-day variance from the week-to-week changes
  of the log weekly means) + the uncertainty of the level estimate and of the growth (its regression error).
  Never below what is already spent.
bench/forecast_backtest.py measures its error and coverage on generated traffic; the README reports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL_DAYS = 14
TREND_WEEKS = 8  # weeks the growth rate and the level's wandering are estimated from
MAX_GROWTH = 0.03  # per day; a faster estimated growth is clipped (a burst, not a trend)
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
    # weekly means of the deseasonalised days (newest last): growth per day and how much the level wanders
    n_weeks = min(deseason.size // 7, TREND_WEEKS)
    weeks = deseason[deseason.size - 7 * n_weeks :].reshape(-1, 7).mean(axis=1) if n_weeks else np.array([])
    growth, growth_var, walk_var = 0.0, 0.0, 0.0
    if weeks.size >= 3 and np.all(weeks > 0):
        logs = np.log(weeks)
        x = np.arange(weeks.size) * 7.0
        slope, intercept = np.polyfit(x, logs, 1)
        resid = logs - (slope * x + intercept)
        growth = float(np.clip(slope, -MAX_GROWTH, MAX_GROWTH))
        growth_var = float(resid.var(ddof=2) / ((x - x.mean()) ** 2).sum()) if weeks.size > 2 else 0.0
        walk_var = float(np.diff(logs).var(ddof=1)) / 7 if weeks.size > 2 else 0.0
    centre = (min(recent.size, LEVEL_DAYS) + 1) / 2  # the recent mean is the level this many days ago
    lvl = float(recent.mean()) * float(np.exp(growth * centre))
    weights = factors[rem].astype(float)
    if today_fraction_left > 0:
        weights[0] *= today_fraction_left
    ahead = np.cumsum(np.where(np.arange(rem.size) == 0, max(today_fraction_left, 0.5), 1.0))
    expected_days = lvl * weights * np.exp(growth * ahead)
    # relative day-to-day noise: deseasonalised days around their centred 7-day mean
    if deseason.size >= 7 and recent.mean() > 0:
        smooth = np.convolve(deseason, np.ones(7) / 7, mode="valid")
        rel = deseason[3 : 3 + smooth.size] / np.where(smooth > 0, smooth, np.nan) - 1
        rel = rel[np.isfinite(rel)]
        noise_rel = float(rel.var(ddof=1)) * 7 / 6 if rel.size > 1 else 0.25
    else:
        noise_rel = 0.25
    level_rel = noise_rel / max(recent.size, 1) + walk_var * centre
    e = expected_days
    cov = walk_var * np.minimum.outer(ahead, ahead) + level_rel + growth_var * np.outer(ahead + centre, ahead + centre)
    var = float(e @ cov @ e + (e**2).sum() * noise_rel)
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
