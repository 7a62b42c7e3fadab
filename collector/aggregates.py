"""Count each model call once: a call that has a descendant call is an aggregate and is stored as a plain span.

Frameworks record a model call twice: a Vercel AI SDK root over its doGenerate child, a framework span over the
provider span. Whichever call has a descendant call is the aggregate. This is decided in two places, both here:
- within one request, by the normaliser (`collapse_aggregates`), over the calls and spans of that request;
- across requests, by `AggregateTracker`, which the writer asks once per transaction: it remembers the recent
  calls and the parents they named, demotes a call of the transaction whose child call was stored before, and
  demotes a stored call when its child arrives later.
Every demotion makes its span with `call_as_span`, so a demoted call keeps the same fields whichever path did it.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
import orjson
import pyarrow as pa

from core.records import CALL_COLUMNS, SPAN_COLUMNS, CallRecord, SpanRecord, records_table

# The call's figures kept in the demoted span's attributes (those that are set).
AGGREGATE_FIELDS = (
    "provider",
    "operation",
    "request_model",
    "response_model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "convention",
)
_MAX_DEPTH = 64  # ancestors walked per call (a cycle or an absurd depth must not hang the normaliser)


def call_as_span(call: CallRecord) -> SpanRecord:
    """An aggregate call demoted to a plain span row (its figures kept in the attributes)."""
    summary = {k: v for k in AGGREGATE_FIELDS if (v := getattr(call, k)) is not None}
    summary["callscope.aggregate"] = True
    return SpanRecord(
        trace_id=call.trace_id,
        span_id=call.span_id,
        parent_span_id=call.parent_span_id,
        project=call.project,
        service=call.service,
        name=call.span_name,
        kind=0,
        start_time=call.start_time,
        end_time=call.end_time,
        duration_ms=call.duration_ms,
        status=call.status,
        status_message=call.error_type,
        attributes=orjson.dumps(summary).decode(),
        received_at=call.received_at,
    )


def collapse_aggregates(calls: list[CallRecord], spans: list[SpanRecord]) -> tuple[list[CallRecord], list[SpanRecord]]:
    """(the calls that are not aggregates, the aggregates as spans) within one request: a call with a descendant
    call among the request's calls, through any chain of the request's spans, is an aggregate."""
    if len(calls) < 2:
        return calls, []
    calls_by_key = {(c.trace_id, c.span_id): c for c in calls}
    parents: dict[tuple[bytes, bytes], bytes | None] = {k: c.parent_span_id for k, c in calls_by_key.items()}
    for s in spans:
        parents[(s.trace_id, s.span_id)] = s.parent_span_id
    aggregates: set[tuple[bytes, bytes]] = set()
    for (trace_id, _), call in calls_by_key.items():
        parent = call.parent_span_id
        depth = 0
        while parent is not None and depth < _MAX_DEPTH:
            key = (trace_id, parent)
            if key in calls_by_key:
                aggregates.add(key)
            parent = parents.get(key)
            depth += 1
    if not aggregates:
        return calls, []
    kept, demoted = [], []
    for c in calls:
        if (c.trace_id, c.span_id) in aggregates:
            demoted.append(call_as_span(c))
        else:
            kept.append(c)
    return kept, demoted


@dataclass
class Sorted:
    """A transaction's calls after the cross-request check."""

    calls: pa.Table | None  # the calls to store
    demoted: pa.Table | None  # calls of this transaction that are aggregates, as span rows
    stored_aggregates: list[tuple[bytes, bytes]]  # (trace, span) of stored calls that turned out to be aggregates
    resent: int  # calls of this transaction stored recently, left out (then the rest is inserted with OR IGNORE)


class _BoundedKeys:
    """An insertion-ordered set that forgets its oldest keys beyond `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._keys: dict[tuple[bytes, bytes], None] = {}

    def add_many(self, keys: Iterable[tuple[bytes, bytes]]) -> None:
        self._keys.update(dict.fromkeys(keys))
        excess = len(self._keys) - self.limit
        if excess > 0:
            for key in list(itertools.islice(self._keys, excess)):
                del self._keys[key]

    def __contains__(self, key: object) -> bool:
        return key in self._keys


class AggregateTracker:
    """Cross-request aggregates: remembers the (trace, span) of recent calls and the (trace, parent) they name.

    Used by the writer thread only (no locking)."""

    def __init__(self, memory: int = 500_000) -> None:
        self.memory = memory
        self._calls = _BoundedKeys(memory)
        self._parents = _BoundedKeys(memory)

    def warm(self, db: duckdb.DuckDBPyConnection) -> None:
        """After a restart, remember the most recent stored calls so cross-request aggregates are still found."""
        rows = db.execute(
            "SELECT trace_id, span_id, parent_span_id FROM calls ORDER BY received_at DESC LIMIT ?", [self.memory]
        ).fetchall()
        rows.reverse()
        self._calls.add_many((t, s) for t, s, _ in rows)
        self._parents.add_many((t, p) for t, _, p in rows if p is not None)

    def sort(self, calls: pa.Table | None) -> Sorted:
        """Split a transaction's calls: a call whose child call was stored recently is an aggregate; a call whose
        parent is a call of this transaction makes that parent one; a call whose parent is a recently stored call
        makes the stored one one. A call sent twice in the transaction is stored once (the first), and a call
        stored recently (the last `memory` calls) is left out whatever its start time: the writer's own check
        (`Writer._without_stored`) finds older re-sends by (trace, span, start time), which a retry repeats."""
        if calls is None or not calls.num_rows:
            return Sorted(None, None, [], 0)
        traces = calls.column("trace_id").to_pylist()
        spans = calls.column("span_id").to_pylist()
        parents = calls.column("parent_span_id").to_pylist()
        recent_parents, recent_calls = self._parents, self._calls
        kept: dict[tuple[bytes, bytes], int] = {}
        demoted: list[int] = []
        stored: list[tuple[bytes, bytes]] = []
        resent = 0
        for i, (trace_id, span_id, parent) in enumerate(zip(traces, spans, parents, strict=True)):
            key = (trace_id, span_id)
            if key in recent_calls:  # stored by an earlier request: a re-send, whatever its times say
                resent += 1
                continue
            if key in recent_parents:
                demoted.append(i)  # a child call was stored before: this is an aggregate
                continue
            if parent is not None:
                parent_key = (trace_id, parent)
                j = kept.pop(parent_key, None)
                if j is not None:
                    demoted.append(j)
                elif parent_key in recent_calls:
                    stored.append(parent_key)
            kept.setdefault(key, i)
        if len(kept) == calls.num_rows:
            return Sorted(calls, None, stored, resent)
        demoted_spans = None
        if demoted:
            rows = calls.take(pa.array(sorted(demoted), pa.int64())).to_pylist()
            demoted_spans = records_table([call_as_span(CallRecord.from_row(r)) for r in rows], SPAN_COLUMNS)
        return Sorted(calls.take(pa.array(sorted(kept.values()), pa.int64())), demoted_spans, stored, resent)

    def demote_stored(
        self, db: duckdb.DuckDBPyConnection, keys: list[tuple[bytes, bytes]], *, keyless: bool = False
    ) -> int:
        """Inside the writer's transaction: move stored calls that turned out to be aggregates to `spans`, made by
        call_as_span like every other demotion. Returns how many were moved. `keyless`: `spans` has no primary
        key (lake mode): spans already stored are left out by a join instead of OR IGNORE."""
        if not keys:
            return 0
        names = ", ".join(f"c.{c.name}" for c in CALL_COLUMNS)
        db.register("_callscope_demote", pa.table({"trace_id": [k[0] for k in keys], "span_id": [k[1] for k in keys]}))
        try:
            query = f"SELECT {names} FROM calls c JOIN _callscope_demote d USING (trace_id, span_id)"  # noqa: S608
            rows = db.sql(query).to_arrow_table().to_pylist()
            if rows:
                demoted = records_table([call_as_span(CallRecord.from_row(r)) for r in rows], SPAN_COLUMNS)
                db.register("_callscope_demoted", demoted)
                cols = ", ".join(c.name for c in SPAN_COLUMNS)
                if keyless:
                    db.execute(
                        f"INSERT INTO spans ({cols}) SELECT {cols} FROM _callscope_demoted d"  # noqa: S608
                        " WHERE NOT EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = d.trace_id"
                        " AND s.span_id = d.span_id)"
                    )
                else:
                    db.execute(f"INSERT OR IGNORE INTO spans ({cols}) SELECT {cols} FROM _callscope_demoted")  # noqa: S608
                db.execute(
                    "DELETE FROM calls WHERE (trace_id, span_id) IN (SELECT (trace_id, span_id) FROM _callscope_demote)"
                )
        finally:
            for name in ("_callscope_demote", "_callscope_demoted"):
                with contextlib.suppress(duckdb.Error):
                    db.unregister(name)
        return len(rows)

    def committed(self, calls: pa.Table | None) -> None:
        """Remember the calls a transaction stored (after its COMMIT)."""
        if calls is None or not calls.num_rows:
            return
        traces = calls.column("trace_id").to_pylist()
        self._calls.add_many(zip(traces, calls.column("span_id").to_pylist(), strict=True))
        self._parents.add_many(
            (t, p) for t, p in zip(traces, calls.column("parent_span_id").to_pylist(), strict=True) if p is not None
        )
