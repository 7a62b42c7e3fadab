"""Re-pricing stored calls with the current price book (`callscope reprice`, POST /api/v1/prices/reprice).

A run prices every call of a range (and filter) again, in slices of about `chunk` calls (whole UTC hours, so the
slice's rollup hours can be re-folded with it), and in one transaction per slice: stores the previous cost of each
call whose price changed in `cost_history` (the audit trail), updates the calls, and re-folds the slice's hours of
`call_rollups`. Calls whose price did not change are not written, so a second run changes nothing (idempotent).

Safe while ingest runs: the writer only inserts new calls, a run only updates calls it read, so neither waits for
the other (a transaction conflict, e.g. with the rollup job, retries the slice). A call ingested while the run
goes can have been priced with the book before the change, and committed after its slice was read: the run ends
with catch-up passes over the calls received since it started (minus a grace for requests already in flight)
until one finds nothing to change. Prices are computed by the collector's Pricer, handed in, so a
re-priced call costs exactly what a newly ingested one would.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from analytics.query import Params, Selection
from analytics.rollups import HOUR_US, fold_select, watermark
from analytics.timewin import US, TimeRange, from_us

log = logging.getLogger("callscope.reprice")

CATCH_UP_GRACE_S = 120.0  # a request in flight when the run started is committed within this (ingest timeouts)
_READ = (
    "trace_id, span_id, provider, coalesce(response_model, request_model) AS model, input_tokens, output_tokens,"
    " cache_read_tokens, cache_write_tokens, reasoning_tokens, status, epoch_ns(start_time) AS start_ns,"
    " cost_usd, pricing, price_source, price_entry_id, epoch_us(start_time) AS start_us"
)
_NEW_SCHEMA = pa.schema(
    [
        ("trace_id", pa.binary()),
        ("span_id", pa.binary()),
        ("cost_usd", pa.float64()),
        ("pricing", pa.string()),
        ("price_source", pa.string()),
        ("price_entry_id", pa.int64()),
    ]
)


class Pricer(Protocol):
    """What re-pricing needs of the collector's Pricer (handed in, so analytics does not import the collector)."""

    def price(
        self,
        provider: str | None,
        model: str | None,
        inp: int | None,
        out: int | None,
        cache_read: int | None,
        cache_write: int | None,
        *,
        is_error: bool,
        at_ns: int | None = None,
        reasoning: int | None = None,
    ) -> Any: ...  # a collector.pricing.Price: cost_usd, pricing, source, entry_id

    def linear(self, provider: str | None, model: str | None) -> Any: ...  # collector.pricing.Rates or None

    book: Any  # core.pricebook.PriceBook: candidates(provider, model), entries


@dataclass
class Progress:
    run_id: int
    total: int
    scanned: int = 0
    changed: int = 0
    status: str = "running"
    error: str | None = None


def _next_run_id(db: duckdb.DuckDBPyConnection) -> int:
    return db.execute("SELECT coalesce(max(run_id), 0) + 1 FROM reprice_runs").fetchone()[0]  # type: ignore[index]


def _slices(db: duckdb.DuckDBPyConnection, selection: Selection, chunk: int) -> list[tuple[int, int, int]]:
    """[start_us, end_us, calls) slices of whole hours (clipped to the range) holding about `chunk` calls each."""
    params = Params()
    rows = db.execute(
        f"SELECT (epoch_us(start_time) // {HOUR_US}) * {HOUR_US} AS h, count(*) FROM calls"  # noqa: S608
        f" WHERE {selection.where(params)} GROUP BY h ORDER BY h",
        params.values,
    ).fetchall()
    out: list[tuple[int, int, int]] = []
    lo, n = None, 0
    for hour, count in rows:
        if lo is None:
            lo = hour
        n += count
        if n >= chunk:
            out.append((lo, hour + HOUR_US, n))
            lo, n = None, 0
    if lo is not None:
        out.append((lo, rows[-1][0] + HOUR_US, n))
    start, end = selection.range.start_us, selection.range.end_us
    return [(max(a, start), min(b, end), n) for a, b, n in out]


def _same(a: pa.Array, b: pa.Array) -> pa.Array:
    """Elementwise equality where two nulls are equal."""
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    return pc.or_(both_null, pc.fill_null(pc.equal(a, b), False))


def _new_prices(table: pa.Table, pricer: Pricer) -> tuple[pa.Table, int]:
    """The calls of `table` whose price changed, with their new price (an Arrow table of _NEW_SCHEMA).

    Calls of a model with one linear price (Pricer.linear) are priced with array arithmetic, in the same order of
    operations as at ingest, so an unchanged price gives the same float and the call is not rewritten; the others
    (price book entries, time-dependent or tiered prices) call by call."""
    n = table.num_rows
    cost = np.full(n, np.nan)
    pricing = np.empty(n, dtype=object)
    source = np.empty(n, dtype=object)
    entry = np.empty(n, dtype=object)
    tokens = {
        c: table[c].to_numpy(zero_copy_only=False)
        for c in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
    }
    nulls = {c: pc.is_null(table[c]).to_numpy(zero_copy_only=False) for c in ("input_tokens", "output_tokens")}
    filled = {c: np.nan_to_num(v.astype(float), nan=0.0) for c, v in tokens.items()}
    is_error = pc.equal(table["status"], "error").to_numpy(zero_copy_only=False)
    start_us = table["start_us"].to_numpy(zero_copy_only=False)
    out = (cost, pricing, source, entry)
    groups = (
        table.select(["provider", "model"])
        .append_column("i", pa.array(np.arange(n)))
        .group_by(["provider", "model"], use_threads=False)
        .aggregate([("i", "list")])
    )
    cols = None
    for provider, model, rows in zip(
        groups["provider"].to_pylist(), groups["model"].to_pylist(), groups["i_list"].to_pylist(), strict=True
    ):
        idx = np.asarray(rows, dtype=np.int64)
        rates = pricer.linear(provider, model)
        slow = idx
        if rates is None and model and pricer.book.entries:
            slow = _by_entries(idx, pricer.book.candidates(provider, model), start_us, filled, nulls, out)
        if rates is not None:
            no_usage = nulls["input_tokens"][idx] & nulls["output_tokens"][idx]
            inp = filled["input_tokens"][idx]
            fits = ~no_usage & (inp <= rates.max_input if rates.max_input is not None else True)
            fast = idx[fits]
            f_in, f_cr, f_cw = inp[fits], filled["cache_read_tokens"][fast], filled["cache_write_tokens"][fast]
            uncached = np.maximum(f_in - f_cr - f_cw, 0)
            cost[fast] = (
                uncached * rates.uncached_input
                + f_cr * rates.cache_read
                + f_cw * rates.cache_write
                + filled["output_tokens"][fast] * rates.output
            )
            pricing[fast], source[fast] = str(rates.pricing), rates.source
            slow = idx[~fits]
        if slow.size and cols is None:
            cols = table.select([c for c in table.column_names if c in _PRICE_INPUT]).to_pydict()
        for i in slow:
            p = pricer.price(
                provider,
                model,
                cols["input_tokens"][i],  # type: ignore[index]
                cols["output_tokens"][i],  # type: ignore[index]
                cols["cache_read_tokens"][i],  # type: ignore[index]
                cols["cache_write_tokens"][i],  # type: ignore[index]
                is_error=bool(is_error[i]),
                at_ns=cols["start_ns"][i],  # type: ignore[index]
                reasoning=cols["reasoning_tokens"][i],  # type: ignore[index]
            )
            cost[i] = np.nan if p.cost_usd is None else p.cost_usd
            pricing[i], source[i], entry[i] = str(p.pricing), p.source, p.entry_id
    new_cost = pa.array(cost, mask=np.isnan(cost))
    new_pricing = pa.array(pricing, pa.string())
    new_source = pa.array(source, pa.string())
    new_entry = pa.array(entry, pa.int64())
    same = pc.and_(
        pc.and_(
            _same(new_cost, table["cost_usd"].combine_chunks()), _same(new_pricing, table["pricing"].combine_chunks())
        ),
        pc.and_(
            _same(new_source, table["price_source"].combine_chunks()),
            _same(new_entry, table["price_entry_id"].combine_chunks()),
        ),
    )
    changed = pc.invert(same)
    out = pa.table(
        [
            pc.filter(table["trace_id"], changed),
            pc.filter(table["span_id"], changed),
            pc.filter(new_cost, changed),
            pc.filter(new_pricing, changed),
            pc.filter(new_source, changed),
            pc.filter(new_entry, changed),
        ],
        schema=_NEW_SCHEMA,
    )
    return out, n


def _by_entries(
    idx: np.ndarray,
    entries: Any,
    start_us: np.ndarray,
    filled: dict[str, np.ndarray],
    nulls: dict[str, np.ndarray],
    out: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    """Price the calls of `idx` that a price book entry covers (most specific entry in force at each call's start,
    the same choice as PriceBook.entry_at) with array arithmetic, in the order of collector.pricing.entry_cost;
    returns the calls left (no entry in force, or no usage) for the call-by-call path."""
    cost, pricing, source, entry_col = out
    left = idx[~(nulls["input_tokens"][idx] & nulls["output_tokens"][idx])]
    no_usage = idx[nulls["input_tokens"][idx] & nulls["output_tokens"][idx]]
    for entry in entries:
        if left.size == 0:
            break
        t = start_us[left]
        lo = -np.inf if entry.valid_from is None else int(entry.valid_from.timestamp() * 1_000_000)
        hi = np.inf if entry.valid_to is None else int(entry.valid_to.timestamp() * 1_000_000)
        hit = left[(t >= lo) & (t < hi)]
        if hit.size:
            r_in, r_cr, r_cw, r_out, r_reason = entry.per_token()
            inp, o = filled["input_tokens"][hit], filled["output_tokens"][hit]
            cr, cw = filled["cache_read_tokens"][hit], filled["cache_write_tokens"][hit]
            reasoning = np.minimum(filled["reasoning_tokens"][hit], o)
            cost[hit] = (
                np.maximum(inp - cr - cw, 0) * r_in
                + cr * r_cr
                + cw * r_cw
                + (o - reasoning) * r_out
                + (reasoning * r_reason)
            )
            pricing[hit] = "override" if entry.source == "config" else "book"
            source[hit] = entry.label() if entry.entry_id is not None else "override"
            entry_col[hit] = entry.entry_id
            left = left[~np.isin(left, hit)]
    return np.concatenate([left, no_usage])


_PRICE_INPUT = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "start_ns",
)


def _apply(cur: duckdb.DuckDBPyConnection, run_id: int, changed: pa.Table, hours: list[int]) -> None:
    """One transaction: the audit trail, the calls, and their rollup hours (as the rollup job would fold them)."""
    cur.register("repriced", changed)
    try:
        cur.execute("BEGIN TRANSACTION")
        try:
            cur.execute(
                "INSERT INTO cost_history SELECT $run, c.trace_id, c.span_id, c.cost_usd, c.pricing, c.price_source,"
                " c.price_entry_id, r.cost_usd, r.pricing, r.price_entry_id, now()"
                " FROM calls c JOIN repriced r ON c.trace_id = r.trace_id AND c.span_id = r.span_id",
                {"run": run_id},
            )
            cur.execute(
                "UPDATE calls SET cost_usd = r.cost_usd, pricing = r.pricing, price_source = r.price_source,"
                " price_entry_id = r.price_entry_id FROM repriced r"
                " WHERE calls.trace_id = r.trace_id AND calls.span_id = r.span_id"
            )
            if hours:
                mark = watermark(cur)
                hour = f"(epoch_us(start_time) // {HOUR_US}) * {HOUR_US}"
                cur.execute("DELETE FROM call_rollups WHERE list_contains($hours, hour_us)", {"hours": hours})
                where = f"list_contains($hours, {hour}) AND received_at <= make_timestamptz($mark::BIGINT)"
                cur.execute(f"INSERT INTO call_rollups BY NAME {fold_select(where)}", {"hours": hours, "mark": mark})
            cur.execute("COMMIT")
        except Exception:
            cur.execute("ROLLBACK")
            raise
    finally:
        cur.unregister("repriced")


def _changed_hours(db: duckdb.DuckDBPyConnection, changed: pa.Table) -> list[int]:
    if changed.num_rows == 0:
        return []
    db.register("changed_keys", changed.select(["trace_id", "span_id"]))
    try:
        rows = db.execute(
            f"SELECT DISTINCT (epoch_us(c.start_time) // {HOUR_US}) * {HOUR_US} FROM calls c"  # noqa: S608
            " JOIN changed_keys k ON c.trace_id = k.trace_id AND c.span_id = k.span_id"
        ).fetchall()
    finally:
        db.unregister("changed_keys")
    return [h for (h,) in rows]


def _pass(
    db: duckdb.DuckDBPyConnection,
    selection: Selection,
    pricer: Pricer,
    run: Progress,
    chunk: int,
    received_since_us: int | None,
    on_progress: Callable[[Progress], None],
    stop: threading.Event | None,
) -> int:
    changed_total = 0
    cur = db.cursor()
    try:
        slices = _slices(cur, selection, chunk)
    finally:
        cur.close()
    for start, end, _n in slices:
        if stop is not None and stop.is_set():
            raise InterruptedError("re-pricing was stopped")
        params = Params()
        where = selection.with_range(_range(start, end)).where(params)
        if received_since_us is not None:
            where += f" AND received_at >= make_timestamptz({params.add(received_since_us)}::BIGINT)"
        for attempt in range(10):
            cur = db.cursor()
            try:
                cur.execute("SET TimeZone = 'UTC'")
                table = cur.sql(f"SELECT {_READ} FROM calls WHERE {where}", params=params.values).to_arrow_table()  # noqa: S608
                changed, scanned = _new_prices(table, pricer)
                if changed.num_rows:
                    _apply(cur, run.run_id, changed, _changed_hours(cur, changed))
                break
            except duckdb.TransactionException as exc:  # a concurrent writer touched the same rows: redo the slice
                log.info("re-pricing slice conflicted (%s); retrying", exc)
                time.sleep(0.05 * (attempt + 1))
            finally:
                cur.close()
        else:
            raise RuntimeError("re-pricing a slice kept conflicting with concurrent writes")
        changed_total += changed.num_rows
        if received_since_us is None:
            run.scanned += scanned
        run.changed += changed.num_rows
        on_progress(run)
    return changed_total


def _range(start_us: int, end_us: int) -> TimeRange:
    return TimeRange(from_us(start_us), from_us(end_us))


def start_run(db: duckdb.DuckDBPyConnection, selection: Selection, actor: str, filters: dict[str, Any]) -> Progress:
    """Record a run (status running) and count its calls; `run` does the work."""
    params = Params()
    cur = db.cursor()  # the server's connection is shared by threads: each works through a cursor of its own
    try:
        where = selection.where(params)
        total = cur.execute(f"SELECT count(*) FROM calls WHERE {where}", params.values).fetchone()[0]  # type: ignore[index]  # noqa: S608
    finally:
        cur.close()
    cur = db.cursor()
    try:
        cur.execute("BEGIN TRANSACTION")
        run_id = _next_run_id(cur)
        cur.execute(
            "INSERT INTO reprice_runs VALUES (?, ?, now(), NULL, make_timestamptz(?::BIGINT),"
            " make_timestamptz(?::BIGINT), ?, 'running', ?, 0, 0, NULL)",
            [run_id, actor, selection.range.start_us, selection.range.end_us, orjson.dumps(filters).decode(), total],
        )
        cur.execute("COMMIT")
    finally:
        cur.close()
    return Progress(run_id, total)


def run(
    db: duckdb.DuckDBPyConnection,
    selection: Selection,
    pricer: Pricer,
    progress: Progress,
    *,
    chunk: int = 200_000,
    on_progress: Callable[[Progress], None] | None = None,
    stop: threading.Event | None = None,
    grace_s: float = CATCH_UP_GRACE_S,
) -> Progress:
    """Re-price the calls of `selection` (see the module docstring); the run's row is kept up to date."""
    started_us = int(datetime.now(UTC).timestamp() * US)

    def report(p: Progress) -> None:
        _save(db, p)
        if on_progress is not None:
            on_progress(p)

    try:
        _pass(db, selection, pricer, progress, chunk, None, report, stop)
        since = started_us - int(grace_s * US)
        for _ in range(20):  # calls ingested meanwhile, until a pass finds nothing to change
            if _pass(db, selection, pricer, progress, chunk, since, report, stop) == 0:
                break
        progress.status = "done"
    except Exception as exc:
        progress.status, progress.error = "failed", f"{type(exc).__name__}: {exc}"
        log.exception("re-pricing run %d failed", progress.run_id)
    _save(db, progress, finished=True)
    if on_progress is not None:
        on_progress(progress)
    return progress


def _save(db: duckdb.DuckDBPyConnection, p: Progress, finished: bool = False) -> None:
    cur = db.cursor()
    try:
        for attempt in range(10):
            try:
                cur.execute(
                    "UPDATE reprice_runs SET scanned = ?, changed = ?, status = ?, error = ?,"
                    " finished_at = CASE WHEN ? THEN now() ELSE NULL END WHERE run_id = ?",
                    [p.scanned, p.changed, p.status, p.error, finished, p.run_id],
                )
                return
            except duckdb.TransactionException:
                time.sleep(0.02 * (attempt + 1))
    finally:
        cur.close()


def get_run(db: duckdb.DuckDBPyConnection, run_id: int) -> dict[str, Any] | None:
    cur = db.execute(
        "SELECT run_id, actor, started_at, finished_at, range_from, range_to, filters, status, total, scanned,"
        " changed, error FROM reprice_runs WHERE run_id = ?",
        [run_id],
    )
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    if not rows:
        return None
    out = dict(zip(names, rows[0], strict=True))
    for key in ("started_at", "finished_at", "range_from", "range_to"):
        out[key] = out[key].isoformat() if out[key] is not None else None
    out["filters"] = orjson.loads(out["filters"])
    return out


def call_history(db: duckdb.DuckDBPyConnection, trace_id: bytes, span_id: bytes) -> list[dict[str, Any]]:
    """The costs a call had before each re-pricing that changed it, oldest first."""
    cur = db.execute(
        "SELECT run_id, changed_at, old_cost_usd, old_pricing, old_price_source, old_price_entry_id, new_cost_usd,"
        " new_pricing, new_price_entry_id FROM cost_history WHERE trace_id = ? AND span_id = ? ORDER BY changed_at",
        [trace_id, span_id],
    )
    names = [d[0] for d in cur.description]
    out = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    for row in out:
        row["changed_at"] = row["changed_at"].isoformat()
    return out
