"""Hourly rollups: pre-aggregated call counts, tokens, cost and latency sums so long ranges skip the raw rows.

The folding job (run by the scheduler in `callscope serve`) keeps one invariant: call_rollups holds, for every
UTC hour, exactly the calls of that hour with received_at <= the watermark in rollup_state. Each run takes the
calls received since the last watermark (up to now - lag, so rows still in the writer's queue are never skipped),
finds the hours they touch (late data lands in old hours), and re-folds those hours whole in one transaction.

A query answered from rollups is therefore exact: rollup rows for the whole hours inside the range, plus the raw
calls that are not in them (the partial hours at both ends, and calls received after the watermark). Only
additive statistics and max come from rollups; percentiles always come from the raw calls, so they stay exact
(DuckDB's quantile over 10M rows is fast enough, see the README's performance section).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb

from analytics.dimensions import resolve
from analytics.metrics import BASE
from analytics.query import Params, Selection
from analytics.timewin import US, Bucket, Bucketing, offset_pieces, to_us
from core.store import set_state

log = logging.getLogger("callscope.rollups")

HOUR_US = 3600 * US
STATE_NAME = "calls_hourly"
MIN_RANGE = timedelta(hours=48)  # measured at 10M calls: 24 h raw 18 ms vs rollups 38 ms; 30 days 120 vs 64 ms
ROLLUP_COLUMNS = (
    "project",
    "service",
    "environment",
    "provider",
    "operation",
    "request_model",
    "response_model",
    "status",
    "error_type",
    "http_status",
    "streaming",
    "convention",
    "model",
)
STORED = (
    "n",
    "errors",
    "rate_limited",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_sum",
    "priced",
    "priced_tokens",
    "unpriced",
    "unpriced_tokens",
    "all_tokens",
    "reported_cost",
)
# How each base aggregate is merged from rollup rows (sums of sums, max of maxes, mean from sum and count).
MERGE: dict[str, str] = {
    **{b: f"coalesce(sum({b}), 0)::BIGINT" for b in STORED if b not in ("cost_sum", "reported_cost")},
    "cost_sum": "sum(cost_sum)",
    "reported_cost": "sum(reported_cost)",
    "lat_max": "max(lat_max)",
    "lat_avg": "sum(lat_sum) / nullif(sum(n), 0)",
}


HOUR_SQL = f"(epoch_us(start_time) // {HOUR_US}) * {HOUR_US}"  # the UTC hour a call started in, as a rollup key
_HOUR = HOUR_SQL


def _rollup_shaped(values: dict[str, str], where: str) -> str:
    """SELECT over calls giving the call_rollups columns: hour, the rollup dimensions, then `values`."""
    exprs = ", ".join(f"{sql} AS {name}" for name, sql in values.items())
    return f"SELECT {_HOUR} AS hour_us, {', '.join(ROLLUP_COLUMNS)}, {exprs} FROM calls WHERE {where}"


def fold_select(where: str) -> str:
    """Calls grouped by hour and the rollup dimensions."""
    aggs = {b: BASE[b] for b in STORED} | {"lat_max": "max(duration_ms)", "lat_sum": "sum(duration_ms)"}
    return _rollup_shaped(aggs, where) + " GROUP BY ALL"


_TOKENS = "(coalesce(input_tokens, 0) + coalesce(output_tokens, 0))"
# One raw call as a rollup row of one call (same columns as call_rollups), so the raw remainder of a query needs
# no grouping of its own: the query's aggregation merges it with the rollup rows.
_AS_ROLLUP_ROW = {
    "n": "1::BIGINT",
    "errors": "(status = 'error')::BIGINT",
    "rate_limited": "coalesce(http_status = 429, false)::BIGINT",
    **{
        t: f"coalesce({t}, 0)::BIGINT"
        for t in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
    },
    "cost_sum": "cost_usd",
    "priced": "(cost_usd IS NOT NULL)::BIGINT",
    "priced_tokens": f"CASE WHEN cost_usd IS NOT NULL THEN {_TOKENS} ELSE 0 END::BIGINT",
    "unpriced": "coalesce(pricing = 'unpriced', false)::BIGINT",
    "unpriced_tokens": f"CASE WHEN pricing = 'unpriced' THEN {_TOKENS} ELSE 0 END::BIGINT",
    "all_tokens": f"{_TOKENS}::BIGINT",
    "reported_cost": "reported_cost_usd",
    "lat_max": "duration_ms",
    "lat_sum": "duration_ms",
}


def rows_select(where: str) -> str:
    """Calls as one-call rollup rows."""
    return _rollup_shaped(_AS_ROLLUP_ROW, where)


def watermark(db: duckdb.DuckDBPyConnection) -> int:
    rows = db.execute("SELECT folded_through_us FROM rollup_state WHERE name = ?", [STATE_NAME]).fetchall()
    return rows[0][0] if rows else 0


@dataclass(frozen=True)
class FoldResult:
    hours: int
    watermark_us: int
    seconds: float


def fold(
    db: duckdb.DuckDBPyConnection,
    *,
    lag_s: float,
    now: datetime | None = None,
    writer_horizon: Callable[[], int | None] | None = None,
) -> FoldResult:
    """Re-fold every hour touched by calls received since the last run (one transaction).

    `writer_horizon` returns the received_at stamp of the writer's open transaction (None when none is open);
    the watermark stays below it, so calls committed after this snapshot are never taken as folded."""
    started = time.perf_counter()
    old = watermark(db)
    new = to_us(now or datetime.now(UTC)) - int(lag_s * US)
    if writer_horizon is not None:
        open_since = writer_horizon()
        if open_since is not None:
            new = min(new, open_since - 1)
    if new <= old:
        return FoldResult(0, old, 0.0)
    db.execute("BEGIN TRANSACTION")
    try:
        touched = db.execute(
            f"SELECT DISTINCT {_HOUR}, project FROM calls"
            " WHERE received_at > make_timestamptz($old::BIGINT) AND received_at <= make_timestamptz($new::BIGINT)",
            {"old": old, "new": new},
        ).fetchall()
        pruned = raw_pruned_before(db)
        whole = [(h, p) for h, p in touched if h >= pruned.get(p, 0)]
        added = [(h, p) for h, p in touched if h < pruned.get(p, 0)]
        hours = sorted({h for h, _ in touched})
        _refold(db, whole, new)
        if added:
            # Hours whose raw calls retention removed: re-folding them from what is left would lose the removed
            # calls' totals, so the late calls are added to them (rollup rows are additive).
            where = (
                f"list_contains($keys, {_pair_key(_HOUR, 'project')}) AND received_at > make_timestamptz($old::BIGINT)"
                " AND received_at <= make_timestamptz($new::BIGINT)"
            )
            db.execute(
                f"INSERT INTO call_rollups BY NAME {fold_select(where)}",
                {"keys": [_key(h, p) for h, p in added], "old": old, "new": new},
            )
        set_state(db, "rollup_state", "folded_through_us", STATE_NAME, new)
        db.execute("COMMIT")
    except Exception:
        db.execute("ROLLBACK")
        raise
    return FoldResult(len(hours), new, time.perf_counter() - started)


def _pair_key(hour_sql: str, project_sql: str) -> str:
    return f"(({hour_sql})::VARCHAR || chr(31) || {project_sql})"


def _key(hour_us: int, project: str) -> str:
    return f"{hour_us}\x1f{project}"


def _refold(db: duckdb.DuckDBPyConnection, pairs: list[tuple[int, str]], through_us: int) -> None:
    """Re-fold whole (hour, project) pairs from the raw calls received up to `through_us` (inside the caller's
    transaction)."""
    if not pairs:
        return
    keys = [_key(h, p) for h, p in pairs]
    db.execute(
        f"DELETE FROM call_rollups WHERE list_contains($keys, {_pair_key('hour_us', 'project')})", {"keys": keys}
    )
    where = f"list_contains($keys, {_pair_key(_HOUR, 'project')}) AND received_at <= make_timestamptz($new::BIGINT)"
    db.execute(f"INSERT INTO call_rollups BY NAME {fold_select(where)}", {"keys": keys, "new": through_us})


def refold_pairs(db: duckdb.DuckDBPyConnection, pairs: list[tuple[int, str]]) -> int:
    """After calls were deleted (deletion by user): re-fold those (hour, project) pairs whose raw calls are all
    still kept, up to the watermark, so rollups stop counting the deleted calls. Inside the caller's transaction.
    Returns how many pairs were re-folded."""
    pruned = raw_pruned_before(db)
    whole = [(h, p) for h, p in pairs if h >= pruned.get(p, 0)]
    _refold(db, whole, watermark(db))
    return len(whole)


def raw_pruned_before(db: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """project -> the hour before which retention removed its raw calls (absent: none removed)."""
    return dict(db.execute("SELECT project, before_us FROM retention_state WHERE kind = 'calls'").fetchall())


def raw_floor(db: duckdb.DuckDBPyConnection) -> int | None:
    """Before this instant some project's raw calls were removed: ranges reaching below it are answered from
    rollups (and percentiles, which need raw calls, cover only what is left)."""
    found = db.execute("SELECT max(before_us) FROM retention_state WHERE kind = 'calls'").fetchall()
    return found[0][0] if found and found[0][0] else None


def eligible(
    selection: Selection,
    group_by: tuple[str, ...],
    bases: list[str],
    bucketing: Bucketing | None,
    floor_us: int | None = None,
) -> bool:
    """Can this question be answered from rollups plus raw edges, exactly? `floor_us`: raw calls before it were
    removed by retention, so a range reaching below it needs the rollups whatever its length."""
    pruned = floor_us is not None and selection.range.start_us < floor_us
    if selection.range.length < MIN_RANGE and not pruned:  # a short range scans few calls; the raw query is faster
        return False
    if selection.filters.search or any(b not in MERGE for b in bases):
        return False
    if any(not resolve(d).rollup for d in (*group_by, *selection.filters.dims)):
        return False
    if bucketing is not None:
        if bucketing.bucket not in (Bucket.HOUR, Bucket.DAY, Bucket.WEEK, Bucket.MONTH):
            return False
        pieces = offset_pieces(bucketing.zone, selection.range.start_us, selection.range.end_us)
        if any(offset % HOUR_US for _, offset in pieces):  # e.g. India: its hours do not align with UTC hours
            return False
    start, end = whole_hours(selection)
    return end > start


def whole_hours(selection: Selection) -> tuple[int, int]:
    start = -(-selection.range.start_us // HOUR_US) * HOUR_US
    end = (selection.range.end_us // HOUR_US) * HOUR_US
    return start, end


def source_sql(selection: Selection, params: Params) -> str:
    """Rows shaped like call_rollups covering exactly the selection: rollups inside, raw calls for the rest."""
    start, end = whole_hours(selection)
    p_start, p_end = params.add(start), params.add(end)
    # Read in the same statement as the rollups, so a fold committing meanwhile cannot count a call twice.
    p_folded = f"(SELECT coalesce(max(folded_through_us), 0) FROM rollup_state WHERE name = {params.add(STATE_NAME)})"
    dims = selection.dims_where(params)
    rollup_part = (
        f"SELECT * FROM call_rollups WHERE hour_us >= {p_start} AND hour_us < {p_end} AND {dims}"
        # Daily rollups (hours merged by retention) count by their day's start: a day-precision answer there.
        f" UNION ALL BY NAME SELECT * FROM call_rollups_daily WHERE hour_us >= {p_start} AND hour_us < {p_end}"
        f" AND {dims}"
    )
    # The raw remainder as three plain time ranges, so DuckDB prunes the scan by start_time / received_at:
    # the partial hour at each end, and calls of the whole hours received after the watermark (not folded yet).
    lo, hi = params.add(selection.range.start_us), params.add(selection.range.end_us)

    def between(a: str, b: str) -> str:
        return f"start_time >= make_timestamptz({a}::BIGINT) AND start_time < make_timestamptz({b}::BIGINT)"

    late = f"received_at > make_timestamptz({p_folded}::BIGINT)"
    raw_part = (
        f"{rows_select(f'{between(lo, p_start)} AND {dims}')}"
        f" UNION ALL {rows_select(f'{between(p_end, hi)} AND {dims}')}"
        f" UNION ALL {rows_select(f'{between(p_start, p_end)} AND {late} AND {dims}')}"
    )
    # The raw part in its own subquery: BY NAME binds only the union next to it, and call_rollups' columns are in
    # the order migrations appended them (m012's model comes last), not in rows_select's order.
    return f"({rollup_part} UNION ALL BY NAME SELECT * FROM ({raw_part}))"
