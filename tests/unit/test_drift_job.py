"""The drift job on generated traffic in a real store file: the scripted release drift (support-bot's prompts x1.45
from 2.14.0) is found for that service and not for the others; stored verdicts equal scipy over the same rows;
the minimum sample, configured tests and thresholds, pinned baselines, history and release markers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from scipy import stats

from analytics import releases
from analytics.detection_signals import drift_signals
from analytics.drift import job, results
from analytics.drift.config import DriftConfig, parse_tests
from core.settings import SettingsError
from core.store import connect
from sample_data import script as sc
from sample_data.script import script_for, to_us
from sample_data.traffic import World, generate

END = datetime(2026, 9, 1, tzinfo=UTC)
# 150 days put the release (at 70%) 22 days after the prompt change and 7.5 days after the 5xx burst, so the week
# before it and the days after it hold no other scripted change: what drifts there is the release.
SCRIPT = script_for(END, 150)
RELEASE = SCRIPT.release
DEPENDS_ON_PROMPT = {"input_tokens", "cost_per_call", "ttft", "latency"}  # the generator prices tokens and adds
# 0.04 ms of time to first token per prompt token: these move with the prompt; the others must not


@pytest.fixture(scope="module")
def calls() -> pa.Table:
    world = World.make(SCRIPT, n_users=2000)
    start, end = to_us(RELEASE - timedelta(days=7, hours=1)), to_us(RELEASE + timedelta(days=3))
    return generate(world, np.random.default_rng(1), 60_000, start_us=start, end_us=end)


@pytest.fixture
def db(calls: pa.Table, tmp_path: Path):
    store = connect(tmp_path / "callscope.duckdb")
    store.register("generated", calls)
    store.execute("INSERT INTO calls SELECT * FROM generated")
    store.unregister("generated")
    yield store
    store.close()


def rows_of(db, run_id: int) -> list[dict]:
    return results.results(db, run_id, results.ResultFilter()).to_pylist()


def test_the_release_drift_is_found_for_its_service_and_not_for_the_others(db) -> None:
    run = job.run_once(db, DriftConfig(), now=RELEASE + timedelta(hours=24, minutes=5))
    rows = rows_of(db, run.run_id)
    assert run.windows.current.end == RELEASE + timedelta(hours=24)  # whole hours
    bot_prompts = [r for r in rows if r["service"] == sc.RELEASE_SERVICE and r["metric"] == "input_tokens"]
    decided = [r for r in bot_prompts if r["status"] != "not_enough_data"]
    assert len(decided) >= 2 and all(r["drifted"] for r in decided), decided
    assert all(r["score"] > 0.5 for r in decided)  # prompts x1.45: normed Wasserstein ~0.7
    others = [r for r in rows if r["service"] != sc.RELEASE_SERVICE]
    assert others and not [r for r in others if r["drifted"]]
    assert sum(r["status"] != "not_enough_data" for r in others) >= 30  # the others were really tested
    moved = {r["metric"] for r in rows if r["service"] == sc.RELEASE_SERVICE and r["drifted"]}
    assert "input_tokens" in moved and moved <= DEPENDS_ON_PROMPT


def test_a_stored_verdict_equals_scipy_over_the_same_rows(db, calls: pa.Table) -> None:
    run = job.run_once(db, DriftConfig(), now=RELEASE + timedelta(hours=24))
    stored = next(
        r
        for r in rows_of(db, run.run_id)
        if (r["service"], r["model"], r["metric"]) == (sc.RELEASE_SERVICE, "gpt-4o-mini", "input_tokens")
    )
    t = pc.cast(calls["start_time"], pa.int64()).to_numpy()
    keep = (
        pc.and_(
            pc.equal(calls["service"].cast(pa.string()), sc.RELEASE_SERVICE),
            pc.equal(calls["status"].cast(pa.string()), "ok"),
        )
    ).to_numpy(zero_copy_only=False) & (
        calls["request_model"].cast(pa.string()).to_numpy(zero_copy_only=False) == "gpt-4o-mini"
    )
    values = calls["input_tokens"].to_numpy(zero_copy_only=False).astype(float)
    ref_w, cur_w = run.windows.reference, run.windows.current
    ref = values[keep & (t >= ref_w.start_us) & (t < ref_w.end_us)]
    cur = values[keep & (t >= cur_w.start_us) & (t < cur_w.end_us)]
    assert (stored["n_reference"], stored["n_current"]) == (len(ref), len(cur))
    assert stored["test"] == "wasserstein"  # reference > 1000 values, many distinct: Evidently's choice
    assert stored["score"] == pytest.approx(stats.wasserstein_distance(ref, cur) / np.std(ref), rel=1e-9)
    assert stored["p_value"] == pytest.approx(stats.ks_2samp(ref, cur).pvalue, rel=1e-6)
    assert stored["threshold"] == 0.1 and stored["drifted"] and stored["p_adjusted"] >= stored["p_value"]


def test_too_few_calls_is_not_enough_data_never_drifted(db) -> None:
    run = job.run_once(db, DriftConfig(min_samples=10**7), now=RELEASE + timedelta(hours=24))
    rows = rows_of(db, run.run_id)
    assert rows and {r["status"] for r in rows} == {"not_enough_data"}
    assert not any(r["drifted"] for r in rows) and all(r["test"] is None for r in rows)
    assert run.drifted == 0


def test_configured_tests_and_thresholds(db) -> None:
    config = DriftConfig(tests=parse_tests({"input_tokens": "psi:0.5", "latency": ":0.3"}))
    rows = rows_of(db, job.run_once(db, config, now=RELEASE + timedelta(hours=24)).run_id)
    prompts = [r for r in rows if r["metric"] == "input_tokens" and r["test"]]
    assert {r["test"] for r in prompts} == {"psi"} and {r["threshold"] for r in prompts} == {0.5}
    latency = [r for r in rows if r["metric"] == "latency" and r["test"]]
    assert {r["threshold"] for r in latency if r["test"] == "wasserstein"} == {0.3}
    assert {r["threshold"] for r in latency if r["test"] == "ks"} <= {0.05}  # p-value tests keep their level
    for bad, message in (
        ({"prompt": "ks"}, "unknown drift metric"),
        ({"latency": "anderson"}, "unknown test"),
        ({"latency": "chisquare"}, "does not apply"),
        ({"latency": "ks:1.5"}, "out of range"),
        ({"latency": "psi:x"}, "not a number"),
    ):
        with pytest.raises(SettingsError, match=message):
            parse_tests(bad)


def test_a_service_pinned_to_a_release_is_compared_with_the_days_before_it(db) -> None:
    releases.record_versions(db, now=RELEASE + timedelta(days=4))
    marker = releases.find(db, sc.RELEASE_SERVICE, "2.14.0")
    assert abs(marker.released_at - RELEASE) < timedelta(minutes=30)  # its first call
    config = DriftConfig(baselines={sc.RELEASE_SERVICE: "2.14.0", "not-deployed": "9.9"})
    run = job.run_once(db, config, now=RELEASE + timedelta(days=3))
    rows = rows_of(db, run.run_id)
    bot = [r for r in rows if r["service"] == sc.RELEASE_SERVICE]
    assert {r["baseline"] for r in bot} == {"before release 2.14.0"}
    assert {r["reference_to"] for r in bot} == {marker.released_at}
    assert {r["current_from"] for r in bot} == {RELEASE + timedelta(days=2)}  # the last 24 h, all after it
    assert all(r["drifted"] for r in bot if r["metric"] == "input_tokens" and r["status"] != "not_enough_data")
    others = [r for r in rows if r["service"] != sc.RELEASE_SERVICE]
    assert {r["baseline"] for r in others} == {None} and not any(r["drifted"] for r in others)


def test_history_is_kept_for_the_retention(db) -> None:
    first = job.run_once(db, DriftConfig(), now=RELEASE + timedelta(hours=20))
    second = job.run_once(db, DriftConfig(), now=RELEASE + timedelta(hours=24))
    where = results.ResultFilter(services=(sc.RELEASE_SERVICE,), models=("gpt-4o-mini",), metrics=("input_tokens",))
    history = results.history(db, where, RELEASE, RELEASE + timedelta(days=2)).to_pylist()
    assert [h["run_id"] for h in history] == [first.run_id, second.run_id]
    assert history[0]["score"] < history[1]["score"]  # 20 h after the release the current window held less of it
    job.run_once(db, DriftConfig(retention=timedelta(hours=1)), now=RELEASE + timedelta(days=2))
    assert [r["run_id"] for r in results.runs(db)] == [second.run_id + 1]
    assert db.execute("SELECT count(DISTINCT run_id) FROM drift_results").fetchall()[0][0] == 1


def test_verdicts_as_alert_signals(db) -> None:
    assert drift_signals(db) == []
    run = job.run_once(db, DriftConfig(), now=RELEASE + timedelta(hours=24))
    rows = [r for r in rows_of(db, run.run_id) if r["status"] != "not_enough_data"]
    signals = drift_signals(db)
    assert len(signals) == len(rows) and {s.at for s in signals} == {run.computed_at}
    bot = next(
        s
        for s in signals
        if s.labels
        == {"project": "default", "service": sc.RELEASE_SERVICE, "model": "gpt-4o-mini", "metric": "input_tokens"}
    )
    stored = next(
        r
        for r in rows
        if (r["service"], r["model"], r["metric"]) == (sc.RELEASE_SERVICE, "gpt-4o-mini", "input_tokens")
    )
    assert bot.values == {"drift_score": pytest.approx(stored["score"] / 0.1), "drifted": 1.0}


def test_a_failing_detection_run_is_logged_and_the_next_one_runs(tmp_path: Path, caplog) -> None:
    from analytics.anomalies.job import AnomalyConfig
    from analytics.jobs import Jobs

    store = connect(tmp_path / "callscope.duckdb")
    try:
        jobs = Jobs(store, rollup_interval_s=3600, rollup_lag_s=0, drift=DriftConfig(), anomalies=AnomalyConfig())
        store.execute("ALTER TABLE drift_runs RENAME TO drift_runs_gone")  # the next drift run cannot store
        jobs.detect_drift()
        assert jobs.failures == {"drift": 1} and "drift: the run failed" in caplog.text
        store.execute("ALTER TABLE drift_runs_gone RENAME TO drift_runs")
        jobs.detect_drift()
        jobs.detect_anomalies()
        jobs.record_releases()
        assert jobs.failures == {"drift": 1} and results.latest_run_id(store) == 1
    finally:
        store.close()


def test_a_restart_keeps_the_schedule_when_the_stored_run_compared_this_hours_windows(tmp_path: Path) -> None:
    from analytics.jobs import Jobs

    store = connect(tmp_path / "callscope.duckdb")
    config, hour = DriftConfig(), timedelta(hours=1)
    now = datetime.now(UTC)
    try:
        assert job.first_run_at(store, config, hour, now) == now  # nothing stored: at once
        ran = max(job.whole_hour(now), now - timedelta(minutes=5))
        results.save(
            store,
            [],
            job.default_windows(job.whole_hour(now), config),
            computed_at=ran,
            seconds=2.0,
            retention=timedelta(days=90),
        )
        assert job.first_run_at(store, config, hour, now) == ran + hour  # as if the server had not stopped
        later = job.whole_hour(now) + hour + timedelta(minutes=1)  # the next hour's windows: at once
        assert job.first_run_at(store, config, hour, later) == later
        longer = DriftConfig(current=timedelta(hours=48))  # other window lengths (settings changed): at once
        assert job.first_run_at(store, longer, hour, now) == now
        assert job.first_run_at(store, config, timedelta(minutes=1), now + timedelta(minutes=10)) == now + timedelta(
            minutes=10
        )  # a short interval already passed: at once

        jobs = Jobs(store, rollup_interval_s=3600, rollup_lag_s=0, drift=config, drift_interval_s=3600)
        assert jobs.scheduler.get_job("drift").next_run_time == ran + hour
        fresh = Jobs(store, rollup_interval_s=3600, rollup_lag_s=0, drift=longer, drift_interval_s=3600)
        assert fresh.scheduler.get_job("drift").next_run_time <= datetime.now(UTC)
    finally:
        store.close()
