"""Detection quality on generated traffic, at a CI size (bench/drift_quality.py runs the same at full size: 50 seeds
of undrifted traffic, 20 seeds of the release, 10M calls of incidents; its figures are in the README)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from analytics.anomalies.job import AnomalyConfig
from analytics.detection_signals import anomaly_signals
from bench.drift_quality import anomaly_run, false_positives, memory_store, release_drift
from sample_data.bulk import write_calls
from sample_data.script import script_for

END = datetime(2026, 3, 4, tzinfo=UTC)


def test_undrifted_traffic_flags_at_most_5_percent_of_cells() -> None:
    total: Counter = Counter()
    for seed in range(6):
        total += false_positives(seed, calls_per_day=10_000, end=END)
    cells = sum(total.values())
    decided = total["drifted"] + total["stable"]
    assert cells > 500 and decided > 300  # enough verdicts to mean something
    assert total["drifted"] / cells <= 0.05 and total["drifted"] / decided <= 0.05, total


def test_the_release_drift_is_found_on_other_seeds_too() -> None:
    for seed in (11, 12):
        outcome = release_drift(seed)
        assert outcome.bot_cells >= 2 and outcome.bot_found == outcome.bot_cells
        assert outcome.other_cells > 30 and outcome.other_flagged <= 0.05 * outcome.other_cells


@pytest.fixture(scope="module")
def incident_store():
    db = memory_store()
    write_calls(db, n_calls=700_000, days=14, end=END, progress=False)
    yield db
    db.close()


def test_the_scripted_incidents_are_flagged(incident_store) -> None:
    script = script_for(END, 14)
    score, _ = anomaly_run(incident_store, script, AnomalyConfig())
    assert score.incidents_missed == [], score
    assert score.cell_recall >= 0.4  # of the incident cells with a score (models and services of the provider)
    assert score.precision_scripted >= 0.6, score  # flagged cells that are incidents or scripted changes
    rows = incident_store.sql(
        "SELECT metric, scope, model FROM anomaly_scores WHERE anomalous AND hour_us = ?",
        params=[(int(script.rate_limit_storm.start.timestamp()) // 3600) * 3600 * 10**6],
    ).fetchall()
    assert ("rate_limited_share", "model", "gpt-4o-mini") in rows  # the storm's own model and metric

    signals = anomaly_signals(incident_store)
    series = incident_store.sql(
        "SELECT count(DISTINCT (project, scope, service, model, metric)), max(hour_us) FROM anomaly_scores"
        " WHERE score IS NOT NULL"
    ).fetchall()[0]
    assert len(signals) == series[0] > 50
    storm = next(s for s in signals if s.labels["model"] == "gpt-4o-mini" and s.labels["metric"] == "calls")
    assert storm.at.timestamp() * 1e6 == series[1] and set(storm.values) == {"anomaly_score", "anomalous"}
