"""The one path every receiver uses: normalise a decoded export request and await its commit."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from collector.decode import RESPONSE_TYPES, Signal
from collector.normalize import ContentOptions, SpanNormalizer
from collector.selfmetrics import CollectorStats
from collector.signals import content_rows, metric_rows
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


class Ingestor:
    def __init__(
        self, writer: Writer, normalizer: SpanNormalizer, stats: CollectorStats, content: ContentOptions
    ) -> None:
        self.writer = writer
        self.normalizer = normalizer
        self.stats = stats
        self.content = content
        # One thread normalises: more would only take turns on the GIL (and slow the writer thread down).
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="callscope-normalize")

    def prepare(self, signal: Signal, request: Any, project: str) -> tuple[WriteJob, ExportResult]:
        """CPU work (runs off the event loop): request -> rows."""
        received_us = time.time_ns() // 1000
        job = WriteJob()
        result = ExportResult()
        if signal is Signal.TRACES:
            out = self.normalizer.normalize(request, project, received_us)
            job.calls, job.spans = out.calls, out.spans
            self.stats.inc("callscope_spans_received_total", len(out.calls) + len(out.spans) + out.rejected)
            for reason, n in out.reasons.items():
                self.stats.inc("callscope_spans_rejected_total", n, reason=reason)
            if out.rejected:
                result = ExportResult(out.rejected, out.error_message())
        elif signal is Signal.LOGS:
            job.content, seen = content_rows(request, project, self.content, received_us)
            self.stats.inc("callscope_log_records_received_total", seen)
        else:
            job.metrics = metric_rows(request, project, received_us)
            self.stats.inc("callscope_metric_points_received_total", len(job.metrics))
        return job, result

    async def export(self, signal: Signal, request: Any, project: str) -> ExportResult:
        loop = asyncio.get_running_loop()
        job, result = await loop.run_in_executor(self._executor, self.prepare, signal, request, project)
        future = self.writer.submit(job)  # raises Overloaded / WriterClosed
        await asyncio.wrap_future(future)
        return result
