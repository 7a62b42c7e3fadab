"""Drift and anomaly results as alertable signals: one row per labelled series with its current value(s), read
from what the jobs stored. An alert source (alerts/) turns these into metrics a rule can compare with a threshold:

- drift: labels project, service, model, metric; values `drift_score` (severity: 1 at the test's threshold, the
  same scale for every test), `drifted` (1.0 or 0.0). Cells without enough data are left out.
- anomalies: labels project, scope, service, model, metric; values `anomaly_score` (signed robust score) and
  `anomalous` (1.0 or 0.0), of each series' latest scored hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from analytics.drift import results
from analytics.drift.results import ResultFilter


@dataclass(frozen=True)
class Signal:
    labels: dict[str, str | None]
    values: dict[str, float]
    at: Any  # when the value was computed (a drift run's time, an anomaly's hour)


def drift_signals(db: duckdb.DuckDBPyConnection) -> list[Signal]:
    run_id = results.latest_run_id(db)
    if run_id is None:
        return []
    run = results.runs(db, limit=1, run_id=run_id)[0]
    out = []
    for row in results.results(db, run_id, ResultFilter()).to_pylist():
        if row["status"] == "not_enough_data":
            continue
        labels = {k: row[k] for k in ("project", "service", "model", "metric")}
        values = {"drift_score": float(row["severity"] or 0.0), "drifted": 1.0 if row["drifted"] else 0.0}
        out.append(Signal(labels, values, run["computed_at"]))
    return out


def anomaly_signals(db: duckdb.DuckDBPyConnection) -> list[Signal]:
    rows = (
        db.sql(
            """
            SELECT project, scope, service, model, metric, score, anomalous, make_timestamptz(hour_us) AS hour
            FROM anomaly_scores WHERE score IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY project, scope, service, model, metric ORDER BY hour_us DESC) = 1
            ORDER BY project, scope, service, model, metric
            """
        )
        .to_arrow_table()
        .to_pylist()
    )
    return [
        Signal(
            {k: row[k] for k in ("project", "scope", "service", "model", "metric")},
            {"anomaly_score": float(row["score"]), "anomalous": 1.0 if row["anomalous"] else 0.0},
            row["hour"],
        )
        for row in rows
    ]
