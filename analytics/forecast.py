"""Spend forecast to a period's end: a local level times weekday factors, with a prediction interval.

Method (why): LLM spend is a sum of many small calls, driven by people's working week, so a day's spend is
roughly level x weekday factor x noise, and the level wanders and grows (features ship, users come). That is a
multiplicative seasonal local-level model with a trend; the forecast is its simple, robust form:
- weekday factors: each weekday's mean spend over the history (up to 8 weeks) divided by the mean, shrunk to 1 as
  far as its own uncertainty exceeds the real spread between weekdays (empirical Bayes), renormalised to mean 1;
- growth: the slope of the log of the last 8 weekly (deseasonalised) means, clipped to +-3 % a day;
- level: the mean deseasonalised spend of the last 14 complete days, carried forward by the growth from the
  window's centre to now;
- the rest of the period: level x growth x the factor of each remaining day (today's remaining fraction included);
- interval (90 % by default; Student's t with weeks - 2 degrees of freedom, as its variances come from a few
  weeks): day noise (relative deviations of deseasonalised days from their centred 7-day mean) + a level that
  wanders as a random walk in log space (per-day variance from the week-to-week changes of the log weekly means
  over 16 weeks: level steps are rare, a short history would miss them) + the uncertainty of the level estimate
  and of the growth (its regression error). Never below what is already spent.
bench/forecast_backtest.py measures its error and coverage on generated traffic; the README reports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL_DAYS = 14
TREND_WEEKS = 8  # weeks the growth rate is estimated from
WALK_WEEKS = 16  # weeks how much the level wanders is estimated from (steps are rare: look further back)
MAX_GROWTH = 0.03  # per day; a faster estimated growth is clipped (a burst, not a trend)


@dataclass(frozen=True)
class Forecast:
    spent: float  # in the period so far
    expected: float  # total at the period's end (spent + the forecast of the rest)
    low: float
    high: float
    level: float  # the interval's nominal coverage
    daily_level: float  # the deseasonalised spend per day the forecast extends
    remaining: list[float]  # the expected spend of each remaining day (the first is the rest of today)
    method: str = "seasonal local level with growth (weekday factors), t interval"


def weekday_factors(daily: np.ndarray, weekdays: np.ndarray) -> np.ndarray:
    """Factor per weekday (0 = Monday), mean 1. Each raw factor (the weekday's mean over the overall mean) is shrunk
    toward 1 by how uncertain it is against how much the weekdays really differ (empirical Bayes): exact with a
    clean weekly shape, close to 1 with a few noisy weeks."""
    overall = daily.mean() if daily.size else 0.0
    if overall <= 0:
        return np.ones(7)
    raw, se2 = np.ones(7), np.zeros(7)
    for d in range(7):
        sel = daily[weekdays == d] / overall
        if sel.size:
            raw[d] = sel.mean()
            se2[d] = sel.var(ddof=1) / sel.size if sel.size > 1 else 1.0
        else:
            se2[d] = np.inf
    seen = np.isfinite(se2)
    between = max(float(raw[seen].var()) - float(se2[seen].mean()), 0.0) if seen.sum() > 1 else 0.0
    weight = np.where(seen, between / np.maximum(between + se2, 1e-300), 0.0)
    weight = np.where(seen & (se2 == 0), 1.0, weight)
    out = weight * raw + (1 - weight) * 1.0
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
    n_weeks = min(deseason.size // 7, WALK_WEEKS)
    all_weeks = deseason[deseason.size - 7 * n_weeks :].reshape(-1, 7).mean(axis=1) if n_weeks else np.array([])
    weeks = all_weeks[-TREND_WEEKS:]
    growth, growth_var, walk_var = 0.0, 0.0, 0.0
    if weeks.size >= 3 and np.all(all_weeks > 0):
        logs = np.log(weeks)
        x = np.arange(weeks.size) * 7.0
        slope, intercept = np.polyfit(x, logs, 1)
        resid = logs - (slope * x + intercept)
        growth = float(np.clip(slope, -MAX_GROWTH, MAX_GROWTH))
        growth_var = float(resid.var(ddof=2) / ((x - x.mean()) ** 2).sum()) if weeks.size > 2 else 0.0
        walk_var = float(np.diff(np.log(all_weeks)).var(ddof=1)) / 7
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
    # the variances come from a few weeks: Student's t with the weeks' degrees of freedom, not the normal
    z = float(stats.t.ppf(0.5 + level / 2, df=max(all_weeks.size - 2, 2)))
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
