"""The demo's live trickle continues the shipped data's rate: in each hour after "now" it sends as many calls as
the shipped data holds in that hour of the day (the mean over its days), so charts do not jump at "now".
The expectation is counted here with numpy from the shipped Parquet file itself."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow.parquet as pq

from sample_data import dataset
from sample_data.send import live_rows

HOUR = 3600 * 1_000_000
NOW = datetime(2026, 3, 4, 15, 20, 11, tzinfo=UTC)  # any instant: the data is shifted to end here
TICK = 60 * 1_000_000


def shipped_hourly_counts(now: datetime) -> dict[int, int]:
    """Calls per clock hour (hour index -> count) of the shipped file shifted to end at `now`, full hours only."""
    table = pq.read_table(dataset.PATH)
    starts = table.column("start_time").cast("int64").to_numpy()
    ends = table.column("end_time").cast("int64").to_numpy()
    starts = starts + (round(now.timestamp() * 1e6) - ends.max())
    hours, counts = np.unique(starts // HOUR, return_counts=True)
    first_full, last_full = starts.min() // HOUR + 1, starts.max() // HOUR - 1
    return {int(h): int(c) for h, c in zip(hours, counts, strict=True) if first_full <= h <= last_full}


def test_the_live_trickle_keeps_the_shipped_calls_per_hour_of_day() -> None:
    data = dataset.load(NOW)
    shipped = shipped_hourly_counts(NOW)
    rng = np.random.default_rng(3)
    start = round(NOW.timestamp() * 1e6)
    first_hour = start // HOUR + 1  # the first full hour after "now"
    hours = 8
    live_starts: list[int] = []
    for t in range(start, (first_hour + hours) * HOUR, TICK):  # ticks as the trickle takes them
        live_starts += [r["start_time"] for r in live_rows(data.world, rng, data.rate.calls_per_minute, t, t + TICK)]
    live = np.bincount(np.array(live_starts) // HOUR - first_hour + 1, minlength=hours + 1)[1:]
    checked = 0
    for i in range(hours):
        same_hour = [shipped[h] for h in range(first_hour + i - 24, first_hour + i - 24 * 5, -24) if h in shipped]
        assert len(same_hour) >= 3
        expected = float(np.mean(same_hour))
        # Poisson noise of the live hour plus that of the mean of the shipped days
        tolerance = 4.5 * np.sqrt(expected * (1 + 1 / len(same_hour)))
        assert abs(live[i] - expected) <= tolerance, (i, live[i], expected, same_hour)
        checked += 1
    assert checked == hours
    assert live.sum() > 0.3 * sum(data.rate.per_hour) / 24 * hours  # not trivially empty


def test_the_hourly_rate_counts_each_hour_of_day_over_the_time_it_covers() -> None:
    data = dataset.load(NOW)
    shipped = shipped_hourly_counts(NOW)
    for hour_of_day in range(24):
        counts = [c for h, c in shipped.items() if h % 24 == hour_of_day]
        # the partial first and last hours also count in the rate, so the full days' mean is close, not equal
        assert abs(data.rate.per_hour[hour_of_day] - np.mean(counts)) <= 0.15 * np.mean(counts) + 5, hour_of_day
