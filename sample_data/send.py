"""Sending generated calls to a running collector over real OTLP/HTTP (the OpenTelemetry SDK exporter).

Backfill sends a table of calls (spans carry their own start/end times); live mode keeps generating calls for the
time that passes and sends each trace once it has ended, at a gentle rate, until stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from tqdm import tqdm

from sample_data.otlp import Row, rows_of, spans_for
from sample_data.traffic import World, generate, intensity

log = logging.getLogger(__name__)
BATCH_SPANS = 2000


class SendError(RuntimeError):
    """The collector did not accept a batch after the exporter's own retries."""


def exporter_for(endpoint: str, headers: dict[str, str] | None = None) -> OTLPSpanExporter:
    """An OTLP/HTTP exporter for a collector base URL (http://host:4318): /v1/traces is appended."""
    return OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", headers=headers, timeout=30)


def _batches(rows: list[Row]) -> Iterator[tuple[list[ReadableSpan], int]]:
    """(spans, calls in them) in batches of about BATCH_SPANS spans; a trace never straddles two batches."""
    spans: list[ReadableSpan] = []
    calls = 0
    traces: dict[bytes, list[Row]] = {}
    for row in rows:
        traces.setdefault(row["trace_id"], []).append(row)
    for trace_rows in traces.values():
        spans.extend(spans_for(trace_rows))
        calls += len(trace_rows)
        if len(spans) >= BATCH_SPANS:
            yield spans, calls
            spans, calls = [], 0
    if spans:
        yield spans, calls


@dataclass
class SendStats:
    calls: int = 0
    spans: int = 0
    seconds: float = 0.0


def send_rows(endpoint: str, rows: list[Row], *, progress: bool = False, workers: int = 2) -> SendStats:
    """Send the calls of `rows` in batches. `workers` threads, each with its own exporter: while one waits for the
    collector to commit a batch, the other builds and encodes the next."""
    stats = SendStats()
    started = time.perf_counter()
    local = threading.local()

    def export(batch: tuple[list[ReadableSpan], int]) -> tuple[int, int]:
        spans, calls = batch
        if not hasattr(local, "exporter"):
            local.exporter = exporter_for(endpoint)
        if local.exporter.export(spans) is not SpanExportResult.SUCCESS:
            raise SendError(f"the collector at {endpoint} did not accept a batch of {len(spans)} spans")
        return calls, len(spans)

    with (
        tqdm(total=len(rows), unit="call", disable=not progress, desc="sending") as bar,
        ThreadPoolExecutor(workers, thread_name_prefix="otlp-send") as pool,
    ):
        for calls, spans in pool.map(export, _batches(rows)):
            stats.calls += calls
            stats.spans += spans
            bar.update(calls)
    stats.seconds = time.perf_counter() - started
    return stats


def send_table(endpoint: str, table: pa.Table, *, progress: bool = False) -> SendStats:
    """Backfill: every call of `table` (with the spans around them) in time order."""
    return send_rows(endpoint, rows_of(table.sort_by("start_time")), progress=progress)


def live(
    endpoint: str,
    world: World,
    *,
    calls_per_minute: float,
    stop: threading.Event,
    seed: int = 0,
    tick_s: float = 2.0,
) -> int:
    """Generate the calls of the time that passes (rate x the diurnal shape, which peaks at ~1.2) and send each
    trace once it has ended. Returns the number of calls sent when `stop` is set."""
    rng = np.random.default_rng([seed, int(time.time())])
    pending: list[Row] = []
    sent = 0
    last_us = int(time.time() * 1e6)
    while not stop.wait(tick_s):
        now_us = int(time.time() * 1e6)
        expected = calls_per_minute * (now_us - last_us) / 60e6 * float(intensity(np.array([now_us]))[0])
        n = int(rng.poisson(expected))
        if n:
            pending.extend(rows_of(generate(world, rng, n, start_us=last_us, end_us=now_us)))
        last_us = now_us
        ends: dict[bytes, int] = {}
        for r in pending:
            ends[r["trace_id"]] = max(ends.get(r["trace_id"], 0), r["end_time"])
        due = [r for r in pending if ends[r["trace_id"]] <= now_us]
        if not due:
            continue
        pending = [r for r in pending if ends[r["trace_id"]] > now_us]
        try:
            sent += send_rows(endpoint, due, workers=1).calls
        except SendError as exc:  # a live demo carries on when the collector is briefly unavailable
            log.warning("%s", exc)
    return sent
