"""The small dataset shipped for `callscope up --demo`: a few days of generated calls in a zstd Parquet file.

It is generated once (`python -m sample_data.dataset`) and shipped, so the demo is the same on every machine and
needs no generation at start. Its incidents all lie in its last 24 hours (sample_data.script.demo_script), the
dashboard's default view. Its times are shifted at load so that it ends now; the script of its incidents is
shifted with it (and drives the live trickle that follows, so the story continues), and the trickle keeps the
data's own calls per hour at each hour of day (hourly_rate), so charts do not jump at "now".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sample_data.otlp import shift
from sample_data.script import Script, demo_script
from sample_data.traffic import World, generate, with_model_names

PATH = Path(__file__).resolve().parent / "demo_calls.parquet"
# the shipped dataset's parameters
DAYS = 4
CALLS = 40_000
SEED = 7
USERS = 1500
MODELS = 20
END = datetime(2026, 1, 16, 9, 30, tzinfo=UTC)  # any fixed instant: the data is shifted to end now at load
_META_KEY = b"callscope.demo"
_HOUR_US = 3600 * 1_000_000


@dataclass(frozen=True)
class HourlyRate:
    """Calls per hour at each UTC hour of day, as a table of calls has them: what the live trickle after the
    shipped data keeps to, so the hour after "now" looks like the same hour of the days before."""

    per_hour: tuple[float, ...]  # 24 values, index = UTC hour of day

    def calls_per_minute(self, t_us: int) -> float:
        return self.per_hour[(t_us // _HOUR_US) % 24] / 60.0


def hourly_rate(table: pa.Table) -> HourlyRate:
    """The calls per hour of `table` at each UTC hour of day: the calls starting in that hour of any day, divided
    by how long the table's time span covers that hour of day (the first and last hours count in part)."""
    starts = table.column("start_time").cast(pa.int64()).to_numpy()
    counts = np.bincount((starts // _HOUR_US) % 24, minlength=24).astype(float)
    first, last = int(starts.min()), int(starts.max())
    covered = np.zeros(24)
    for hour in range(first // _HOUR_US, last // _HOUR_US + 1):
        lo, hi = max(first, hour * _HOUR_US), min(last, (hour + 1) * _HOUR_US)
        covered[hour % 24] += max(hi - lo, 0) / _HOUR_US
    rate = np.divide(counts, covered, out=np.zeros(24), where=covered > 0)
    return HourlyRate(tuple(float(r) for r in rate))


@dataclass(frozen=True)
class Dataset:
    table: pa.Table  # calls rows (CALL_COLUMNS), shifted
    script: Script  # its incidents, shifted
    world: World  # for the live trickle that follows
    rate: HourlyRate  # the live trickle's rate: the shipped calls per hour at each hour of day, shifted


def build(*, days: float = DAYS, n_calls: int = CALLS, seed: int = SEED, end: datetime = END) -> pa.Table:
    world = World.make(demo_script(end, days), n_users=USERS, n_models=MODELS)
    table = generate(world, np.random.default_rng(seed), n_calls).sort_by("start_time")
    meta = {"end": end.isoformat(), "days": days, "seed": seed, "calls": n_calls, "users": USERS, "models": MODELS}
    return table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})


def write(table: pa.Table, path: Path = PATH) -> None:
    pq.write_table(table, path, compression="zstd", compression_level=19)


def load(now: datetime | None = None, path: Path = PATH) -> Dataset:
    """The shipped calls, shifted so that the last one ends at `now` (default: the current time)."""
    table = with_model_names(pq.read_table(path))
    meta = json.loads(table.schema.metadata[_META_KEY])
    script = demo_script(datetime.fromisoformat(meta["end"]), meta["days"])
    now = now or datetime.now(UTC)
    last_end_us = pa.compute.max(table.column("end_time").cast(pa.int64())).as_py()
    delta_us = round(now.timestamp() * 1e6) - last_end_us
    shifted_script = script.shifted(timedelta(microseconds=delta_us))
    world = World.make(shifted_script, n_users=meta["users"], n_models=meta["models"])
    shifted = shift(table, delta_us)
    return Dataset(shifted, shifted_script, world, hourly_rate(shifted))


if __name__ == "__main__":
    t = build()
    write(t)
    print(f"wrote {t.num_rows} calls to {PATH} ({PATH.stat().st_size / 1e6:.2f} MB)")
