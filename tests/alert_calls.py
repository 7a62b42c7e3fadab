"""Calls placed at chosen instants, and the alerting parts over a real store file, for the alert tests; and calls
sent to a running server over OTLP with their own timestamps, so that they breach (or clear) real rules."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from alerts.evaluate import Evaluator
from alerts.queries import StoreSource, connection_cursor
from alerts.store import DuckStateStore
from core.store import connect
from tests.calls_factory import make_calls, store_rows

DASHBOARD = "http://127.0.0.1:8501"
_TEMPLATE = make_calls(1, datetime(2026, 1, 1), datetime(2026, 1, 2), seed=3)[0]
_IDS = itertools.count(1)


def call(
    t: datetime,
    *,
    model: str = "gpt-4.1",
    error: bool = False,
    duration_ms: float = 500.0,
    service: str = "support-bot",
    http_status: int | None = None,
    ttft_ms: float | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """One call starting at `t` (a unique trace/span id), ok or failed; `fields` override stored columns."""
    n = next(_IDS)
    status = http_status if http_status is not None else (500 if error else None)
    return {
        **_TEMPLATE,
        "trace_id": n.to_bytes(16, "big"),
        "span_id": n.to_bytes(8, "big"),
        "start_time": t,
        "end_time": t + timedelta(milliseconds=duration_ms),
        "duration_ms": duration_ms,
        "ttft_ms": ttft_ms,
        "streaming": ttft_ms is not None,
        "request_model": model,
        "response_model": model,
        "model": model,  # the canonical name (as the collector would store it for these names)
        "service": service,
        "status": "error" if error or http_status else "ok",
        "http_status": status,
        "error_type": "InternalServerError" if error else None,
        "error_message": "boom" if error else None,
        "metadata": [],
        "tags": [],
        **fields,
    }


def minute_of_calls(start: datetime, n: int, errors: int, **kwargs: Any) -> list[dict[str, Any]]:
    """`n` calls spread over the minute from `start`, the first `errors` of them failed."""
    return [call(start + timedelta(seconds=1 + i * 50 / max(n, 1)), error=i < errors, **kwargs) for i in range(n)]


def rows_in(rows: Iterable[dict[str, Any]], start: datetime, end: datetime, **match: Any) -> list[dict[str, Any]]:
    return [r for r in rows if start <= r["start_time"] < end and all(r.get(k) == v for k, v in match.items())]


def error_rate(rows: list[dict[str, Any]]) -> float | None:
    return float(np.mean([r["status"] == "error" for r in rows])) if rows else None


class Store:
    """A real store file holding `rows`, with an evaluator and its state store on it."""

    def __init__(self, data_dir: Path, rows: list[dict[str, Any]]) -> None:
        store_rows(data_dir, rows) if rows else data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "callscope.duckdb"
        self.db: duckdb.DuckDBPyConnection = connect(self.path)
        self.states = DuckStateStore(self.db)
        self.evaluator = Evaluator(StoreSource(lambda: connection_cursor(self.db)), self.states, DASHBOARD)

    def close(self) -> None:
        self.db.execute("CHECKPOINT")
        self.db.close()


# -- calls sent to a running server, through the real OpenTelemetry SDK -----------------------------------------


@dataclass(frozen=True)
class SentCall:
    """A chat call as a client reports it: when it started, whether it failed, which service made it."""

    start: datetime
    error: bool = False
    service: str = "support-bot"
    model: str = "gpt-4o-mini"
    duration_ms: float = 800.0


def slot_start(now: datetime, seconds: int = 10) -> datetime:
    """The start of the last whole `seconds` slot before `now` (slots are aligned to the epoch, as evaluation
    instants are). Calls placed inside one slot enter and leave an evaluation window at the same instant."""
    epoch = int(now.timestamp()) // seconds * seconds
    return datetime.fromtimestamp(epoch - seconds, UTC)


def calls_in_slot(slot: datetime, errors: Sequence[bool], seconds: int = 10, **fields: Any) -> list[SentCall]:
    """One call per flag, spread over [slot + 0.5s, slot + seconds - 0.5s)."""
    step = (seconds - 1) / max(len(errors), 1)
    return [SentCall(slot + timedelta(seconds=0.5 + i * step), error=e, **fields) for i, e in enumerate(errors)]


def export_calls(base_url: str, calls: Sequence[SentCall]) -> None:
    """Send `calls` as GenAI chat spans with their own timestamps through the OTel SDK's OTLP/HTTP exporter: one
    export request per service. The server answers 200 only once a request's rows are committed together, so an
    evaluation sees all calls of a service or none of them."""
    by_service: dict[str, list[SentCall]] = {}
    for c in calls:
        by_service.setdefault(c.service, []).append(c)
    for service, group in by_service.items():
        memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        tracer = provider.get_tracer("callscope.tests")
        for c in group:
            start_ns = int(c.start.timestamp() * 1e9)
            attributes = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": c.model,
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 0 if c.error else 20,
            }
            span = tracer.start_span(
                f"chat {c.model}", kind=SpanKind.CLIENT, attributes=attributes, start_time=start_ns
            )
            if c.error:
                span.set_attribute("error.type", "InternalServerError")
                span.set_status(Status(StatusCode.ERROR, "Error code: 500"))
            span.end(end_time=start_ns + int(c.duration_ms * 1e6))
        exporter = OTLPSpanExporter(endpoint=f"{base_url}/v1/traces", timeout=30)
        try:
            assert exporter.export(memory.get_finished_spans()) is SpanExportResult.SUCCESS
        finally:
            exporter.shutdown()
            provider.shutdown()
