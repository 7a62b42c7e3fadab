"""The anomaly job: hourly series per service and per model, scored against their seasonal baseline, stored.

Incremental like the rollups: each run computes the complete hours touched by calls received since its last run
(late calls re-score the hour they land in) and every complete hour after the last one stored (so an hour
without calls is scored too: traffic that stops is an anomaly). Values of earlier hours, the baselines, come from
anomaly_scores itself. The first run fills the last anomaly_history_weeks + 1 weeks.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from analytics.anomalies.scoring import score_series
from analytics.anomalies.series import HOUR_US, SERIES, hourly, least_calls
from analytics.timewin import US, to_us
from core.settings import Settings, SettingsError
from core.store import set_state

log = logging.getLogger("callscope.anomalies")

STATE_NAME = "anomalies"
OVERLAP_US = 10 * 60 * US  # read again this much before the last mark (calls committed late; harmless twice)
KEY = ["project", "scope", "service", "model"]
ALIVE_HOURS = 24  # an hour without calls counts as 0 calls when the series had calls this recently


@dataclass(frozen=True)
class AnomalyConfig:
    threshold: float = 5.0
    min_calls: int = 30
    history_weeks: int = 4
    retention: timedelta = timedelta(days=90)
    lag: timedelta = timedelta(seconds=60)

    @staticmethod
    def from_settings(settings: Settings) -> AnomalyConfig:
        retention = timedelta(days=settings.detection_retention_days)
        if retention < timedelta(weeks=settings.anomaly_history_weeks + 1):
            raise SettingsError(
                f"detection_retention_days = {settings.detection_retention_days} keeps less than the"
                f" anomaly_history_weeks ({settings.anomaly_history_weeks}) + 1 weeks the baselines need"
            )
        return AnomalyConfig(
            threshold=settings.anomaly_threshold,
            min_calls=settings.anomaly_min_calls,
            history_weeks=settings.anomaly_history_weeks,
            retention=retention,
            lag=timedelta(seconds=settings.rollup_lag_seconds),
        )


@dataclass(frozen=True)
class RunResult:
    hours: int
    rows: int
    anomalies: int
    seconds: float


def _state(db: duckdb.DuckDBPyConnection) -> int:
    rows = db.execute("SELECT through_us FROM detection_state WHERE name = ?", [STATE_NAME]).fetchall()
    return rows[0][0] if rows else 0


def _target_hours(db: duckdb.DuckDBPyConnection, config: AnomalyConfig, upto_us: int) -> list[int]:
    end = (upto_us // HOUR_US) * HOUR_US  # hours before this one are complete
    start = end - (config.history_weeks + 1) * 7 * 24 * HOUR_US
    through = _state(db)
    last = db.execute("SELECT max(hour_us) FROM anomaly_scores").fetchall()[0][0]
    if not through or last is None:
        first = db.execute(
            "SELECT min(start_time) FROM calls WHERE start_time >= make_timestamptz($s::BIGINT)", {"s": start}
        ).fetchall()[0][0]
        if first is None:
            return []
        begin = max(start, (to_us(first) // HOUR_US) * HOUR_US)
        return list(range(begin, end, HOUR_US))
    touched = db.execute(
        f"SELECT DISTINCT (epoch_us(start_time) // {HOUR_US}) * {HOUR_US} AS h FROM calls"
        " WHERE received_at > make_timestamptz($since::BIGINT) AND received_at <= make_timestamptz($upto::BIGINT)",
        {"since": max(0, through - OVERLAP_US), "upto": upto_us},
    ).fetchall()
    hours = {h for (h,) in touched if start <= h < end}
    hours.update(range(max(last + HOUR_US, start), end, HOUR_US))
    return sorted(hours)


def _long(wide: pl.DataFrame) -> pl.DataFrame:
    """hour_us, key columns, calls (in the hour), metric, value: one row per series metric."""
    return wide.unpivot(
        on=list(SERIES), index=["hour_us", *KEY, "calls_in_hour"], variable_name="metric", value_name="value"
    ).rename({"calls_in_hour": "calls"})


def _stored(db: duckdb.DuckDBPyConnection, lo: int, hi: int, skip: list[int]) -> pl.DataFrame:
    frame = pl.from_arrow(
        db.sql(
            "SELECT hour_us, project, scope, service, model, calls, metric, value FROM anomaly_scores"
            " WHERE hour_us >= $lo AND hour_us < $hi AND NOT list_contains($skip, hour_us)",
            params={"lo": lo, "hi": hi, "skip": skip},
        ).to_arrow_table()
    )
    assert isinstance(frame, pl.DataFrame)
    return frame


SCORE_SCHEMA = pa.schema(
    [
        ("hour_us", pa.int64()),
        ("project", pa.string()),
        ("scope", pa.string()),
        ("service", pa.string()),
        ("model", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("calls", pa.int64()),
        ("baseline", pa.float64()),
        ("spread", pa.float64()),
        ("score", pa.float64()),
        ("basis", pa.string()),
        ("history", pa.int32()),
        ("anomalous", pa.bool_()),
        ("scored_at", pa.timestamp("us", tz="UTC")),
    ]
)


def score_hours(frame: pl.DataFrame, targets: list[int], config: AnomalyConfig, scored_at: datetime) -> pa.Table:
    """Score every series of `frame` (long format, the targets' hours and their history) at the target hours."""
    out: dict[str, list] = {name: [] for name in SCORE_SCHEMA.names}
    if frame.height == 0 or not targets:
        return SCORE_SCHEMA.empty_table()
    first, last = min(frame["hour_us"].min(), min(targets)), max(targets)  # type: ignore[type-var]
    n_hours = (last - first) // HOUR_US + 1
    target_idx = (np.array(targets, dtype=np.int64) - first) // HOUR_US
    is_target = np.zeros(n_hours, dtype=bool)
    is_target[target_idx] = True
    for key, part in frame.group_by(KEY, maintain_order=True):
        project, scope, service, model = key
        by_metric = part.partition_by("metric", as_dict=True)
        calls = np.zeros(n_hours)
        present = np.zeros(n_hours, dtype=bool)
        any_metric = next(iter(by_metric.values()))
        idx = (any_metric["hour_us"].to_numpy() - first) // HOUR_US
        calls[idx] = any_metric["calls"].to_numpy()
        present[idx] = True
        recent = np.convolve(present.astype(int), np.ones(ALIVE_HOURS, dtype=int))[:n_hours]  # present in [i-23, i]
        alive = np.concatenate([[False], recent[:-1] > 0])  # rows in the ALIVE_HOURS before hour i
        for name, metric in SERIES.items():
            values = np.full(n_hours, np.nan)
            rows = by_metric.get((name,))
            if rows is not None:
                values[(rows["hour_us"].to_numpy() - first) // HOUR_US] = (
                    rows["value"].to_numpy(allow_copy=True).astype(float)
                )
            if metric.needs_calls:
                values[calls < least_calls(metric, config.min_calls)] = np.nan
            else:
                values[~present & alive] = 0.0
            scoreable = is_target & (present | (alive if not metric.needs_calls else False))
            t = np.nonzero(scoreable)[0]
            if not len(t):
                continue
            scored = score_series(
                values,
                calls,
                t,
                metric,
                first_hour_us=first,
                weeks=config.history_weeks,
                threshold=config.threshold,
                min_calls=config.min_calls,
            )
            raw = values[t]
            out["hour_us"] += (first + t * HOUR_US).tolist()
            out["project"] += [project] * len(t)
            out["scope"] += [scope] * len(t)
            out["service"] += [service] * len(t)
            out["model"] += [model] * len(t)
            out["metric"] += [name] * len(t)
            out["value"] += [None if np.isnan(v) else float(v) for v in raw]
            out["calls"] += calls[t].astype(np.int64).tolist()
            for col, arr in (("baseline", scored.baseline), ("spread", scored.spread), ("score", scored.score)):
                out[col] += [None if np.isnan(v) else float(v) for v in arr]
            out["basis"] += scored.basis
            out["history"] += scored.history.tolist()
            out["anomalous"] += scored.anomalous.tolist()
            out["scored_at"] += [scored_at] * len(t)
    return pa.Table.from_pydict(out, schema=SCORE_SCHEMA)


def run_once(db: duckdb.DuckDBPyConnection, config: AnomalyConfig, *, now: datetime | None = None) -> RunResult:
    """Score the hours that need it and store them (one transaction with the job's mark)."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    upto = to_us(now) - int(config.lag.total_seconds() * US)
    targets = _target_hours(db, config, upto)
    table = SCORE_SCHEMA.empty_table()
    if targets:
        history_start = min(targets) - config.history_weeks * 7 * 24 * HOUR_US
        fresh = hourly(db, targets)
        frame = _stored(db, history_start, max(targets) + HOUR_US, targets)
        if fresh.height:
            fresh_long = _long(fresh).select(frame.columns).cast(frame.schema)  # type: ignore[arg-type]
            frame = pl.concat([frame, fresh_long])
        table = score_hours(frame, targets, config, now)
    db.execute("BEGIN TRANSACTION")
    try:
        if targets:
            db.execute("DELETE FROM anomaly_scores WHERE list_contains($h, hour_us)", {"h": targets})
            if table.num_rows:
                db.register("_anomaly_rows", table)
                db.execute("INSERT INTO anomaly_scores BY NAME SELECT * FROM _anomaly_rows")
                db.unregister("_anomaly_rows")
        cutoff = to_us(now - config.retention)
        db.execute("DELETE FROM anomaly_scores WHERE hour_us < $c", {"c": cutoff})
        set_state(db, "detection_state", "through_us", STATE_NAME, upto)
        db.execute("COMMIT")
    except Exception:
        db.execute("ROLLBACK")
        raise
    flagged = int(pa.compute.sum(table.column("anomalous")).as_py() or 0) if table.num_rows else 0
    return RunResult(len(targets), table.num_rows, flagged, time.perf_counter() - started)
