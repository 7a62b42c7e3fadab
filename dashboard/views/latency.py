"""Latency: percentiles over time (per model too), time to first token, generation speed, the distribution, the
slowest calls, and "what changed" for a window picked on the chart."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, data, fmt, nav, sidebar, ui
from dashboard.filters import ViewFilters

KPIS = (
    ui.Kpi("latency_p50", "p50 latency", fmt.ms),
    ui.Kpi("latency_p95", "p95 latency", fmt.ms),
    ui.Kpi("latency_p99", "p99 latency", fmt.ms),
    ui.Kpi("ttft_p50", "Time to first token (p50)", fmt.ms, help="Over streamed calls."),
    ui.Kpi("output_tokens_per_s", "Output tokens/s (median)", fmt.rate, up_is_good=True),
)
PERCENTILES = {"latency_p50": "p50", "latency_p90": "p90", "latency_p95": "p95", "latency_p99": "p99"}


def show_what_changed(filters: ViewFilters, start, end) -> None:
    """The picked window against the window of the same length just before it."""
    window = filters.with_window(start, end)
    st.subheader("What changed in the selected window")
    st.caption(f"{window.start} to {window.end} against the same length of time just before.")
    by_model = data.compare(window, ("latency_p95", "calls", "error_rate"), group_by=("model",))
    by_model = by_model.sort("latency_p95_delta", descending=True, nulls_last=True)
    st.dataframe(
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
        column_config={
            "model": "Model",
            "latency_p95": st.column_config.NumberColumn("p95 now (ms)", format="%.0f"),
            "latency_p95_prev": st.column_config.NumberColumn("p95 before (ms)", format="%.0f"),
            "latency_p95_delta": st.column_config.NumberColumn("p95 change (ms)", format="%+.0f"),
            "calls": st.column_config.NumberColumn("Calls now", format="localized"),
            "calls_prev": st.column_config.NumberColumn("Calls before", format="localized"),
            "error_rate": st.column_config.NumberColumn("Error rate now", format="percent"),
            "error_rate_prev": st.column_config.NumberColumn("Error rate before", format="percent"),
        },
        hide_index=True,
        key="changed_by_model",
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
    st.dataframe(
        change["contributors"],
        column_config={"share_of_change": st.column_config.NumberColumn("Share of change", format="percent")},
        hide_index=True,
        key="changes_table",
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
    lambda: data.stats(filters, (chosen,), group_by=("model",), bucket="auto", top_groups=8),
    lambda: data.stats(filters, ("ttft_p50", "ttft_p95", "output_tokens_per_s"), bucket="auto"),
    lambda: data.histogram(filters),
    lambda: data.calls(filters, order_by="duration_ms", limit=20),
)
if loaded is not None:
    kpis, overall, per_model, speed, hist, (slow, _) = loaded
    ui.kpi_row(kpis.row(0, named=True), KPIS)

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
    )
    picked = ui.selected_window(event, overall["bucket"].to_list())

    pick = st.selectbox(
        "Percentile per model", list(PERCENTILES), index=2, format_func=PERCENTILES.__getitem__, key="per_model_pct"
    )
    if pick != chosen:  # changed by code rather than by a click; fetch what the picker says
        per_model = data.stats(filters, (pick,), group_by=("model",), bucket="auto", top_groups=8)
    ui.chart(
        charts.series(per_model, pick, "ms", f"{PERCENTILES[pick]} latency per model (ms)", group="model"),
        "latency_per_model",
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
        )
    with right:
        ui.chart(charts.series(speed, "output_tokens_per_s", "tokens/s", "Output tokens per second (median)"), "tps")

    ui.chart(charts.histogram(hist, "Distribution of durations (calls per bin, log scale)"), "latency_histogram")

    if picked is not None:
        show_what_changed(filters, *picked)

    st.subheader("Slowest calls")
    selection = st.dataframe(
        slow.select(
            "duration_ms",
            "ttft_ms",
            "start_time",
            "service",
            "request_model",
            "output_tokens",
            "status",
            "trace_id",
            "span_id",
        ),
        column_config={
            "duration_ms": st.column_config.NumberColumn("Duration (ms)", format="%.0f"),
            "ttft_ms": st.column_config.NumberColumn("TTFT (ms)", format="%.0f"),
            "start_time": "Started (UTC)",
            "output_tokens": st.column_config.NumberColumn("Output tokens", format="localized"),
        },
        hide_index=True,
        key="slowest",
        on_select="rerun",
        selection_mode="single-row",
    )
    rows = selection.selection.rows if selection else []
    if rows:
        chosen = slow.row(rows[0], named=True)
        st.switch_page(
            nav.CALL, query_params={**filters.to_query(), "trace": chosen["trace_id"], "span": chosen["span_id"]}
        )
