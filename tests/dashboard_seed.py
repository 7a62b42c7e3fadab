"""A store for dashboard tests: synthetic calls (tests/calls_factory.py) plus one agent trace with a root span and
two model calls under it, so the call page has a real span tree to draw."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from core.records import SPAN_COLUMNS, arrow_schema
from core.store import connect
from tests.calls_factory import make_calls, store_rows

AGENT_TRACE = bytes.fromhex("ab" * 16)
ROOT_SPAN = bytes.fromhex("01" * 8)
CHILD_SPANS = (bytes.fromhex("02" * 8), bytes.fromhex("03" * 8))


def agent_trace(start: datetime, template: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Two sequential model calls (the second one slower) under an `agent run` span."""
    calls = []
    offset = timedelta(milliseconds=40)
    for i, span_id in enumerate(CHILD_SPANS):
        duration = 800.0 if i == 0 else 1900.0
        t0 = start + offset
        calls.append(
            {
                **template,
                "trace_id": AGENT_TRACE,
                "span_id": span_id,
                "parent_span_id": ROOT_SPAN,
                "service": "agent",
                "start_time": t0,
                "end_time": t0 + timedelta(milliseconds=duration),
                "duration_ms": duration,
                "span_name": f"chat step-{i + 1}",
                "session_id": "session-agent",
            }
        )
        offset += timedelta(milliseconds=duration + 30)
    root = {
        "trace_id": AGENT_TRACE,
        "span_id": ROOT_SPAN,
        "parent_span_id": None,
        "project": "default",
        "service": "agent",
        "name": "agent run",
        "kind": 1,
        "start_time": start,
        "end_time": start + offset,
        "duration_ms": offset.total_seconds() * 1000,
        "status": "ok",
        "status_message": None,
        "attributes": '{"agent.name": "planner"}',
        "received_at": datetime.now(UTC),
    }
    return calls, root


def seed(
    data_dir: Path, start: datetime, end: datetime, n: int = 2000, seed: int = 5, trace_at: datetime | None = None
) -> list[dict[str, Any]]:
    """Write n calls in [start, end) plus the agent trace (mid-range unless trace_at); return the call rows."""
    rows = make_calls(n, start, end, seed=seed)
    trace_calls, root = agent_trace(trace_at or start + (end - start) / 2, rows[0])
    rows += trace_calls
    store_rows(data_dir, rows)
    db = connect(data_dir / "callscope.duckdb")
    try:
        db.register("new_spans", pa.Table.from_pylist([root], schema=arrow_schema(SPAN_COLUMNS)))
        db.execute("INSERT INTO spans SELECT * FROM new_spans")
        db.execute("CHECKPOINT")
    finally:
        db.close()
    return rows
