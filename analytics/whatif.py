"""What-if: the cost of the same calls (same input, cached, cache-write, output and reasoning tokens) had another
model served them, per (model, other model) pair, with the saving scaled to a 30.4-day month.

Prices of the other model are today's (the price book first, then genai-prices), given by `TargetRates` from the
collector's Pricer (handed in by the server). Linear prices are applied to the token sums in SQL; a call large
enough to reach a price tier of the other model (input above its tier start) is priced call by call, so the
figure equals the sum of the per-call prices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from analytics.errors import QueryError
from analytics.query import Params, Selection

DAYS_PER_MONTH = 365.25 / 12
MAX_TARGETS = 20
# The canonical model (one name per model, as every other answer names it); rows stored before it existed fall back.
_MODEL = "coalesce(model, response_model, request_model)"


@dataclass(frozen=True)
class TargetRates:
    """USD per token of another model: uncached input, cache read, cache write, output, reasoning."""

    per_token: tuple[float, float, float, float, float]
    max_input: int | None  # calls with more input tokens are priced one by one with `price_call`
    source: str
    price_call: Callable[[int, int, int, int, int], float | None]


RatesFn = Callable[[str], TargetRates | None]

_SUMS = (
    "count(*) AS calls,"
    " coalesce(sum(input_tokens), 0) AS inp, coalesce(sum(cache_read_tokens), 0) AS cr,"
    " coalesce(sum(cache_write_tokens), 0) AS cw, coalesce(sum(output_tokens), 0) AS out,"
    " coalesce(sum(least(coalesce(reasoning_tokens, 0), coalesce(output_tokens, 0))), 0) AS reasoning,"
    " coalesce(sum(greatest(coalesce(input_tokens, 0) - coalesce(cache_read_tokens, 0)"
    " - coalesce(cache_write_tokens, 0), 0)), 0) AS uncached,"
    " sum(cost_usd) AS cost, count(cost_usd) AS priced"
)


def whatif(
    db: duckdb.DuckDBPyConnection, selection: Selection, targets: Sequence[str], rates: RatesFn
) -> list[dict[str, Any]]:
    if len(targets) > MAX_TARGETS:
        raise QueryError(f"at most {MAX_TARGETS} target models")
    params = Params()
    where = selection.where(params) + " AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)"
    models = db.execute(
        f"SELECT {_MODEL} AS model, {_SUMS} FROM calls WHERE {where} AND {_MODEL} IS NOT NULL GROUP BY 1"  # noqa: S608
        " ORDER BY cost DESC NULLS LAST, calls DESC",
        params.values,
    ).fetchall()
    names = ["model", "calls", "inp", "cr", "cw", "out", "reasoning", "uncached", "cost", "priced"]
    rows = [dict(zip(names, r, strict=True)) for r in models]
    chosen = list(dict.fromkeys(targets)) if targets else [r["model"] for r in rows]
    days = selection.range.length.total_seconds() / 86400
    out = []
    for target in chosen:
        target_rates = rates(target)
        for row in rows:
            if row["model"] == target and targets:
                continue
            cost = None if target_rates is None else _cost(db, selection, row, target_rates)
            saving = None if cost is None or row["cost"] is None else row["cost"] - cost
            out.append(
                {
                    "model": row["model"],
                    "other_model": target,
                    "calls": row["calls"],
                    "input_tokens": row["inp"],
                    "cache_read_tokens": row["cr"],
                    "cache_write_tokens": row["cw"],
                    "output_tokens": row["out"],
                    "reasoning_tokens": row["reasoning"],
                    "cost_usd": row["cost"],
                    "unpriced_calls": row["calls"] - row["priced"],
                    "other_cost_usd": cost,
                    "other_price_source": target_rates.source if target_rates else None,
                    "saving_usd": saving,
                    "saving_per_month_usd": saving / days * DAYS_PER_MONTH if saving is not None and days else None,
                }
            )
    return [r for r in out if r["model"] != r["other_model"]]


def _cost(db: duckdb.DuckDBPyConnection, selection: Selection, row: dict[str, Any], t: TargetRates) -> float:
    if t.max_input is None:
        return _linear(row, t)
    # split: calls within the first tier priced by sums, the others call by call
    params = Params()
    where = (
        selection.where(params)
        + f" AND {_MODEL} = {params.add(row['model'])}"
        + " AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)"
    )
    big = params.add(t.max_input)
    within = db.execute(
        f"SELECT {_SUMS} FROM calls WHERE {where} AND coalesce(input_tokens, 0) <= {big}",  # noqa: S608
        params.values,
    ).fetchone()
    names = ["calls", "inp", "cr", "cw", "out", "reasoning", "uncached", "cost", "priced"]
    total = _linear(dict(zip(names, within, strict=True)), t)  # type: ignore[arg-type]
    for inp, out, cr, cw, reasoning in db.execute(
        "SELECT coalesce(input_tokens, 0), coalesce(output_tokens, 0), coalesce(cache_read_tokens, 0),"  # noqa: S608
        f" coalesce(cache_write_tokens, 0), coalesce(reasoning_tokens, 0) FROM calls WHERE {where}"
        f" AND input_tokens > {big}",
        params.values,
    ).fetchall():
        total += t.price_call(inp, out, cr, cw, reasoning) or 0.0
    return total


def _linear(row: dict[str, Any], t: TargetRates) -> float:
    r_in, r_cr, r_cw, r_out, r_reason = t.per_token
    return (
        row["uncached"] * r_in
        + row["cr"] * r_cr
        + row["cw"] * r_cw
        + (row["out"] - row["reasoning"]) * r_out
        + row["reasoning"] * r_reason
    )
