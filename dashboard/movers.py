"""The Overview's "what changed" callouts: per measure, the group (service, model or provider) that moved most
against the previous period of the same length, ranked so that volume counts.

Rules (general, not tuned to any data):
- spend: the largest absolute change in USD (money is additive: the biggest dollar move is the news);
- error rate: the largest number of errors beyond what the previous rate predicts for this period's calls
  (errors_now - calls_now x rate_before), so 3 errors in 5 calls do not outrank a storm over thousands;
- p95 latency and tokens per call: the largest relative change among groups with at least MIN_CALLS calls and
  MIN_SHARE of the period's calls in both periods (a percentile or mean of a handful of calls is noise).
A group needs calls in both periods to be compared; with no earlier calls there is no callout, and the caller
says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

MIN_CALLS = 30
MIN_SHARE = 0.01
METRICS = (
    "calls",
    "cost_usd",
    "errors",
    "error_rate",
    "latency_p95",
    "input_tokens_per_call",
    "output_tokens_per_call",
)


@dataclass(frozen=True)
class Callout:
    measure: str  # spend | error_rate | latency_p95 | tokens_per_call
    dim: str
    value: Any
    before: float | None
    now: float | None
    change: float  # the ranking value: USD, excess errors, or a relative change
    detail: str = ""  # for tokens: "input" or "output"


def _rows(frame: pl.DataFrame, dim: str) -> list[dict[str, Any]]:
    return [r for r in frame.iter_rows(named=True) if (r.get("calls_prev") or 0) > 0 and (r.get("calls") or 0) > 0]


def biggest(frames: Mapping[str, pl.DataFrame], total_calls: int) -> list[Callout]:
    """The callouts, one per measure that has a candidate, in the order spend, errors, p95, tokens per call."""
    floor = max(MIN_CALLS, MIN_SHARE * total_calls)
    found: dict[str, Callout] = {}

    def offer(c: Callout) -> None:
        best = found.get(c.measure)
        if c.change != 0 and (best is None or abs(c.change) > abs(best.change)):
            found[c.measure] = c

    for dim, frame in frames.items():
        for r in _rows(frame, dim):
            value = r[dim]
            if r.get("cost_usd") is not None and r.get("cost_usd_prev") is not None:
                offer(
                    Callout("spend", dim, value, r["cost_usd_prev"], r["cost_usd"], r["cost_usd"] - r["cost_usd_prev"])
                )
            rate_before = r.get("error_rate_prev") or 0.0
            excess = (r.get("errors") or 0) - r["calls"] * rate_before
            if (r.get("errors") or 0) > 0 or (r.get("errors_prev") or 0) > 0:
                offer(Callout("error_rate", dim, value, r.get("error_rate_prev"), r.get("error_rate"), excess))
            if min(r["calls"], r["calls_prev"]) < floor:
                continue
            for metric, measure, detail in (
                ("latency_p95", "latency_p95", ""),
                ("input_tokens_per_call", "tokens_per_call", "input"),
                ("output_tokens_per_call", "tokens_per_call", "output"),
            ):
                now, before = r.get(metric), r.get(f"{metric}_prev")
                if now is not None and before:
                    offer(Callout(measure, dim, value, before, now, (now - before) / abs(before), detail))
    return [found[m] for m in ("spend", "error_rate", "latency_p95", "tokens_per_call") if m in found]
