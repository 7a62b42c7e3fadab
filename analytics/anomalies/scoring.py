"""A robust seasonal baseline and score for one hourly series.

Baseline of hour h, the first of these that has enough points (values of the same series):
1. hour_of_week: the same hour 1..W weeks before (W = anomaly_history_weeks), at least 3 points;
2. hour_of_day: the same hour of the 14 days before, weekdays for a weekday and weekend days for a weekend day
   (UTC), at least 3 points;
3. rolling: the 24 hours before, at least 6 points: only for error rate, 429 share and p95 latency, which have
   little daily rhythm (calls and spend follow the working day and nightly batches; against the hours just before
   every morning would be an anomaly);
otherwise the hour is not scored (a new series has no history).

score = (value - median) / spread, spread = max(1.4826 * MAD, floor): median and MAD (median absolute deviation;
1.4826 * MAD estimates the standard deviation of normal data) of the baseline points, so one past incident in the
baseline moves neither. With a few weeks of history the MAD rests on 3-4 points and can be near 0 by chance, so
the spread never goes below the sampling noise of one hour's value (n = the hour's calls): for calls sqrt(median)
+ 1 (counting noise; at least 5% of the median); for rates the binomial sqrt(p (1 - p) / n) (p at least 1/n;
at least 0.002); for spend median * sqrt(3 / n) (a sum of n costs with a coefficient of variation of ~1.4; at
least 10%); for p95 latency median / sqrt(n) (a 95th percentile of n lognormal durations; at least 5%).

Calls and spend are anomalous when |score| >= threshold (a drop is news too); error rate, 429 share and p95
latency only when score >= threshold. Spend, rates and p95 are scored on hours with at least min_calls calls (the
same for their baseline points); calls when the hour or its baseline reaches min_calls. An hour without calls
has 0 calls when the series had calls in the 24 hours before (traffic that stops); else the series has ended and
is not scored.
"""

from __future__ import annotations

import warnings
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
    the hours before them. `calls` holds each hour's calls (for the binomial floor)."""
    n = len(targets)
    baseline = np.full(n, np.nan)
    spread = np.full(n, np.nan)
    history = np.zeros(n, dtype=np.int64)
    basis: list[str | None] = [None] * n
    todo = ~np.isnan(values[targets]) if n else np.zeros(0, dtype=bool)
    for kind in Basis:
        if not todo.any():
            break
        if kind is Basis.ROLLING and not metric.rolling:
            continue
        rows = np.nonzero(todo)[0]
        lags = _lags(kind, targets[rows], first_hour_us, weeks)
        idx = targets[rows][:, None] - lags
        usable = (lags > 0) & (idx >= 0)
        points = np.where(usable, values[np.clip(idx, 0, len(values) - 1)], np.nan)
        count = (~np.isnan(points)).sum(axis=1)
        enough = count >= MIN_POINTS[kind]
        if not enough.any():
            continue
        chosen = points[enough]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(chosen, axis=1)
            mad = np.nanmedian(np.abs(chosen - med[:, None]), axis=1)
        at = rows[enough]
        baseline[at] = med
        spread[at] = np.maximum(MAD_TO_SD * mad, _floor(metric, med, calls[targets[at]]))
        history[at] = count[enough]
        for i in at:
            basis[i] = kind.value
        todo[at] = False
    score = (values[targets] - baseline) / spread if n else np.zeros(0)
    with np.errstate(invalid="ignore"):
        anomalous = np.abs(score) >= threshold if metric.two_sided else score >= threshold
    if metric.name == "calls":  # a handful of calls where there were none is not news
        anomalous &= np.fmax(values[targets], baseline) >= min_calls
    return Scored(baseline, spread, score, basis, history, np.nan_to_num(anomalous, nan=False).astype(bool))
