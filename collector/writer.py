"""The single writer: one thread owns the write connection and commits Arrow batches.

Receivers decode and `submit`; the writer groups many requests into one transaction (never row by row) and
resolves each request's future only after COMMIT returned, so a 200 means the rows are durable (DuckDB
writes and syncs its WAL at commit). The queue is bounded in rows: when it is full `submit` raises
`Overloaded` and the receiver answers 429/UNAVAILABLE with Retry-After instead of buffering without bound.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from collector.normalize import call_as_span
from collector.prepare import arrow_table
from collector.selfmetrics import CollectorStats
from core.records import (
    CALL_COLUMNS,
    CONTENT_COLUMNS,
    METRIC_COLUMNS,
    SPAN_COLUMNS,
    Column,
)

log = logging.getLogger(__name__)


class Overloaded(Exception):
    """The write queue is full; the client should retry after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"collector overloaded: retry after {retry_after}s")
        self.retry_after = retry_after


class WriterClosed(Exception):
    """The server is shutting down and accepts no new work."""


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


class _BoundedKeys:
    """An insertion-ordered set that forgets its oldest keys beyond `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._keys: dict[tuple[bytes, bytes], None] = {}

    def add(self, key: tuple[bytes, bytes]) -> None:
        self._keys[key] = None
        if len(self._keys) > self.limit:
            for _ in range(len(self._keys) - self.limit):
                self._keys.pop(next(iter(self._keys)))

    def add_many(self, keys: Iterable[tuple[bytes, bytes]]) -> None:
        self._keys.update(dict.fromkeys(keys))
        excess = len(self._keys) - self.limit
        if excess > 0:
            for key in list(itertools.islice(self._keys, excess)):
                del self._keys[key]

    def __contains__(self, key: object) -> bool:
        return key in self._keys


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
        recent_call_memory: int = 500_000,
    ) -> None:
        self._db = db
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
        self._recent_calls = _BoundedKeys(recent_call_memory)  # (trace, span) of recently stored calls
        self._recent_parents = _BoundedKeys(recent_call_memory)  # (trace, parent) named by recent calls
        self._thread = threading.Thread(target=self._run, name="callscope-writer", daemon=True)

    def start(self) -> None:
        arrow_table([], CALL_COLUMNS)  # the first Arrow conversion imports heavy modules: not on the first commit
        self._warm_recent()
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
        """Queue a job; its future resolves once its rows are committed. Raises Overloaded or WriterClosed."""
        rows = job.rows
        with self._cond:
            if self._closing:
                raise WriterClosed("the collector is shutting down")
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
        calls, demoted, demote_stored, resent = self._sort_calls(
            [j.calls for j in jobs if j.calls is not None and j.calls.num_rows]
        )
        batches: dict[str, list[pa.Table]] = {
            "calls": [calls] if calls is not None and calls.num_rows else [],
            "spans": [j.spans for j in jobs if j.spans is not None],
            "content_events": [j.content for j in jobs if j.content is not None],
            "metric_points": [j.metrics for j in jobs if j.metrics is not None],
        }
        if demoted:
            batches["spans"].append(arrow_table([call_as_span(c) for c in demoted], SPAN_COLUMNS))
        # A plain INSERT costs a third of an INSERT OR IGNORE (whose conflict handling has a large fixed cost
        # per statement and more per row), and the primary key still refuses duplicates: try it first, and
        # redo the transaction with OR IGNORE when a row is already stored (a client re-sent it). A re-send
        # of a recent call is known in advance (recent keys): OR IGNORE straight away.
        if resent:
            self._transaction(batches, demote_stored, ignore=True)
        else:
            try:
                self._transaction(batches, demote_stored, ignore=False)
            except duckdb.ConstraintException:
                self._stats.inc("callscope_commit_conflicts_total")
                self._transaction(batches, demote_stored, ignore=True)
        if calls is not None and calls.num_rows:
            traces = calls.column("trace_id").to_pylist()
            self._recent_calls.add_many(zip(traces, calls.column("span_id").to_pylist(), strict=True))
            self._recent_parents.add_many(
                (t, p) for t, p in zip(traces, calls.column("parent_span_id").to_pylist(), strict=True) if p is not None
            )
        n_spans = sum(t.num_rows for t in batches["spans"])
        return (calls.num_rows if calls is not None else 0), n_spans

    def _transaction(
        self, batches: dict[str, list[pa.Table]], demote_stored: list[tuple[bytes, bytes]], *, ignore: bool
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
                    names = ", ".join(c.name for c in columns)
                    db.register("_callscope_batch", batch)
                    db.execute(
                        f"{verb} INTO {table} ({names}) SELECT {names} FROM _callscope_batch"  # noqa: S608 (constants)
                    )
            if demote_stored:
                self._demote_stored(demote_stored)
            db.execute("COMMIT")
        except Exception:
            db.execute("ROLLBACK")
            raise
        finally:
            self.open_since_us = None
            with contextlib.suppress(duckdb.Error):
                db.unregister("_callscope_batch")

    def _sort_calls(
        self, tables: list[pa.Table]
    ) -> tuple[pa.Table | None, list[dict[str, Any]], list[tuple[bytes, bytes]], bool]:
        """Count each call once across requests: (calls to store, calls demoted to spans as rows, keys of
        stored calls that turned out to be aggregates, whether a call was stored recently already). A call is
        an aggregate when a call of the same trace names it as parent, in this transaction or a recent one; a
        re-sent call in the same transaction is stored once (the first)."""
        if not tables:
            return None, [], [], False
        calls = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        traces = calls.column("trace_id").to_pylist()
        spans = calls.column("span_id").to_pylist()
        parents = calls.column("parent_span_id").to_pylist()
        recent_parents, recent_calls = self._recent_parents, self._recent_calls
        kept: dict[tuple[bytes, bytes], int] = {}
        demoted: list[int] = []
        demote_stored: list[tuple[bytes, bytes]] = []
        resent = False
        for i, (trace_id, span_id, parent) in enumerate(zip(traces, spans, parents, strict=True)):
            key = (trace_id, span_id)
            if key in recent_calls:
                resent = True
            if key in recent_parents:
                demoted.append(i)  # a child call was stored before: this is an aggregate
                continue
            if parent is not None:
                parent_key = (trace_id, parent)
                j = kept.pop(parent_key, None)
                if j is not None:
                    demoted.append(j)
                elif parent_key in recent_calls:
                    demote_stored.append(parent_key)
            kept.setdefault(key, i)
        if len(kept) == calls.num_rows:
            return calls, [], demote_stored, resent
        keep = pa.array(sorted(kept.values()), pa.int64())
        demoted_rows = [_row_as_call(r) for r in calls.take(pa.array(sorted(demoted), pa.int64())).to_pylist()]
        return calls.take(keep), demoted_rows, demote_stored, resent

    def _demote_stored(self, keys: list[tuple[bytes, bytes]]) -> None:
        """Calls stored by an earlier commit turned out to be aggregates of a call that arrived later."""
        keys_table = pa.table({"trace_id": [k[0] for k in keys], "span_id": [k[1] for k in keys]})
        self._db.register("_callscope_demote", keys_table)
        try:
            self._db.execute(
                """
                INSERT OR IGNORE INTO spans
                SELECT c.trace_id, c.span_id, c.parent_span_id, c.project, c.service, c.span_name, 0,
                       c.start_time, c.end_time, c.duration_ms, c.status, c.error_type,
                       to_json({'callscope.aggregate': true, 'request_model': c.request_model,
                                'input_tokens': c.input_tokens, 'output_tokens': c.output_tokens,
                                'convention': c.convention})::VARCHAR,
                       c.received_at
                FROM calls c JOIN _callscope_demote d USING (trace_id, span_id)
                """
            )
            self._db.execute(
                "DELETE FROM calls WHERE (trace_id, span_id) IN (SELECT (trace_id, span_id) FROM _callscope_demote)"
            )
        finally:
            with contextlib.suppress(duckdb.Error):
                self._db.unregister("_callscope_demote")

    def _warm_recent(self) -> None:
        """After a restart, remember the most recent calls so cross-batch aggregates are still recognised."""
        rows = self._db.execute(
            "SELECT trace_id, span_id, parent_span_id FROM calls ORDER BY received_at DESC LIMIT ?",
            [self._recent_calls.limit],
        ).fetchall()
        for trace_id, span_id, parent in reversed(rows):
            self._recent_calls.add((trace_id, span_id))
            if parent is not None:
                self._recent_parents.add((trace_id, parent))


def _row_as_call(row: dict[str, Any]) -> dict[str, Any]:
    """A call row read back from Arrow: timestamps as the microsecond integers normalisation produces."""
    for key in ("start_time", "end_time", "received_at"):
        value = row[key]
        if value is not None and not isinstance(value, int):
            row[key] = (value - _EPOCH) // _MICROSECOND
    return row


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _now_us() -> int:
    return time.time_ns() // 1000


def _stamped(calls: pa.Table, stamp_us: int) -> pa.Table:
    """The calls with received_at = the moment their transaction starts (what the rollup job folds by)."""
    index = calls.schema.get_field_index("received_at")
    column = pa.array(np.full(calls.num_rows, stamp_us, dtype=np.int64)).cast(calls.schema.field(index).type)
    return calls.set_column(index, "received_at", column)
