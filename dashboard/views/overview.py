"""Overview: what was spent and how the calls went, against the previous period, and what moved most."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard import budget_charts, charts, data, fmt, nav, sidebar, ui

KPIS = (
    ui.Kpi("cost_usd", "Spend", fmt.usd, help="USD of priced calls; unpriced calls are not counted as $0."),
    ui.Kpi("calls", "Calls", fmt.count, up_is_good=True),
    ui.Kpi("error_rate", "Error rate", fmt.pct),
    ui.Kpi("latency_p95", "p95 latency", fmt.ms),
    ui.Kpi("ttft_p50", "Time to first token (p50)", fmt.ms, help="Over streamed calls."),
    ui.Kpi("total_tokens", "Tokens", fmt.compact, up_is_good=True, help="Input + output tokens."),
)

filters = sidebar.current()
firing = data.background(data.alert_instances)  # alerts are about now, whatever the range; asked while we wait
st.title("Overview")
st.caption(f"All calls in the {filters.describe()}.")
loaded = ui.load(
    filters,
    lambda: data.compare(filters, [k.metric for k in KPIS]),
    lambda: data.stats(filters, ("cost_usd", "calls"), bucket="auto"),
    lambda: data.compare(filters, ("cost_usd", "calls"), group_by=("model",)),
)
if loaded is not None:
    kpis, series, movers = loaded
    ui.kpi_row(kpis.row(0, named=True), KPIS)

    left, right = st.columns(2)
    with left:
        ui.chart(charts.series(series, "cost_usd", "USD", "Spend over time (USD)", kind="bar"), "spend_over_time")
    with right:
        event = ui.chart(
            charts.series(series, "calls", "calls", "Calls over time (click a bar for its calls)", kind="bar"),
            "calls_over_time",
            select="points",
        )
        window = ui.selected_window(event, series["bucket"].to_list())
        if window is not None:
            sidebar.drill_down(nav.CALLS, filters.with_window(*window))

    st.subheader("Top movers by model")
    st.caption("Spend and calls per model against the previous period, largest spend change first.")
    movers = movers.sort(pl.col("cost_usd_delta").abs(), descending=True, nulls_last=True).head(10)
    st.dataframe(
        ui.money_table(
            movers.select(
                "model", "cost_usd", "cost_usd_prev", "cost_usd_delta", "cost_usd_delta_pct", "calls", "calls_delta"
            ),
            money=("cost_usd", "cost_usd_prev", "cost_usd_delta"),
            shares=("cost_usd_delta_pct",),
        ),
        column_config={
            "model": "Model",
            "cost_usd": st.column_config.NumberColumn("Spend (USD)", format="$%.4f"),
            "cost_usd_prev": st.column_config.NumberColumn("Before (USD)", format="$%.4f"),
            "cost_usd_delta": st.column_config.NumberColumn("Change (USD)", format="%+.4f"),
            "cost_usd_delta_pct": st.column_config.NumberColumn("Change (%)", format="%+.1f%%"),
            "calls": st.column_config.NumberColumn("Calls", format="localized"),
            "calls_delta": st.column_config.NumberColumn("Calls change", format="%+d"),
        },
        hide_index=True,
        key="movers",
    )

budget_charts.overview_tiles()

st.subheader("Firing alerts")
ui.firing_alerts(firing)
