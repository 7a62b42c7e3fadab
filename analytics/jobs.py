"""Background jobs of `callscope serve` (APScheduler): rollup folding, and (when configured) release markers, drift
and anomaly detection. A failing run logs and the next one retries; no job ever stops the scheduler."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import duckdb
from apscheduler.schedulers.background import BackgroundScheduler

from analytics import releases, retention, rollups
from analytics.anomalies import job as anomaly_job
from analytics.anomalies.job import AnomalyConfig
from analytics.drift import job as drift_job
from analytics.drift.config import DriftConfig

log = logging.getLogger("callscope.jobs")
# Retention in a running server deletes at most half the time and leaves the checkpoint to DuckDB's automatic one,
# so ingest keeps its rate (bench/retention.py).
SERVING_DUTY = 0.5


class Jobs:
    def __init__(
        self,
        db: duckdb.DuckDBPyConnection,
        *,
        rollup_interval_s: float,
        rollup_lag_s: float,
        writer_horizon: Callable[[], int | None] | None = None,
        drift: DriftConfig | None = None,
        drift_interval_s: float = 3600.0,
        anomalies: AnomalyConfig | None = None,
        anomaly_interval_s: float = 300.0,
        retention_policy: retention.Policy | None = None,
        retention_interval_s: float = 3600.0,
        retention_batch_rows: int = 50_000,
    ) -> None:
        self._db = db
        self._lag = rollup_lag_s
        self._horizon = writer_horizon
        self._drift = drift
        self._anomalies = anomalies
        self.scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})
        now = datetime.now(UTC)
        self.scheduler.add_job(
            self.fold_rollups, "interval", seconds=rollup_interval_s, id="rollups", next_run_time=now
        )
        self.fold_failures = 0
        self.failures: dict[str, int] = {}
        if drift is not None or anomalies is not None:
            self.scheduler.add_job(
                self.record_releases, "interval", seconds=rollup_interval_s, id="releases", next_run_time=now
            )
        if anomalies is not None:
            self.scheduler.add_job(
                self.detect_anomalies, "interval", seconds=anomaly_interval_s, id="anomalies", next_run_time=now
            )
        self._retention = retention_policy
        self._retention_batch = retention_batch_rows
        self.last_retention: retention.Report | None = None
        if retention_policy is not None:
            self.scheduler.add_job(
                self.apply_retention,
                "interval",
                seconds=retention_interval_s,
                id="retention",
                next_run_time=now + timedelta(seconds=min(60.0, retention_interval_s)),
            )
        if drift is not None:
            first = self._first_drift_run(drift, timedelta(seconds=drift_interval_s), now)
            self.scheduler.add_job(
                self.detect_drift, "interval", seconds=drift_interval_s, id="drift", next_run_time=first
            )

    def _first_drift_run(self, config: DriftConfig, interval: timedelta, now: datetime) -> datetime:
        cur = self._db.cursor()
        try:
            cur.execute("SET TimeZone = 'UTC'")
            first = drift_job.first_run_at(cur, config, interval, now)
        except Exception:
            log.exception("drift: could not read the last run; running now")
            return now
        finally:
            cur.close()
        if first > now:
            log.info("drift: the stored run of this hour stands; the next run at %s", first.strftime("%H:%M:%S UTC"))
        return first

    def _run(self, name: str, work: Callable[[duckdb.DuckDBPyConnection], str | None]) -> None:
        """One run of a detection job on its own cursor; a failure is logged and counted, never raised."""
        cur = self._db.cursor()
        try:
            cur.execute("SET TimeZone = 'UTC'")
            message = work(cur)
            if message:
                log.info("%s: %s", name, message)
        except Exception:
            self.failures[name] = self.failures.get(name, 0) + 1
            log.exception("%s: the run failed; the next one retries", name)
        finally:
            cur.close()

    def record_releases(self) -> None:
        def work(cur: duckdb.DuckDBPyConnection) -> str | None:
            releases.record_versions(cur, lag_s=self._lag)
            return None

        self._run("releases", work)

    def detect_drift(self) -> None:
        config = self._drift
        assert config is not None

        def work(cur: duckdb.DuckDBPyConnection) -> str:
            run = drift_job.run_once(cur, config)
            return f"run {run.run_id}: {run.drifted} of {run.cells} cells drifted ({run.seconds:.1f} s)"

        self._run("drift", work)

    def detect_anomalies(self) -> None:
        config = self._anomalies
        assert config is not None

        def work(cur: duckdb.DuckDBPyConnection) -> str | None:
            result = anomaly_job.run_once(cur, config)
            if not result.hours:
                return None
            return f"scored {result.hours} hour(s), {result.anomalies} anomalies ({result.seconds:.1f} s)"

        self._run("anomalies", work)

    def apply_retention(self) -> None:
        """Remove what the retention policy says is past keeping, in bounded batches on its own cursor (the
        writer keeps committing between and during them)."""
        policy = self._retention
        assert policy is not None

        def work(cur: duckdb.DuckDBPyConnection) -> str | None:
            report = retention.Runner(
                cur, policy, batch_rows=self._retention_batch, duty=SERVING_DUTY, checkpoint=False
            ).run()
            self.last_retention = report
            if not any(report.total.values()):
                return None
            retention.record(cur, report, "schedule")
            removed = ", ".join(f"{k} {n}" for k, n in report.total.items() if n)
            return f"removed {removed} in {report.batches} batch(es), {report.seconds:.1f} s"

        self._run("retention", work)

    def fold_rollups(self) -> None:
        cur = self._db.cursor()
        try:
            cur.execute("SET TimeZone = 'UTC'")
            result = rollups.fold(cur, lag_s=self._lag, writer_horizon=self._horizon)
            # The current hour is re-folded every run: say so only when it is news (a backlog, late data, slow).
            level = logging.INFO if result.hours > 1 or result.seconds > 1 else logging.DEBUG
            if result.hours:
                log.log(level, "rollups: re-folded %d hour(s) in %.2fs", result.hours, result.seconds)
        except Exception:
            self.fold_failures += 1
            log.exception("rollups: folding failed; the next run retries (queries stay exact meanwhile)")
        finally:
            cur.close()

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.shutdown(wait=True)
