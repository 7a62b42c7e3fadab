"""How well drift and anomaly detection work on generated traffic: false alarms, the scripted drift, the incidents.

    .venv/bin/python bench/drift_quality.py [--seeds 50] [--anomaly-days 28 --anomaly-calls 3000000]

1. False positives: undrifted traffic (sample_data.script.calm_script: no incident, no change), 8 days of
   `--calls-per-day` calls per seed, the drift job's comparison at the default settings (last 24 h vs the 7 days
   before). Prints the share of (service, model, metric) cells flagged, of all cells and of the cells with enough
   data for a verdict, over `--seeds` seeds.
2. The scripted release (support-bot prompts x1.45 from 2.14.0) on `--release-seeds` seeds: the week before and the
   day after it (a 150-day script, so no other scripted change is near). Prints how often every support-bot model
   cell with enough data flags input_tokens, and the cells of other services flagged.
3. Anomalies: `--anomaly-calls` calls over `--anomaly-days` days with the scripted incidents (429 storm, latency
   spike, 5xx burst) and changes, the anomaly job over all of it. An incident cell is an (hour, series, metric)
   whose hour overlaps the incident, whose series is a model of the incident's provider or a service that called
   it then, and whose metric the incident moves. Prints recall (incidents found; incident cells flagged) and
   precision (flagged cells that are incident cells; and that are incident cells or the series of a scripted
   change in the weeks after it).

The functions are also used by tests/unit/test_detection_quality.py at a small size.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa

from analytics.anomalies import job as anomaly_job
from analytics.anomalies.job import AnomalyConfig
from analytics.drift.compare import compare
from analytics.drift.config import DriftConfig
from analytics.drift.job import default_windows
from core.store import migrate
from sample_data import script as sc
from sample_data.bulk import write_calls
from sample_data.script import Script, calm_script, script_for, to_us
from sample_data.traffic import World, generate

HOUR = timedelta(hours=1)


def memory_store(table: pa.Table | None = None) -> duckdb.DuckDBPyConnection:
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    migrate(db)
    if table is not None:
        db.register("generated", table)
        db.execute("INSERT INTO calls SELECT * FROM generated")
        db.unregister("generated")
    return db


# ---------------------------------------------------------------------------------------------- drift


def false_positives(seed: int, *, calls_per_day: int, end: datetime, days: int = 8) -> Counter:
    """Verdicts of the default comparison on undrifted traffic: counts of drifted, stable, not_enough_data."""
    world = World.make(calm_script(end, days), n_users=5000)
    table = generate(
        world,
        np.random.default_rng(seed),
        calls_per_day * days,
        start_us=to_us(end - timedelta(days=days)),
        end_us=to_us(end),
    )
    db = memory_store(table)
    try:
        rows = compare(db, default_windows(end, DriftConfig()), DriftConfig())
    finally:
        db.close()
    return Counter(r.status.value for r in rows)


@dataclass(frozen=True)
class ReleaseOutcome:
    bot_cells: int  # support-bot cells with enough data for input_tokens
    bot_found: int  # ... of them flagged
    other_cells: int  # verdicts (enough data) of other services' cells
    other_flagged: int


def release_drift(seed: int, *, calls: int = 60_000) -> ReleaseOutcome:
    script = script_for(datetime(2026, 9, 1, tzinfo=UTC), 150)
    world = World.make(script, n_users=2000)
    start, end = script.release - timedelta(days=7, hours=1), script.release + timedelta(days=1, hours=1)
    table = generate(world, np.random.default_rng(seed), calls, start_us=to_us(start), end_us=to_us(end))
    db = memory_store(table)
    try:
        window_end = (script.release + timedelta(hours=25)).replace(minute=0, second=0, microsecond=0)
        rows = compare(db, default_windows(window_end, DriftConfig()), DriftConfig())
    finally:
        db.close()
    bot = [r for r in rows if r.service == sc.RELEASE_SERVICE and r.metric == "input_tokens" and r.result]
    others = [r for r in rows if r.service != sc.RELEASE_SERVICE and r.result]
    return ReleaseOutcome(
        len(bot),
        sum(r.status.value == "drifted" for r in bot),
        len(others),
        sum(r.status.value == "drifted" for r in others),
    )


# ---------------------------------------------------------------------------------------------- anomalies


@dataclass(frozen=True)
class Incident:
    name: str
    start: datetime
    end: datetime
    provider: str
    metrics: frozenset[str]


def incidents(script: Script) -> list[Incident]:
    return [
        Incident(
            "429 storm",
            script.rate_limit_storm.start,
            script.rate_limit_storm.end,
            sc.STORM_PROVIDER,
            frozenset({"rate_limited_share", "error_rate"}),
        ),
        Incident(
            "latency spike",
            script.latency_spike.start,
            script.latency_spike.end,
            sc.SPIKE_PROVIDER,
            frozenset({"latency_p95", "error_rate"}),
        ),
        Incident(
            "5xx burst",
            script.server_errors.start,
            script.server_errors.end,
            sc.OUTAGE_PROVIDER,
            frozenset({"error_rate"}),
        ),
    ]


def _hours(start: datetime, end: datetime) -> list[int]:
    first = to_us(start) // (3600 * 10**6) * 3600 * 10**6
    return list(range(first, to_us(end), 3600 * 10**6))


@dataclass(frozen=True)
class AnomalyScore:
    flagged: int
    incident_flagged: int  # flagged cells that are incident cells
    change_flagged: int  # flagged cells in the series of a scripted change, in the weeks after it
    incident_cells: int  # incident cells with a score (enough calls and history)
    incidents_found: list[str]
    incidents_missed: list[str]

    @property
    def precision(self) -> float:
        return self.incident_flagged / self.flagged if self.flagged else 1.0

    @property
    def precision_scripted(self) -> float:
        return (self.incident_flagged + self.change_flagged) / self.flagged if self.flagged else 1.0

    @property
    def cell_recall(self) -> float:
        return self.incident_flagged / self.incident_cells if self.incident_cells else 0.0


def score_anomalies(db: duckdb.DuckDBPyConnection, script: Script, weeks: int) -> AnomalyScore:
    """Compare the stored anomalies with the script (see the module docstring)."""
    rows = (
        db.sql("SELECT hour_us, scope, service, model, metric, anomalous, score FROM anomaly_scores")
        .to_arrow_table()
        .to_pylist()
    )
    truth: set[tuple] = set()
    for inc in incidents(script):
        hours = _hours(inc.start, inc.end)
        models = {
            m
            for (m,) in db.execute(
                "SELECT DISTINCT request_model FROM calls WHERE provider = ?", [inc.provider]
            ).fetchall()
        }
        services = {
            s
            for (s,) in db.execute(
                "SELECT DISTINCT service FROM calls WHERE provider = ? AND start_time >= ? AND start_time < ?",
                [inc.provider, inc.start, inc.end],
            ).fetchall()
        }
        for h in hours:
            for metric in inc.metrics:
                truth |= {(h, "model", m, metric, inc.name) for m in models}
                truth |= {(h, "service", s, metric, inc.name) for s in services}
    by_cell = {(h, scope, key, metric): name for h, scope, key, metric, name in truth}
    changes = []
    for service, at in (
        (sc.PROMPT_CHANGE_SERVICE, script.prompt_change),
        (sc.RELEASE_SERVICE, script.release),
        (sc.UNPRICED_SERVICE, script.unpriced_from),
    ):
        models = {
            m for (m,) in db.execute("SELECT DISTINCT request_model FROM calls WHERE service = ?", [service]).fetchall()
        }
        changes.append((service, models, to_us(at), to_us(at + timedelta(weeks=weeks + 1))))
    flagged = incident_flagged = change_flagged = scored_truth = 0
    found: set[str] = set()
    for row in rows:
        key = row["service"] if row["scope"] == "service" else row["model"]
        cell = (row["hour_us"], row["scope"], key, row["metric"])
        is_truth = cell in by_cell
        if is_truth and row["score"] is not None:
            scored_truth += 1
        if not row["anomalous"]:
            continue
        flagged += 1
        if is_truth:
            incident_flagged += 1
            found.add(by_cell[cell])
            continue
        for service, models, lo, hi in changes:
            in_series = (row["scope"] == "service" and key == service) or (row["scope"] == "model" and key in models)
            if in_series and lo - 3600 * 10**6 <= row["hour_us"] < hi:
                change_flagged += 1
                break
    names = [i.name for i in incidents(script)]
    return AnomalyScore(
        flagged,
        incident_flagged,
        change_flagged,
        scored_truth,
        [n for n in names if n in found],
        [n for n in names if n not in found],
    )


def anomaly_run(db: duckdb.DuckDBPyConnection, script: Script, config: AnomalyConfig) -> tuple[AnomalyScore, float]:
    """Run the anomaly job once over the whole store (as its first run does) and score it against the script."""
    result = anomaly_job.run_once(db, config, now=script.end + timedelta(minutes=5))
    return score_anomalies(db, script, config.history_weeks), result.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--calls-per-day", type=int, default=20_000)
    parser.add_argument("--release-seeds", type=int, default=20)
    parser.add_argument("--anomaly-days", type=int, default=28)
    parser.add_argument("--anomaly-calls", type=int, default=3_000_000)
    parser.add_argument("--threshold", type=float, action="append", help="anomaly thresholds to report (repeat)")
    args = parser.parse_args()
    end = datetime(2026, 3, 4, tzinfo=UTC)

    started = time.perf_counter()
    total: Counter = Counter()
    worst = 0.0
    for seed in range(args.seeds):
        counts = false_positives(seed, calls_per_day=args.calls_per_day, end=end)
        total += counts
        worst = max(worst, counts["drifted"] / max(1, sum(counts.values())))
    decided = total["drifted"] + total["stable"]
    print(
        f"drift false positives, {args.seeds} seeds x 8 days x {args.calls_per_day:,} calls/day (undrifted):"
        f" {total['drifted']} of {sum(total.values())} cells flagged"
        f" ({total['drifted'] / max(1, sum(total.values())):.2%} of all, {total['drifted'] / max(1, decided):.2%} of"
        f" the {decided} with a verdict; worst seed {worst:.2%}); {total['not_enough_data']} not enough data"
        f" [{time.perf_counter() - started:.0f} s]"
    )

    started = time.perf_counter()
    outcomes = [release_drift(seed) for seed in range(args.release_seeds)]
    print(
        f"scripted release drift, {args.release_seeds} seeds: support-bot input_tokens flagged in"
        f" {sum(o.bot_found for o in outcomes)} of {sum(o.bot_cells for o in outcomes)} model cells"
        f" (every cell in {sum(o.bot_found == o.bot_cells for o in outcomes)} of {len(outcomes)} seeds);"
        f" other services: {sum(o.other_flagged for o in outcomes)} of {sum(o.other_cells for o in outcomes)}"
        f" verdicts flagged [{time.perf_counter() - started:.0f} s]"
    )

    script = script_for(end, args.anomaly_days)
    db = memory_store()
    write_calls(db, n_calls=args.anomaly_calls, days=args.anomaly_days, end=end, progress=False)
    for threshold in args.threshold or [AnomalyConfig().threshold]:
        db.execute("DELETE FROM anomaly_scores; DELETE FROM detection_state")
        score, seconds = anomaly_run(db, script, AnomalyConfig(threshold=threshold))
        print(
            f"anomalies, {args.anomaly_calls:,} calls over {args.anomaly_days} days, threshold {threshold:g}:"
            f" incidents found {len(score.incidents_found)}/3 (missed: {', '.join(score.incidents_missed) or 'none'});"
            f" incident cells flagged {score.incident_flagged} of {score.incident_cells} scored"
            f" (cell recall {score.cell_recall:.0%}); {score.flagged} cells flagged: precision {score.precision:.0%}"
            f" (incident cells), {score.precision_scripted:.0%} counting the series of scripted changes"
            f" ({score.change_flagged}) [job {seconds:.1f} s]"
        )


if __name__ == "__main__":
    main()
