"""A robust seasonal baseline and score for one hourly series.

Baseline of hour h, the first of these that has enough points (values of the same series):
1. hour_of_week: the same hour 1..W weeks before (W = anomaly_history_weeks), at least 3 points;
2. hour_of_day: the same hour of the 14 days before, weekdays for a weekday and weekend days for a weekend day
   (UTC), at least 3 points;
3. rolling: the 24 hours before, at least 6 points: only for error rate, 429 share and p95 latency, which have
   little daily rhythm (calls and spend follow the working day and nightly batches; against the hours just before
   every morning would be an anomaly);
otherwise the hour is not scored (a new series has no history).

The seasonal median is then moved to the level of the last 24 hours: times the median ratio value / seasonal
median over those hours (calls, spend, p95 latency), or plus the median difference (rates), when at least 6 of
them say. A lasting change (a prompt that doubles spend) is then news for about half a day, not for the weeks the
same-hour-of-week median needs to catch up; an incident of a few hours moves that median of 24 hours little.

score = (value - baseline) / spread. spread = the largest of: 1.4826 * MAD of the baseline points (median
absolute deviation; 1.4826 * MAD estimates the standard deviation of normal data; scaled by the level for
multiplicative metrics), so one past incident in the baseline moves neither median nor spread; the series' own
noise around its baseline over the week before (1.4826 * MAD of the hours' ratios or differences, at least 24
of them: bursty traffic such as agent loops, or a p95 over few calls, varies more than 3-4 weekly points show);
and a floor. With a few weeks of history the MAD rests on 3-4 points and can be near 0 by chance, so
the spread never goes below the sampling noise of one hour's value (n = the hour's calls): for calls sqrt(median)
+ 1 (counting noise; at least 5% of the median); for rates the binomial sqrt(p (1 - p) / n) (p at least 1/n;
at least 0.002); for spend median * sqrt(3 / n) (a sum of n costs with a coefficient of variation of ~1.4; at
least 10%); for p95 latency median / sqrt(n) (a 95th percentile of n lognormal durations; at least 5%).

Calls and spend are anomalous when |score| >= threshold (a drop is news too); error rate, 429 share and p95
latency only when score >= threshold. Spend is scored on hours with at least anomaly_min_calls calls, p95 latency
on hours with at least 100 (and anomaly_min_calls), rates from 10 calls (their binomial floor keeps small hours
calm); the same holds for baseline points. Calls count when the hour or its baseline reaches anomaly_min_calls.
An hour without calls
has 0 calls when the series had calls in the 24 hours before (traffic that stops); else the series has ended and
is not scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from analytics.anomalies.series import SeriesMetric

MAD_TO_SD = 1.4826
WEEK = 168
DAY = 24


class Basis(StrEnum):
    HOUR_OF_WEEK = "hour_of_week"
    HOUR_OF_DAY = "hour_of_day"
    ROLLING = "rolling"


MIN_POINTS = {Basis.HOUR_OF_WEEK: 3, Basis.HOUR_OF_DAY: 3, Basis.ROLLING: 6}
LEVEL_POINTS = 6
NOISE_POINTS = 24
MULTIPLICATIVE = frozenset({"calls", "spend", "latency_p95"})  # scale with traffic; rates shift by differences
DAYS_BACK = 14


@dataclass(frozen=True)
class Scored:
    """Per target hour (arrays aligned with the targets): baseline median, spread, score (NaN: not scored), the
    basis used (None: not scored) and how many baseline points."""

    baseline: np.ndarray
    spread: np.ndarray
    score: np.ndarray
    basis: list[str | None]
    history: np.ndarray
    anomalous: np.ndarray


def row_medians(points: np.ndarray) -> np.ndarray:
    """np.nanmedian(points, axis=1), NaN for a row without values; one sort, no masked arrays (10x faster)."""
    ordered = np.sort(points, axis=1)  # NaN sort last
    count = (~np.isnan(points)).sum(axis=1)
    lo = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0)[:, None], axis=1)[:, 0]
    hi = np.take_along_axis(ordered, np.minimum(count // 2, points.shape[1] - 1)[:, None], axis=1)[:, 0]
    return np.where(count > 0, (lo + hi) / 2, np.nan)


def _lags(basis: Basis, hour_index: np.ndarray, first_hour_us: int, weeks: int) -> np.ndarray:
    """(targets, lags) of hour offsets to look back for each target hour; 0 where a lag does not apply."""
    n = len(hour_index)
    if basis is Basis.HOUR_OF_WEEK:
        return np.tile(np.arange(1, weeks + 1) * WEEK, (n, 1))
    if basis is Basis.ROLLING:
        return np.tile(np.arange(1, DAY + 1), (n, 1))
    days = np.arange(1, DAYS_BACK + 1)
    hours_since_epoch = first_hour_us // 3_600_000_000 + hour_index
    weekday = ((hours_since_epoch // 24) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    day_of = ((hours_since_epoch[:, None] // 24 - days[None, :]) + 3) % 7
    same_kind = (day_of >= 5) == (weekday[:, None] >= 5)
    return np.where(same_kind, days[None, :] * DAY, 0)


def _floor(metric: SeriesMetric, median: np.ndarray, calls: np.ndarray) -> np.ndarray:
    """The sampling noise of one hour's value, below which the baseline's own spread is not trusted."""
    n = np.maximum(calls, 1.0)
    if metric.name == "calls":
        return np.maximum(np.sqrt(np.maximum(median, 0.0)) + 1.0, 0.05 * np.abs(median))
    if metric.name == "spend":
        return np.maximum(np.abs(median) * np.maximum(0.1, np.sqrt(3.0 / n)), 1e-6)
    if metric.name == "latency_p95":
        return np.maximum(np.abs(median) * np.maximum(0.05, 1.0 / np.sqrt(n)), 1.0)
    p = np.clip(np.maximum(median, 1.0 / n), 0.0, 1.0)
    return np.maximum(np.sqrt(p * (1 - p) / n), 0.002)


def _seasonal(
    values: np.ndarray, hours: np.ndarray, metric: SeriesMetric, first_hour_us: int, weeks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str | None]]:
    """For each of `hours`: the median and MAD of its baseline points, how many, and the basis used."""
    n = len(hours)
    median, mad = np.full(n, np.nan), np.full(n, np.nan)
    history = np.zeros(n, dtype=np.int64)
    basis: list[str | None] = [None] * n
    todo = np.ones(n, dtype=bool)
    for kind in Basis:
        if not todo.any():
            break
        if kind is Basis.ROLLING and not metric.rolling:
            continue
        rows = np.nonzero(todo)[0]
        lags = _lags(kind, hours[rows], first_hour_us, weeks)
        idx = hours[rows][:, None] - lags
        usable = (lags > 0) & (idx >= 0)
        points = np.where(usable, values[np.clip(idx, 0, len(values) - 1)], np.nan)
        count = (~np.isnan(points)).sum(axis=1)
        enough = count >= MIN_POINTS[kind]
        if not enough.any():
            continue
        chosen = points[enough]
        med = row_medians(chosen)
        median[rows[enough]] = med
        mad[rows[enough]] = row_medians(np.abs(chosen - med[:, None]))
        history[rows[enough]] = count[enough]
        for i in rows[enough]:
            basis[i] = kind.value
        todo[rows[enough]] = False
    return median, mad, history, basis


def _gaps(values: np.ndarray, seasonal: np.ndarray, multiplicative: bool) -> np.ndarray:
    """Each hour against its seasonal median: the ratio (multiplicative metrics) or the difference (rates)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = values / seasonal if multiplicative else values - seasonal
    if multiplicative:
        gap[~(seasonal > 0)] = np.nan
    return gap


def _before(gap: np.ndarray, targets: np.ndarray, hours: int) -> np.ndarray:
    """(targets, hours) of the gaps of the `hours` hours before each target (NaN where there are none)."""
    idx = targets[:, None] - np.arange(1, hours + 1)[None, :]
    return np.where(idx >= 0, gap[np.clip(idx, 0, len(gap) - 1)], np.nan)


def _level_and_noise(gap: np.ndarray, targets: np.ndarray, multiplicative: bool) -> tuple[np.ndarray, np.ndarray]:
    """The level of the last 24 hours (median gap; 1 or 0 when fewer than LEVEL_POINTS) and the series' own noise
    around its baseline over the last week (1.4826 * MAD of the gaps; 0 when fewer than NOISE_POINTS)."""
    level = np.full(len(targets), 1.0 if multiplicative else 0.0)
    noise = np.zeros(len(targets))
    day = _before(gap, targets, DAY)
    enough = (~np.isnan(day)).sum(axis=1) >= LEVEL_POINTS
    level[enough] = row_medians(day[enough])
    week = _before(gap, targets, WEEK)
    enough = (~np.isnan(week)).sum(axis=1) >= NOISE_POINTS
    centre = row_medians(week[enough])
    noise[enough] = MAD_TO_SD * row_medians(np.abs(week[enough] - centre[:, None]))
    return level, noise


def score_series(
    values: np.ndarray,
    calls: np.ndarray,
    targets: np.ndarray,
    metric: SeriesMetric,
    *,
    first_hour_us: int,
    weeks: int,
    threshold: float,
    min_calls: int = 0,
) -> Scored:
    """Score `targets` (indexes into the dense hourly `values`, NaN where the series has no usable value) against
    the hours before them. `calls` holds each hour's calls (for the floors)."""
    n = len(targets)
    if not n:
        empty = np.zeros(0)
        return Scored(empty, empty, empty, [], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool))
    every_hour = np.arange(len(values))
    seasonal, mad_all, history_all, basis_all = _seasonal(values, every_hour, metric, first_hour_us, weeks)
    multiplicative = metric.name in MULTIPLICATIVE
    level, noise = _level_and_noise(_gaps(values, seasonal, multiplicative), targets, multiplicative)
    med, mad = seasonal[targets], mad_all[targets]
    scored = ~np.isnan(values[targets]) & ~np.isnan(med)
    if multiplicative:
        baseline = med * level
        dispersion = np.maximum(MAD_TO_SD * mad * level, noise * baseline)
    else:
        baseline = np.maximum(med + level, 0.0)
        dispersion = np.maximum(MAD_TO_SD * mad, noise)
    baseline = np.where(scored, baseline, np.nan)
    spread = np.where(scored, np.maximum(dispersion, _floor(metric, baseline, calls[targets])), np.nan)
    history = np.where(scored, history_all[targets], 0)
    basis = [b if ok else None for b, ok in zip((basis_all[t] for t in targets), scored, strict=True)]
    score = (values[targets] - baseline) / spread
    with np.errstate(invalid="ignore"):
        anomalous = np.abs(score) >= threshold if metric.two_sided else score >= threshold
    if metric.name == "calls":  # a handful of calls where there were none is not news
        anomalous &= np.fmax(values[targets], baseline) >= min_calls
    return Scored(baseline, spread, score, basis, history, np.nan_to_num(anomalous, nan=False).astype(bool))
