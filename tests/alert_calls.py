"""Calls placed at chosen instants, and the alerting parts over a real store file, for the alert tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

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
