"""The one path every receiver uses: prepare a request body (decode, normalise) and await its commit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from collector.decode import RESPONSE_TYPES, Encoding, Signal
from collector.errors import Overloaded
from collector.prepare import Preparer
from collector.selfmetrics import CollectorStats
from collector.workers import WorkerPool
from collector.writer import WriteJob, Writer


@dataclass(frozen=True)
class ExportResult:
    """What to tell the client: how many items were rejected (partial success) and why."""

    rejected: int = 0
    message: str = ""

    def response(self, signal: Signal) -> Any:
        """The Export*ServiceResponse to send: empty on full success, else partial_success naming the rejects."""
        response = RESPONSE_TYPES[signal]()
        if self.rejected:
            partial = response.partial_success
            if signal is Signal.TRACES:
                partial.rejected_spans = self.rejected
            elif signal is Signal.LOGS:
                partial.rejected_log_records = self.rejected
            else:
                partial.rejected_data_points = self.rejected
            partial.error_message = self.message
        return response


Export = Callable[[Signal, Encoding, str | None, bytes, str], Awaitable[ExportResult]]
"""What a receiver is given to hand a request over: (signal, encoding, Content-Encoding, body, project) -> the
result to answer with. It raises DecodeFailure, collector.errors.Overloaded / ShuttingDown, or any other
exception for a failure of the collector itself."""


class Ingestor:
    """Receivers hand over raw bodies; this prepares them (in worker processes, or in one thread when there are
    none) and awaits their commit."""

    def __init__(
        self,
        writer: Writer,
        stats: CollectorStats,
        *,
        preparer: Preparer | None = None,
        pool: WorkerPool | None = None,
    ) -> None:
        if (preparer is None) == (pool is None):
            raise ValueError("give either a preparer (in-process) or a worker pool")
        self.writer = writer
        self.stats = stats
        self.preparer = preparer
        self.pool = pool
        # Without workers one thread prepares: more would only take turns on the GIL (and slow the writer down).
        self._executor = None if pool else ThreadPoolExecutor(max_workers=1, thread_name_prefix="callscope-prepare")
        self._preparing = 0  # requests being decoded/normalised now (event-loop state: no lock)
        self._rows_per_request = 0.0  # running mean of the rows a request brings

    def has_room(self) -> bool:
        """Whether the writer's queue has room for one more request, counting the requests still being prepared
        at the mean request size: under overload a request is refused before its decoding is paid for, not
        after (their rows would find the queue full)."""
        if not self.writer.has_room():
            return False
        expected = self.writer.pending_rows + self._preparing * self._rows_per_request
        return self._preparing == 0 or expected < self.writer.queue_max

    async def export_raw(
        self, signal: Signal, encoding: Encoding, content_encoding: str | None, body: bytes, project: str
    ) -> ExportResult:
        """Decode, normalise and commit a request body. Raises DecodeFailure (400/413/415), Overloaded (the
        queue is full: decided before any decoding work is spent), ShuttingDown or WorkerError."""
        if not self.has_room():
            raise Overloaded(self.writer.retry_after)
        received_us = time.time_ns() // 1000
        self._preparing += 1
        try:
            if self.pool is not None:
                prepared = await self.pool.prepare(signal, encoding, content_encoding, body, project, received_us)
            else:
                assert self.preparer is not None
                loop = asyncio.get_running_loop()
                prepared = await loop.run_in_executor(
                    self._executor,
                    self.preparer.prepare_raw,
                    signal,
                    encoding,
                    content_encoding,
                    body,
                    project,
                    received_us,
                )
        finally:
            self._preparing -= 1
        prepared.raise_failure()
        for name, amount, labels in prepared.counters:
            self.stats.inc(name, amount, **labels)
        job = WriteJob(calls=prepared.calls, spans=prepared.spans, content=prepared.content, metrics=prepared.metrics)
        mean = self._rows_per_request
        self._rows_per_request = job.rows if mean == 0 else 0.9 * mean + 0.1 * job.rows
        future = self.writer.submit(job)  # raises Overloaded / ShuttingDown
        await asyncio.wrap_future(future)
        return ExportResult(prepared.rejected, prepared.message)

    def close(self) -> None:
        """Stop the workers (after the receivers stopped, so nothing new arrives)."""
        if self.pool is not None:
            self.pool.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
