"""One node of a lake (store = lake): the commit lock for its writer, the job lease, and what /healthz and
/metrics say about the lake.

Every node receives OTLP and answers the read API. The jobs that must run once per store (rollups, release markers,
drift, anomalies, retention, alert evaluation, notification, lake maintenance) run on the node holding the job
lease (core/catalog.py); when it dies another node takes the lease and starts them.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import duckdb
import psycopg

from alerts.delivery import Sharing
from core import lake
from core.catalog import COMMIT_LOCK, JOB_LEASE, Catalog, Lease, LeaseLost, NotifyLedger
from core.settings import Settings

log = logging.getLogger("callscope.lake")


class LakeNode:
    def __init__(self, settings: Settings, db: duckdb.DuckDBPyConnection) -> None:
        self.settings = settings
        self.name = settings.lake_node_name or f"{socket.gethostname()}:{settings.otlp_http_port}"
        self._db = db
        self._catalog = Catalog(_named(settings.lake_catalog or "", self.name + "/commit"))
        self._info = Catalog(_named(settings.lake_catalog or "", self.name + "/info"))
        self.ledger = NotifyLedger(_named(settings.lake_catalog or "", self.name + "/ledger"), self.name)
        self._lease: Lease | None = None
        self._stop_jobs: list[Callable[[], None]] = []
        self._jobs_lock = threading.Lock()
        self.lease_taken_at: float | None = None
        self.maintenance_runs = 0
        self.maintenance_failures = 0
        self.last_maintenance: dict[str, int] | None = None

    def commit_lock(self) -> contextlib.AbstractContextManager[None]:
        """The writer holds this around each transaction (see collector/writer.py); so do the alert and
        notification writes (rules, silences, the outbox: alerts/), which any node may make."""
        return self._catalog.locked(COMMIT_LOCK)

    @contextlib.contextmanager
    def job_commit(self) -> Iterator[None]:
        """The commit lock for a write of a once-per-store job (alert evaluation, the dispatcher, a delivery's claim,
        digests), taken only while this node holds the job lease, checked with PostgreSQL inside the lock: a node
        whose lease session broke writes nothing more, even before its lease thread notices (LeaseLost). The lease
        cannot move while the check's answer is used: another node's job writes wait for this lock, and its claim
        of a row then sees this one's."""
        with self.commit_lock():
            if self._lease is None or not self._lease.verify():
                raise LeaseLost(f"node {self.name} no longer holds the job lease")
            yield

    def sharing(self) -> Sharing:
        """How this node's alerting and notification share the lake (alerts/delivery.py)."""
        return Sharing(
            lock=self.commit_lock,
            job_lock=self.job_commit,
            ledger=self.ledger,
            claim=timedelta(seconds=self.settings.lake_notify_claim_seconds),
            still_held=lambda: self._lease is not None and self._lease.verify(),
        )

    # -- the job lease -----------------------------------------------------------------------------------------

    def start_lease(self, start_jobs: Callable[[], list[Callable[[], None]]]) -> None:
        """`start_jobs` starts the once-per-store jobs and returns how to stop each (called when the lease is taken)."""

        def gain() -> None:
            with self._jobs_lock:
                self.lease_taken_at = time.time()
                self._stop_jobs = [*start_jobs(), self._start_maintenance()]

        def lose() -> None:
            with self._jobs_lock:
                stops, self._stop_jobs = self._stop_jobs, []
                self.lease_taken_at = None
            for stop in reversed(stops):
                try:
                    stop()
                except Exception:
                    log.exception("stopping a job after the lease was given up")

        self._lease = Lease(
            _named(self.settings.lake_catalog or "", self.name), self.settings.lake_lease_seconds, gain, lose
        )
        self._lease.start()

    def stop(self) -> None:
        if self._lease is not None:
            self._lease.stop()  # stops the jobs (if held), then closes the session: the lease is free at once
        self._catalog.close()
        self._info.close()
        self.ledger.close()

    @property
    def holds_lease(self) -> bool:
        return self._lease is not None and self._lease.held

    # -- maintenance -------------------------------------------------------------------------------------------

    def _start_maintenance(self) -> Callable[[], None]:
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self.settings.lake_maintenance_seconds):
                self.maintain()

        thread = threading.Thread(target=loop, name="callscope-lake-maintenance", daemon=True)
        thread.start()

        def halt() -> None:
            stop.set()
            thread.join(120)

        return halt

    def maintain(self) -> dict[str, int] | None:
        """One maintenance run under the commit lock (ingest waits for it: no commit can conflict with it)."""
        cur = self._db.cursor()
        try:
            with self.commit_lock():
                report = lake.maintain(cur, keep_hours=self.settings.lake_snapshot_keep_hours)
            self.maintenance_runs += 1
            self.last_maintenance = report
            log.info("lake maintenance: %s", report)
            return report
        except Exception:
            self.maintenance_failures += 1
            log.exception("lake maintenance failed; the next run retries")
            return None
        finally:
            cur.close()

    # -- what the node says about the lake ------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {"store": "lake", "node": self.name, "holds_job_lease": self.holds_lease}
        try:
            out.update(self._catalog_figures())
        except psycopg.Error as exc:
            out["catalog_error"] = type(exc).__name__
            self._info.close()
        return out

    def _catalog_figures(self) -> dict[str, Any]:
        self._info.open()
        conn = self._info._conn
        assert conn is not None
        holder = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = %s AND l.objsubid = 1",
            [JOB_LEASE],
        ).fetchone()
        files = conn.execute(
            f"SELECT count(*) FROM {lake.METADATA_SCHEMA}.ducklake_data_file WHERE end_snapshot IS NULL"  # noqa: S608
        ).fetchone()
        snapshots = conn.execute(
            f"SELECT max(snapshot_id), count(*) FILTER (WHERE snapshot_time > now() - interval '60 seconds')"  # noqa: S608
            f" FROM {lake.METADATA_SCHEMA}.ducklake_snapshot"
        ).fetchone()
        return {
            "job_lease_holder": holder[0] if holder else None,
            "lake_data_files": int(files[0]) if files else 0,
            "lake_snapshot_id": int(snapshots[0] or 0) if snapshots else 0,
            "lake_commits_per_s": round((snapshots[1] or 0) / 60.0, 3) if snapshots else 0.0,
        }

    def render_metrics(self) -> str:
        health = self.health()
        node = self.name.replace('"', "")
        lines = [
            "# HELP callscope_lake_job_lease_held 1 if this node holds the job lease (runs the once-per-store jobs).",
            "# TYPE callscope_lake_job_lease_held gauge",
            f'callscope_lake_job_lease_held{{node="{node}"}} {int(self.holds_lease)}',
            "# HELP callscope_lake_maintenance_runs_total Lake maintenance runs of this node.",
            "# TYPE callscope_lake_maintenance_runs_total counter",
            f"callscope_lake_maintenance_runs_total {self.maintenance_runs}",
        ]
        if "lake_data_files" in health:
            lines += [
                "# HELP callscope_lake_data_files Live Parquet data files of the lake (all tables).",
                "# TYPE callscope_lake_data_files gauge",
                f"callscope_lake_data_files {health['lake_data_files']}",
                "# HELP callscope_lake_snapshot_id The lake's latest snapshot (one per commit): rate() is the commit"
                " rate of all nodes.",
                "# TYPE callscope_lake_snapshot_id counter",
                f"callscope_lake_snapshot_id {health['lake_snapshot_id']}",
            ]
        return "\n".join(lines) + "\n"


def _named(conninfo: str, name: str) -> str:
    """The connection string with application_name = the node (the lease holder is found by it in pg_stat_activity)."""
    return psycopg.conninfo.make_conninfo(conninfo, application_name=name[:63])
