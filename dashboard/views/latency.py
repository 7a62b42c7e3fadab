"""Latency: percentiles over time (per model too), time to first token, generation speed, the distribution, the
slowest calls, and "what changed" for a window picked on the chart."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard import charts, data, fmt, nav, sidebar, ui
from dashboard.filters import ViewFilters

KPIS = (
    ui.Kpi("latency_p50", "p50 latency", fmt.ms),
    ui.Kpi("latency_p95", "p95 latency", fmt.ms),
    ui.Kpi("latency_p99", "p99 latency", fmt.ms),
    ui.Kpi("ttft_p50", "TTFT p50", fmt.ms, help="Time to first token, median over streamed calls."),
    ui.Kpi("output_tokens_per_s", "Output speed", fmt.rate, up_is_good=True, help="Output tokens per second (median)."),
)
TOP_MODELS = 8  # the busiest models get a line each (ranked by calls, not by the percentile drawn)
PANELS = 6  # providers drawn as small multiples, the busiest first
PERCENTILES = {"latency_p50": "p50", "latency_p90": "p90", "latency_p95": "p95", "latency_p99": "p99"}


def show_what_changed(filters: ViewFilters, start, end) -> None:
    """The picked window against the window of the same length just before it."""
    window = filters.with_window(start, end)
    st.subheader("What changed in the selected window")
    st.caption(f"{window.start} to {window.end} against the same length of time just before.")
    by_model = data.compare(window, ("latency_p95", "calls", "error_rate"), group_by=("model",))
    by_model = by_model.sort("latency_p95_delta", descending=True, nulls_last=True)
    ui.table(
        by_model.select(
            "model",
            "latency_p95",
            "latency_p95_prev",
            "latency_p95_delta",
            "calls",
            "calls_prev",
            "error_rate",
            "error_rate_prev",
        ),
        "changed_by_model",
        units={
            "latency_p95": "ms",
            "latency_p95_prev": "ms",
            "latency_p95_delta": "ms+",
            "calls_prev": "count",
            "error_rate": "ratio",
            "error_rate_prev": "ratio",
        },
        column_config={
            "model": "Model",
            "latency_p95": "p95 now (ms)",
            "latency_p95_prev": "p95 before (ms)",
            "latency_p95_delta": "p95 change (ms)",
            "calls": st.column_config.NumberColumn("Calls now", format="localized"),
            "calls_prev": "Calls before",
            "error_rate": "Error rate now",
            "error_rate_prev": "Error rate before",
        },
    )
    metric = st.selectbox(
        "Attribute the change in",
        ("calls", "error_rate", "cost_usd", "cost_per_call", "rate_limited_share"),
        key="changes_metric",
    )
    change = data.changes(window, metric, ("service", "model"), limit=10)
    unit = change["unit"]
    st.markdown(
        f"**{metric}**: {fmt.by_unit(unit, change['before'])} before, {fmt.by_unit(unit, change['now'])} now "
        f"({fmt.signed_pct(change['delta_pct']) or 'no earlier data'}). Largest contributions:"
    )
    ui.table(
        pl.DataFrame(change["contributors"], infer_schema_length=None),
        "changes_table",
        column_config={"share_of_change": st.column_config.NumberColumn("Share of change", format="percent")},
    )
    if st.button("Open the calls of this window", key="window_calls"):
        sidebar.drill_down(nav.CALLS, window, sort="duration_ms")


filters = sidebar.current()
st.title("Latency")
st.caption(f"Call durations in the {filters.describe()}, in milliseconds.")
# The per-model percentile picker is drawn further down; its value from the last run is known already.
chosen = st.session_state.get("per_model_pct", "latency_p95")
loaded = ui.load(
    filters,
    lambda: data.compare(filters, [k.metric for k in KPIS]),
    lambda: data.stats(filters, tuple(PERCENTILES), bucket="auto"),
    lambda: data.stats(filters, (chosen,), group_by=("model",), bucket="auto", top_groups=TOP_MODELS, top_by="calls"),
    lambda: data.stats(
        filters, ("latency_p50", "ttft_p50"), group_by=("provider",), bucket="auto", top_groups=PANELS, top_by="calls"
    ),
    lambda: data.stats(filters, ("ttft_p50", "ttft_p95", "output_tokens_per_s"), bucket="auto"),
    lambda: data.histogram(filters),
    lambda: data.calls(filters, order_by="duration_ms", limit=20),
    lambda: data.anomalies(filters),
)
if loaded is not None:
    kpis, overall, per_model, per_provider, speed, hist, (slow, _), anomalies = loaded
    ui.kpi_row(kpis.row(0, named=True), KPIS)
    p95_marks = [a for a in anomalies if a["metric"] == "latency_p95"]

    event = ui.chart(
        charts.lines(
            overall,
            tuple(PERCENTILES),
            "ms",
            "Latency percentiles over time (ms) — drag to select a window",
            PERCENTILES,
        ),
        "latency_percentiles",
        select=("box", "points"),
        filters=filters,
        anomalies=p95_marks,
    )
    picked = ui.selected_window(event, overall["bucket"].to_list())

    pick = st.selectbox(
        "Percentile per model", list(PERCENTILES), index=2, format_func=PERCENTILES.__getitem__, key="per_model_pct"
    )
    if pick != chosen:  # changed by code rather than by a click; fetch what the picker says
        per_model = data.stats(
            filters, (pick,), group_by=("model",), bucket="auto", top_groups=TOP_MODELS, top_by="calls"
        )
    ui.chart(
        charts.series(
            per_model,
            pick,
            "ms",
            f"{PERCENTILES[pick]} latency of the {TOP_MODELS} busiest models (ms)",
            group="model",
        ),
        "latency_per_model",
        filters=filters,
    )
    providers = [p for p in per_provider["provider"].unique(maintain_order=True).to_list() if p != "(other)"]
    ui.chart(
        charts.small_multiples(
            per_provider.filter(pl.col("provider") != "(other)"),
            "provider",
            {"latency_p50": "p50 duration", "ttft_p50": "p50 time to first token"},
            "ms",
            "Median latency per provider (ms), busiest first, each on its own scale: a slow provider shows in its "
            "time to first token",
            order=providers,
        ),
        "latency_per_provider",
        filters=filters,
        anomalies=p95_marks,
    )

    left, right = st.columns(2)
    with left:
        ui.chart(
            charts.lines(
                speed,
                ("ttft_p50", "ttft_p95"),
                "ms",
                "Time to first token (ms, streamed calls)",
                {"ttft_p50": "p50", "ttft_p95": "p95"},
            ),
            "ttft",
            filters=filters,
        )
    with right:
        ui.chart(
            charts.series(speed, "output_tokens_per_s", "tokens/s", "Output tokens per second (median)"),
            "tps",
            filters=filters,
        )

    ui.chart(charts.histogram(hist, "Distribution of durations (calls per bin, log scale)"), "latency_histogram")

    if picked is not None:
        show_what_changed(filters, *picked)

    st.subheader("Slowest calls")
    st.caption("Open a call for its trace, timings and cost.")
    ui.table(
        slow.select(
            "duration_ms",
            "ttft_ms",
            "start_time",
            "service",
            "model",
            "provider",
            "output_tokens",
            "status",
            "trace_id",
            "span_id",
        ),
        "slowest",
        units={"duration_ms": "ms", "ttft_ms": "ms", "start_time": "time", "output_tokens": "count"},
        column_config={
            "duration_ms": "Duration (ms)",
            "ttft_ms": "TTFT (ms)",
            "start_time": "Started (UTC)",
            "service": "Service",
            "model": "Model",
            "provider": "Provider",
            "output_tokens": "Output tokens",
            "status": "Status",
            "trace_id": "Trace",
            "span_id": "Span",
        },
        links=[nav.call_link(filters, r["trace_id"], r["span_id"]) for r in slow.iter_rows(named=True)],
    )
