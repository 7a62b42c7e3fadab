"""Every statistic callscope shows, defined once: SQL aggregates over calls, and metrics derived from them.

Definitions (tested against numpy/scipy in tests/test_analytics_stats.py):
- Percentiles are `quantile_cont`: linear interpolation between the two nearest ranks, numpy's default
  `np.percentile(x, q, method="linear")` (Hyndman & Fan type 7).
- cost_usd sums the calls that have a price. It is NULL (unknown) when a group has calls but none is priced, and 0
  when it has no calls; `unpriced_call_share` / `unpriced_token_share` say how much spend is missing.
- cost_per_call and cost_per_1k_tokens are over priced calls only.
- input_tokens_per_call / output_tokens_per_call are means over all calls (a call without a count counts 0).
- rate_limited counts HTTP 429 answers, server_errors HTTP 5xx answers; both are part of errors.
- output_tokens_per_s is the median over successful calls with output of
  output_tokens / ((duration_ms - ttft_ms) / 1000), the generation speed after the first token (ttft 0 if absent).
- ttft percentiles are over calls that report a time to first token (streamed calls).
"""

from __future__ import annotations

from dataclasses import dataclass

from analytics.errors import QueryError

_TOKENS = "(coalesce(input_tokens, 0) + coalesce(output_tokens, 0))"
_GEN_SECONDS = "((duration_ms - coalesce(ttft_ms, 0)) / 1000.0)"

# Base aggregates: computed in the grouped scan. Quantiles come as lists so one sort serves several percentiles.
BASE: dict[str, str] = {
    "n": "count(*)",
    "errors": "count(*) FILTER (WHERE status = 'error')",
    "rate_limited": "count(*) FILTER (WHERE http_status = 429)",
    "server_errors": "count(*) FILTER (WHERE http_status >= 500)",
    "input_tokens": "coalesce(sum(input_tokens), 0)::BIGINT",
    "output_tokens": "coalesce(sum(output_tokens), 0)::BIGINT",
    "cache_read_tokens": "coalesce(sum(cache_read_tokens), 0)::BIGINT",
    "cache_write_tokens": "coalesce(sum(cache_write_tokens), 0)::BIGINT",
    "reasoning_tokens": "coalesce(sum(reasoning_tokens), 0)::BIGINT",
    "cost_sum": "sum(cost_usd)",
    "priced": "count(cost_usd)",
    "priced_tokens": f"coalesce(sum({_TOKENS}) FILTER (WHERE cost_usd IS NOT NULL), 0)::BIGINT",
    "unpriced": "count(*) FILTER (WHERE pricing = 'unpriced')",
    "unpriced_tokens": f"coalesce(sum({_TOKENS}) FILTER (WHERE pricing = 'unpriced'), 0)::BIGINT",
    "all_tokens": f"coalesce(sum({_TOKENS}), 0)::BIGINT",
    "reported_cost": "sum(reported_cost_usd)",
    "lat_max": "max(duration_ms)",
    "lat_avg": "avg(duration_ms)",
    "tps_p50": (
        f"quantile_cont(output_tokens / {_GEN_SECONDS}, 0.5)"
        f" FILTER (WHERE status = 'ok' AND output_tokens > 0 AND {_GEN_SECONDS} > 0)"
    ),
}
# Percentile bases: a list of quantiles of one column, holding just the fractions a question asks for (each one
# more is another selection over every value of the group); see aggregate_plan().
QUANTILE_COLUMNS: dict[str, str] = {"lat_q": "duration_ms", "ttft_q": "ttft_ms"}
# Zero for an empty bucket (the others are NULL there).
ADDITIVE_BASE = set(BASE) - {"cost_sum", "reported_cost", "lat_max", "lat_avg", "tps_p50"}


@dataclass(frozen=True)
class Metric:
    name: str
    sql: str  # over the base aggregates (percentiles: "", aggregate_plan derives it)
    needs: tuple[str, ...]
    unit: str
    help: str
    # "What changed" decomposes metric = numerator / denominator (denominator None: additive).
    numerator: str | None = None
    denominator: str | None = None


def _m(name: str, sql: str, needs: tuple[str, ...], unit: str, help: str, num=None, den=None) -> Metric:
    return Metric(name, sql, needs, unit, help, num, den)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        _m("calls", "n", ("n",), "calls", "model calls", "n"),
        _m("errors", "errors", ("errors",), "calls", "calls with status error", "errors"),
        _m("error_rate", "errors / nullif(n, 0)", ("errors", "n"), "ratio", "errors / calls", "errors", "n"),
        _m("rate_limited", "rate_limited", ("rate_limited",), "calls", "HTTP 429 answers", "rate_limited"),
        _m("server_errors", "server_errors", ("server_errors",), "calls", "HTTP 5xx answers", "server_errors"),
        _m(
            "rate_limited_share",
            "rate_limited / nullif(n, 0)",
            ("rate_limited", "n"),
            "ratio",
            "429s / calls",
            "rate_limited",
            "n",
        ),
        *(
            _m(t, t, (t,), "tokens", f"sum of {t}", t)
            for t in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
        ),
        _m("total_tokens", "all_tokens", ("all_tokens",), "tokens", "input + output tokens", "all_tokens"),
        _m(
            "input_tokens_per_call",
            "input_tokens / nullif(n, 0)",
            ("input_tokens", "n"),
            "tokens",
            "mean input (prompt) tokens per call",
            "input_tokens",
            "n",
        ),
        _m(
            "output_tokens_per_call",
            "output_tokens / nullif(n, 0)",
            ("output_tokens", "n"),
            "tokens",
            "mean output tokens per call",
            "output_tokens",
            "n",
        ),
        _m(
            "cost_usd",
            "CASE WHEN priced = 0 AND n > 0 THEN NULL ELSE coalesce(cost_sum, 0) END",
            ("priced", "n", "cost_sum"),
            "USD",
            "spend of priced calls",
            "cost_sum",
        ),
        _m(
            "cost_per_call",
            "cost_sum / nullif(priced, 0)",
            ("cost_sum", "priced"),
            "USD",
            "mean cost of a priced call",
            "cost_sum",
            "priced",
        ),
        _m(
            "cost_per_1k_tokens",
            "cost_sum * 1000 / nullif(priced_tokens, 0)",
            ("cost_sum", "priced_tokens"),
            "USD",
            "cost per 1,000 tokens of priced calls",
            "cost_sum * 1000",
            "priced_tokens",
        ),
        _m("priced_calls", "priced", ("priced",), "calls", "calls with a known price", "priced"),
        _m("unpriced_calls", "unpriced", ("unpriced",), "calls", "calls of models with no known price", "unpriced"),
        _m(
            "unpriced_call_share",
            "unpriced / nullif(n, 0)",
            ("unpriced", "n"),
            "ratio",
            "unpriced calls / calls",
            "unpriced",
            "n",
        ),
        _m(
            "unpriced_token_share",
            "unpriced_tokens / nullif(all_tokens, 0)",
            ("unpriced_tokens", "all_tokens"),
            "ratio",
            "tokens of unpriced calls / tokens",
            "unpriced_tokens",
            "all_tokens",
        ),
        _m("reported_cost_usd", "reported_cost", ("reported_cost",), "USD", "cost the clients reported"),
        _m("latency_p50", "", ("lat_q",), "ms", "median duration"),
        _m("latency_p90", "", ("lat_q",), "ms", "90th percentile duration"),
        _m("latency_p95", "", ("lat_q",), "ms", "95th percentile duration"),
        _m("latency_p99", "", ("lat_q",), "ms", "99th percentile duration"),
        _m("latency_max", "lat_max", ("lat_max",), "ms", "longest duration"),
        _m("latency_avg", "lat_avg", ("lat_avg",), "ms", "mean duration"),
        _m("ttft_p50", "", ("ttft_q",), "ms", "median time to first token"),
        _m("ttft_p95", "", ("ttft_q",), "ms", "95th percentile time to first token"),
        _m("output_tokens_per_s", "tps_p50", ("tps_p50",), "tokens/s", "median generation speed"),
    )
}

DEFAULT_METRICS: tuple[str, ...] = tuple(METRICS)


def parse_metrics(raw: list[str] | None) -> tuple[str, ...]:
    if not raw:
        return DEFAULT_METRICS
    out: list[str] = []
    for item in raw:
        for name in (n.strip() for n in item.split(",")):
            if not name:
                continue
            if name not in METRICS:
                raise QueryError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
            if name not in out:
                out.append(name)
    return tuple(out) or DEFAULT_METRICS


# Percentile metrics: the quantile base they read and their fraction.
QUANTILES: dict[str, tuple[str, float]] = {
    "latency_p50": ("lat_q", 0.5),
    "latency_p90": ("lat_q", 0.9),
    "latency_p95": ("lat_q", 0.95),
    "latency_p99": ("lat_q", 0.99),
    "ttft_p50": ("ttft_q", 0.5),
    "ttft_p95": ("ttft_q", 0.95),
}


def base_needed(metrics: tuple[str, ...]) -> list[str]:
    needed: list[str] = []
    for name in metrics:
        for base in METRICS[name].needs:
            if base not in needed:
                needed.append(base)
    return needed


def aggregate_plan(metrics: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str]]:
    """(SQL of every base aggregate the metrics need, in order; SQL of each metric over those bases)."""
    fractions: dict[str, list[float]] = {}
    for m in metrics:
        if m in QUANTILES:
            base, q = QUANTILES[m]
            fractions[base] = sorted({*fractions.get(base, []), q})
    bases = {}
    for b in base_needed(metrics):
        if b in QUANTILE_COLUMNS:
            bases[b] = f"quantile_cont({QUANTILE_COLUMNS[b]}, [{', '.join(repr(q) for q in fractions[b])}])"
        else:
            bases[b] = BASE[b]
    exprs = {}
    for m in metrics:
        if m in QUANTILES:
            base, q = QUANTILES[m]
            exprs[m] = f"{base}[{fractions[base].index(q) + 1}]"
        else:
            exprs[m] = METRICS[m].sql
    return bases, exprs


# Budget signals (analytics/budgets.py): not aggregates over a window's calls but each budget's state at an instant,
# one value per budget. Alert rules use them with group_by [budget] (and optionally filters {budget: name}).
BUDGET_METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        _m(
            "budget_spent_share",
            "",
            (),
            "ratio",
            "spend to date in the budget's period / its amount (0.5, 0.8, 1.0: the 50/80/100 % signals)",
        ),
        _m(
            "budget_forecast_share",
            "",
            (),
            "ratio",
            "forecast spend at the period's end / the budget's amount (above 1: a forecast overrun)",
        ),
        _m(
            "budget_forecast_high_share",
            "",
            (),
            "ratio",
            "the forecast interval's upper end / the budget's amount (above 1: an overrun is possible)",
        ),
    )
}


def metric_unit(name: str) -> str:
    """The unit of a statistic or a budget metric."""
    return (METRICS.get(name) or BUDGET_METRICS[name]).unit
