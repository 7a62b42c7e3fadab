"""Synthetic call rows written straight into a real store file, for tests that need known data behind a server.

Rows are plain dicts of every stored column, so a test can compute the expected statistics independently
(numpy/scipy over the same dicts) and compare them with what the API answers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from core.records import CALL_COLUMNS, arrow_schema
from core.store import connect

MODELS = (
    ("openai", "gpt-4o-mini", 0.15e-6, 0.6e-6),
    ("openai", "gpt-4.1", 2e-6, 8e-6),
    ("anthropic", "claude-sonnet-4", 3e-6, 15e-6),
    ("google", "gemini-2.5-flash", 0.3e-6, 2.5e-6),
    ("acme", "acme-large", None, None),  # unpriced
)
SERVICES = ("support-bot", "search-rerank", "summarizer", "agent")


def make_calls(
    n: int, start: datetime, end: datetime, *, seed: int = 0, error_share: float = 0.05
) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    span = (end - start).total_seconds()
    rows = []
    for i in range(n):
        provider, model, in_rate, out_rate = MODELS[int(rng.integers(len(MODELS)))]
        t0 = start + timedelta(seconds=float(rng.uniform(0, span)))
        duration = float(np.round(rng.lognormal(6.5, 0.6), 3))
        streaming = bool(rng.random() < 0.5)
        ttft = float(np.round(duration * rng.uniform(0.05, 0.4), 3)) if streaming else None
        error = bool(rng.random() < error_share)
        http_status = (429 if rng.random() < 0.5 else 500) if error else None
        input_tokens = int(rng.integers(10, 4000))
        output_tokens = 0 if error else int(rng.integers(1, 800))
        cache_read = int(rng.integers(0, input_tokens)) if provider == "anthropic" else 0
        reasoning = int(rng.integers(0, output_tokens + 1)) if model == "gpt-4.1" else 0
        cost = None if in_rate is None else input_tokens * in_rate + output_tokens * out_rate
        rows.append(
            {
                "trace_id": rng.bytes(16),
                "span_id": rng.bytes(8),
                "parent_span_id": None,
                "project": "default",
                "service": SERVICES[int(rng.integers(len(SERVICES)))],
                "environment": "prod" if rng.random() < 0.8 else "staging",
                "start_time": t0,
                "end_time": t0 + timedelta(milliseconds=duration),
                "duration_ms": duration,
                "ttft_ms": ttft,
                "provider": provider,
                "operation": "chat",
                "request_model": model,
                "response_model": model,
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cache_read_tokens": cache_read,
                "cache_write_tokens": 0,
                "reasoning_tokens": reasoning,
                "cost_usd": cost,
                "pricing": "unpriced" if cost is None else "priced",
                "price_source": None if cost is None else "test",
                "reported_cost_usd": None,
                "streaming": streaming,
                "status": "error" if error else "ok",
                "error_type": ("RateLimitError" if http_status == 429 else "InternalServerError") if error else None,
                "http_status": http_status,
                "finish_reason": None if error else "stop",
                "user_id": f"user-{int(rng.zipf(1.6)) % 50}",
                "session_id": f"session-{i // 5}",
                "tags": ["beta"] if rng.random() < 0.3 else [],
                "metadata": [("team", "search" if rng.random() < 0.5 else "growth")],
                "convention": "otel_genai",
                "span_name": f"chat {model}",
                "input_content": None,
                "output_content": None,
                "received_at": datetime.now(UTC),
                "error_message": (f"Error code: {http_status} - test failure {i}" if error else None),
                "provider_source": "client",
                "service_version": None,
                "model": model,
                "price_entry_id": None,
            }
        )
    return rows


def store_rows(data_dir: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows into <data_dir>/callscope.duckdb (created and migrated if missing). The server must be stopped."""
    names = [c.name for c in CALL_COLUMNS]
    for row in rows[:1]:
        assert list(row) == names, f"a call row has the columns of CALL_COLUMNS, in order: {list(row)} != {names}"
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "callscope.duckdb"
    db = connect(path)
    try:
        db.register("new_calls", pa.Table.from_pylist(rows, schema=arrow_schema(CALL_COLUMNS)))
        db.execute("INSERT INTO calls SELECT * FROM new_calls")
        db.execute("CHECKPOINT")
    finally:
        db.close()
    return path
