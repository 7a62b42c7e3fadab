"""Background jobs of `callscope serve` (APScheduler): rollup folding. A failing run logs and the next one retries."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import duckdb
from apscheduler.schedulers.background import BackgroundScheduler

from analytics import rollups

log = logging.getLogger("callscope.jobs")


class Jobs:
    def __init__(
        self,
        db: duckdb.DuckDBPyConnection,
        *,
        rollup_interval_s: float,
        rollup_lag_s: float,
        writer_horizon: Callable[[], int | None] | None = None,
    ) -> None:
        self._db = db
        self._lag = rollup_lag_s
        self._horizon = writer_horizon
        self.scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})
        self.scheduler.add_job(
            self.fold_rollups, "interval", seconds=rollup_interval_s, id="rollups", next_run_time=datetime.now(UTC)
        )
        self.fold_failures = 0

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
