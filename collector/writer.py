"""The single writer: one thread owns the write connection and commits Arrow batches.

Receivers decode and `submit`; the writer groups many requests into one transaction (never row by row) and
resolves each request's future only after COMMIT returned, so a 200 means the rows are durable (DuckDB
writes and syncs its WAL at commit). The queue is bounded in rows: when it is full `submit` raises
`Overloaded` and the receiver answers 429/UNAVAILABLE with Retry-After instead of buffering without bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from callscope.records import (
    CALL_COLUMNS,
    CONTENT_COLUMNS,
    METRIC_COLUMNS,
    SPAN_COLUMNS,
    Column,
    arrow_schema,
)
from collector.normalize import call_as_span
from collector.selfmetrics import CollectorStats

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
    calls: list[dict[str, Any]] = field(default_factory=list)
    spans: list[dict[str, Any]] = field(default_factory=list)
    content: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    future: Future[None] = field(default_factory=Future)

    @property
    def rows(self) -> int:
        return len(self.calls) + len(self.spans) + len(self.content) + len(self.metrics)


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

    def __contains__(self, key: object) -> bool:
        return key in self._keys


_SCHEMAS: dict[tuple[Column, ...], pa.Schema] = {}


def _table(rows: list[dict[str, Any]], columns: tuple[Column, ...]) -> pa.Table:
    schema = _SCHEMAS.get(columns)
    if schema is None:
        schema = _SCHEMAS[columns] = arrow_schema(columns)
    return pa.Table.from_pylist(rows, schema=schema)


_TARGETS: tuple[tuple[str, str, tuple[Column, ...]], ...] = (
    ("calls", "calls", CALL_COLUMNS),
    ("spans", "spans", SPAN_COLUMNS),
    ("content", "content_events", CONTENT_COLUMNS),
    ("metrics", "metric_points", METRIC_COLUMNS),
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
        _table([], CALL_COLUMNS)  # the first Arrow conversion imports heavy modules: not on the first commit
        self._warm_recent()
        self._thread.start()

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
        calls: dict[tuple[bytes, bytes], dict[str, Any]] = {}
        spans: list[dict[str, Any]] = []
        content: list[dict[str, Any]] = []
        metrics: list[dict[str, Any]] = []
        demote_stored: list[tuple[bytes, bytes]] = []
        for job in jobs:
            spans.extend(job.spans)
            content.extend(job.content)
            metrics.extend(job.metrics)
            for call in job.calls:
                key = (call["trace_id"], call["span_id"])
                if key in self._recent_parents:
                    spans.append(call_as_span(call))  # a child call was stored before: this is an aggregate
                    continue
                parent_key = (call["trace_id"], call["parent_span_id"])
                if call["parent_span_id"] is not None:
                    if parent_key in calls:
                        spans.append(call_as_span(calls.pop(parent_key)))
                    elif parent_key in self._recent_calls:
                        demote_stored.append(parent_key)
                calls.setdefault(key, call)
        db = self._db
        db.execute("BEGIN TRANSACTION")
        try:
            for name, table, columns in _TARGETS:
                rows = {
                    "calls": list(calls.values()),
                    "spans": spans,
                    "content": content,
                    "metrics": metrics,
                }[name]
                if rows:
                    batch = _table(rows, columns)
                    names = ", ".join(c.name for c in columns)
                    db.register("_callscope_batch", batch)
                    db.execute(
                        f"INSERT OR IGNORE INTO {table} ({names}) SELECT {names} FROM _callscope_batch"  # noqa: S608 (constants)
                    )
                    db.unregister("_callscope_batch")
            if demote_stored:
                self._demote_stored(demote_stored)
            db.execute("COMMIT")
        except Exception:
            db.execute("ROLLBACK")
            raise
        for trace_id, span_id in calls:
            self._recent_calls.add((trace_id, span_id))
        for call in calls.values():
            if call["parent_span_id"] is not None:
                self._recent_parents.add((call["trace_id"], call["parent_span_id"]))
        return len(calls), len(spans)

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
