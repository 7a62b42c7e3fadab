"""Backtest of the budget forecast (analytics/forecast.py) on generated traffic over many months.

Traffic: per day, calls ~ Poisson(level x weekday factor) and each call's cost lognormal (median $0.004, sigma 1.2),
summed; the level grows or shrinks slowly (a random walk in log space with drift), steps up or down now and then
(a launch, a feature turned off: 4% of weeks, x1.35 or x0.75), and 1% of days have a burst (x2.5, a batch job).
Weekday factors: Monday-Friday 1.15-1.25, Saturday 0.5, Sunday 0.4. Several independent series (--series) of
--months months each; the first four months are history only (the forecast looks back 112 days).

For every month and each forecast day d in 5, 10, 20: the forecast made at the end of day d (days 1..d known)
of the month's total, against the true total: absolute percentage error (median and mean), bias, and how often the
true total fell inside the 90% interval (its nominal coverage). Run:
`.venv/bin/python bench/forecast_backtest.py [--series 20] [--months 36]`
"""

from __future__ import annotations

import argparse
import calendar
import os
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics.budgets import HISTORY_DAYS
from analytics.forecast import forecast

WEEKDAY = np.array([1.15, 1.25, 1.2, 1.2, 1.15, 0.5, 0.4])


def generate(rng: np.random.Generator, start: date, days: int, base_calls: float = 20_000) -> np.ndarray:
    log_level = np.log(base_calls)
    out = np.empty(days)
    for i in range(days):
        day = start + timedelta(days=i)
        if day.weekday() == 0 and rng.random() < 0.04:
            log_level += np.log(1.35 if rng.random() < 0.6 else 0.75)
        log_level += rng.normal(0.0015, 0.012)
        lam = np.exp(log_level) * WEEKDAY[day.weekday()]
        if rng.random() < 0.01:
            lam *= 2.5
        n = rng.poisson(lam)
        mu, sigma = np.log(0.004), 1.2  # per-call cost lognormal
        mean, var = np.exp(mu + sigma**2 / 2), (np.exp(sigma**2) - 1) * np.exp(2 * mu + sigma**2)
        out[i] = max(rng.normal(n * mean, np.sqrt(n * var)), 0.0)
    return out


def backtest(series: int, months: int, seed: int) -> dict[int, dict[str, float]]:
    rng = np.random.default_rng(seed)
    start = date(2022, 1, 1)
    results: dict[int, list[tuple[float, bool, float]]] = {5: [], 10: [], 20: []}
    for _ in range(series):
        n_days = sum(calendar.monthrange(2022 + (m // 12), m % 12 + 1)[1] for m in range(months))
        daily = generate(rng, start, n_days)
        days = [start + timedelta(days=i) for i in range(n_days)]
        month_starts = [i for i, d in enumerate(days) if d.day == 1]
        for m_index, first in enumerate(month_starts[4:], start=4):
            end = month_starts[m_index + 1] if m_index + 1 < len(month_starts) else n_days
            total = daily[first:end].sum()
            for d in results:
                known = first + d  # days 1..d of the month are complete
                hist_from = max(0, first - HISTORY_DAYS)
                fc = forecast(
                    daily[hist_from:known],
                    [x.weekday() for x in days[hist_from:known]],
                    float(daily[first:known].sum()),
                    [x.weekday() for x in days[known:end]],
                )
                err = (fc.expected - total) / total
                results[d].append((abs(err), fc.low <= total <= fc.high, err))
    out = {}
    for d, rows in results.items():
        arr = np.array([r[0] for r in rows])
        out[d] = {
            "months": len(rows),
            "median_ape": float(np.median(arr)),
            "mean_ape": float(arr.mean()),
            "p90_ape": float(np.quantile(arr, 0.9)),
            "bias": float(np.mean([r[2] for r in rows])),
            "coverage": float(np.mean([r[1] for r in rows])),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=20)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    result = backtest(args.series, args.months, args.seed)
    print(f"forecast backtest: {args.series} series x {args.months} months, load average {os.getloadavg()[0]:.2f}")
    print("day  months  median |err|  mean |err|  p90 |err|   bias   90% interval coverage")
    for d, r in result.items():
        print(
            f"{d:>3}  {r['months']:>6}  {r['median_ape']:>11.1%}  {r['mean_ape']:>10.1%}  {r['p90_ape']:>9.1%}"
            f"  {r['bias']:>+6.1%}  {r['coverage']:>8.1%}"
        )


if __name__ == "__main__":
    main()
