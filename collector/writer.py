"""The single writer: one thread owns the write connection, batches requests, inserts and commits.

The ingestor `submit`s each request's Arrow tables; the writer groups many requests into one transaction (never row
by row) and resolves each request's future only after COMMIT returned, so a 200 means the rows are durable (DuckDB
writes and syncs its WAL at commit). The queue is bounded in rows: when it is full `submit` raises `Overloaded`
and the receiver answers 429/UNAVAILABLE with Retry-After instead of buffering without bound.

Which calls of a transaction are aggregates is not the writer's decision: it asks collector/aggregates.py once
per transaction and stores what it is told.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from collector.aggregates import AggregateTracker
from collector.errors import Overloaded, ShuttingDown
from collector.selfmetrics import CollectorStats
from core.records import CALL_COLUMNS, CONTENT_COLUMNS, METRIC_COLUMNS, SPAN_COLUMNS, Column, records_table

log = logging.getLogger(__name__)


@dataclass
class WriteJob:
    """The rows of one request as Arrow tables (None: none of that kind); `future` resolves after COMMIT."""

    calls: pa.Table | None = None
    spans: pa.Table | None = None
    content: pa.Table | None = None
    metrics: pa.Table | None = None
    future: Future[None] = field(default_factory=Future)

    @property
    def rows(self) -> int:
        return sum(t.num_rows for t in (self.calls, self.spans, self.content, self.metrics) if t is not None)


_TARGETS: tuple[tuple[str, tuple[Column, ...]], ...] = (
    ("calls", CALL_COLUMNS),
    ("spans", SPAN_COLUMNS),
    ("content_events", CONTENT_COLUMNS),
    ("metric_points", METRIC_COLUMNS),
)


class Writer:
    def __init__(
        self,
        db: duckdb.DuckDBPyConnection,
        stats: CollectorStats,
        *,
        queue_max_rows: int,
        batch_max_rows: int,
        batch_max_wait_s: float,
        retry_after_s: int,
        aggregates: AggregateTracker | None = None,
        commit_lock: Callable[[], contextlib.AbstractContextManager[object]] | None = None,
    ) -> None:
        """`aggregates` decides, once per transaction, which calls are aggregates (collector/aggregates.py).

        `commit_lock` (lake mode, core/catalog.py): held around each transaction, so the transactions of all the
        nodes of one lake are serialised. The lake has no keys: each transaction then leaves out every row
        already stored (by any node) and inserts plainly, so a span re-sent to another node is stored once."""
        self._db = db
        self._commit_lock = commit_lock
        self.keyless = commit_lock is not None
        self._stats = stats
        # received_at of calls is stamped here, inside the writer, just before their transaction; while it is
        # open, `open_since_us` holds the stamp, so the rollup job never declares that moment folded too early.
        self.stamp_lock = threading.Lock()
        self.open_since_us: int | None = None
        self._queue: deque[WriteJob] = deque()
        self._cond = threading.Condition()
        self._pending_rows = 0
        self._queue_max = queue_max_rows
        self._batch_max = batch_max_rows
        self._wait = batch_max_wait_s
        self._retry_after = retry_after_s
        self._closing = False
        self._aggregates = aggregates if aggregates is not None else AggregateTracker()
        self._thread = threading.Thread(target=self._run, name="callscope-writer", daemon=True)

    def start(self) -> None:
        records_table([], CALL_COLUMNS)  # the first Arrow conversion imports heavy modules: not on the first commit
        self._aggregates.warm(self._db)
        self._thread.start()

    @property
    def retry_after(self) -> int:
        return self._retry_after

    @property
    def queue_max(self) -> int:
        return self._queue_max

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    def has_room(self) -> bool:
        return self._pending_rows < self._queue_max

    def submit(self, job: WriteJob) -> Future[None]:
        """Queue a job; its future resolves once its rows are committed. Raises Overloaded or ShuttingDown."""
        rows = job.rows
        with self._cond:
            if self._closing:
                raise ShuttingDown("the collector is shutting down")
            if rows and self._pending_rows + rows > self._queue_max and self._pending_rows > 0:
                raise Overloaded(self._retry_after)
            if not rows:
                job.future.set_result(None)
                return job.future
            self._queue.append(job)
            self._pending_rows += rows
            self._stats.set("callscope_queue_spans", self._pending_rows)
            self._cond.notify()
        return job.future

    def close(self, timeout: float = 60.0) -> None:
        """Stop accepting, commit everything queued, stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- the writer thread -------------------------------------------------------------------------------

    def _take(self) -> list[WriteJob]:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if not self._queue:
                return []
            deadline = time.monotonic() + self._wait
            rows = 0
            while True:
                remaining = deadline - time.monotonic()
                if self._closing or remaining <= 0 or self._pending_rows >= self._batch_max:
                    break
                self._cond.wait(remaining)
            jobs = []
            while self._queue and (not jobs or rows + self._queue[0].rows <= self._batch_max):
                job = self._queue.popleft()
                rows += job.rows
                jobs.append(job)
            return jobs

    def _run(self) -> None:
        while True:
            jobs = self._take()
            if not jobs:
                return  # closing and drained
            rows = sum(j.rows for j in jobs)
            started = time.perf_counter()
            try:
                n_calls, n_spans = self._commit(jobs)
            except Exception as exc:
                log.exception("write transaction of %d rows failed; the requests are answered with an error", rows)
                self._stats.inc("callscope_commit_failures_total")
                for job in jobs:
                    job.future.set_exception(exc)
            else:
                elapsed = time.perf_counter() - started
                self._stats.inc("callscope_commits_total")
                self._stats.inc("callscope_commit_seconds_sum", elapsed)
                self._stats.max("callscope_commit_seconds_max", elapsed)
                self._stats.inc("callscope_calls_recorded_total", n_calls)
                self._stats.inc("callscope_spans_recorded_total", n_spans)
                for job in jobs:
                    job.future.set_result(None)
            finally:
                with self._cond:
                    self._pending_rows -= rows
                    self._stats.set("callscope_queue_spans", self._pending_rows)

    def _commit(self, jobs: list[WriteJob]) -> tuple[int, int]:
        tables = [j.calls for j in jobs if j.calls is not None and j.calls.num_rows]
        calls = None if not tables else tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        sorted_ = self._aggregates.sort(calls)
        calls = sorted_.calls
        if sorted_.resent:
            self._stats.inc("callscope_calls_deduplicated_total", sorted_.resent)
        batches: dict[str, list[pa.Table]] = {
            "calls": [calls] if calls is not None and calls.num_rows else [],
            "spans": [j.spans for j in jobs if j.spans is not None],
            "content_events": [j.content for j in jobs if j.content is not None],
            "metric_points": [j.metrics for j in jobs if j.metrics is not None],
        }
        if sorted_.demoted is not None:
            batches["spans"].append(sorted_.demoted)
        stored_aggregates = sorted_.stored_aggregates
        # A plain INSERT costs a third of an INSERT OR IGNORE (whose conflict handling has a large fixed cost
        # per statement and more per row), and the primary key still refuses duplicates: try it first, and
        # redo the transaction with OR IGNORE when a row is already stored (a client re-sent it). A re-send
        # of a recent call is known in advance (recent keys): OR IGNORE straight away.
        if self.keyless:
            with self._commit_lock():  # type: ignore[misc]
                self._transaction(batches, stored_aggregates, ignore=True)
        elif sorted_.resent:
            self._transaction(batches, stored_aggregates, ignore=True)
        else:
            try:
                self._transaction(batches, stored_aggregates, ignore=False)
            except duckdb.ConstraintException:
                self._stats.inc("callscope_commit_conflicts_total")
                self._transaction(batches, stored_aggregates, ignore=True)
        self._aggregates.committed(calls)
        n_spans = sum(t.num_rows for t in batches["spans"])
        return (calls.num_rows if calls is not None else 0), n_spans

    def _transaction(
        self, batches: dict[str, list[pa.Table]], stored_aggregates: list[tuple[bytes, bytes]], *, ignore: bool
    ) -> None:
        db = self._db
        verb = "INSERT OR IGNORE" if ignore else "INSERT"
        with self.stamp_lock:
            stamp_us = _now_us()
            self.open_since_us = stamp_us
        batches = {**batches, "calls": [_stamped(t, stamp_us) for t in batches["calls"]]}
        db.execute("BEGIN TRANSACTION")
        try:
            for table, columns in _TARGETS:
                tables = [t for t in batches[table] if t.num_rows]
                if tables:
                    batch = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
                    if table == "calls":
                        batch = self._without_stored(db, batch)
                        if not batch.num_rows:
                            continue
                    names = ", ".join(c.name for c in columns)
                    db.register("_callscope_batch", batch)
                    if self.keyless and table != "calls":
                        db.execute(_insert_new(table, names))
                    else:
                        db.execute(
                            # calls has no key to conflict on (m014): its re-sent rows were filtered out above.
                            f"{'INSERT' if table == 'calls' else verb} INTO {table} ({names})"  # noqa: S608
                            f" SELECT {names} FROM _callscope_batch"
                        )
            self._aggregates.demote_stored(db, stored_aggregates, keyless=self.keyless)
            db.execute("COMMIT")
        except Exception:
            db.execute("ROLLBACK")
            raise
        finally:
            self.open_since_us = None
            with contextlib.suppress(duckdb.Error):
                db.unregister("_callscope_batch")

    def _without_stored(self, db: duckdb.DuckDBPyConnection, calls: pa.Table) -> pa.Table:
        """The calls not stored yet. `calls` has no primary key (its index cost more bytes per call than all the
        columns together, see m014), so a re-sent call is found here: a join on (trace_id, span_id, start_time)
        whose start_time bounds DuckDB pushes into the scan of `calls`, so only the row groups of the batch's
        time span are read (about 10 ms for a recent batch at 10M calls)."""
        db.register("_callscope_keys", calls.select(["trace_id", "span_id", "start_time"]))
        try:
            stored = db.execute(
                "SELECT DISTINCT k.trace_id || k.span_id FROM _callscope_keys k JOIN calls c"
                " ON c.start_time = k.start_time AND c.trace_id = k.trace_id AND c.span_id = k.span_id"
            ).fetchall()
        finally:
            db.unregister("_callscope_keys")
        if not stored:
            return calls
        self._stats.inc("callscope_calls_deduplicated_total", len(stored))
        keys = pc.binary_join_element_wise(calls.column("trace_id"), calls.column("span_id"), b"")
        return calls.filter(pc.invert(pc.is_in(keys, value_set=pa.array([k for (k,) in stored], pa.binary()))))


# The key of each table (its primary key in the embedded store), for the lake, which has none.
KEYS = {"spans": ("trace_id", "span_id"), "content_events": ("event_id",), "metric_points": ("point_id",)}


def _insert_new(table: str, names: str, source: str = "_callscope_batch") -> str:
    """INSERT of the rows of `source` whose key is not stored yet, each key once: what INSERT OR IGNORE does on
    a key, for a keyless (lake) table."""
    key = KEYS[table]
    match = " AND ".join(f"s.{k} = b.{k}" for k in key)
    return (
        f"INSERT INTO {table} ({names}) SELECT {names} FROM"  # noqa: S608 (names from fixed tables)
        f" (SELECT DISTINCT ON ({', '.join(key)}) * FROM {source}) b"
        f" WHERE NOT EXISTS (SELECT 1 FROM {table} s WHERE {match})"
    )


def _now_us() -> int:
    return time.time_ns() // 1000


def _stamped(calls: pa.Table, stamp_us: int) -> pa.Table:
    """The calls with received_at = the moment their transaction starts (what the rollup job folds by)."""
    index = calls.schema.get_field_index("received_at")
    column = pa.array(np.full(calls.num_rows, stamp_us, dtype=np.int64)).cast(calls.schema.field(index).type)
    return calls.set_column(index, "received_at", column)
