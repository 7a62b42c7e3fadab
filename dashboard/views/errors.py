"""Errors: how often calls fail, of what kind, where (provider), how many were rate limited, and the latest ones."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, data, fmt, nav, sidebar, ui

KPIS = (
    ui.Kpi("error_rate", "Error rate", fmt.pct),
    ui.Kpi("errors", "Errors", fmt.count),
    ui.Kpi("rate_limited_share", "Rate limited (429) share", fmt.pct, help="HTTP 429 answers / calls."),
    ui.Kpi("rate_limited", "429 answers", fmt.count),
)
ERRORS_ONLY = (("status", "error"),)
KINDS = {"error_type": "Error type", "http_status": "HTTP status"}
RECENT = (
    "start_time",
    "error_type",
    "http_status",
    "error_message",
    "finish_reason",
    "service",
    "provider",
    "request_model",
    "duration_ms",
    "user_id",
    "trace_id",
    "span_id",
)

filters = sidebar.current()
st.title("Errors")
st.caption(f"Failed calls in the {filters.describe()}.")
# The breakdown picker is drawn further down; its value from the last run is known already.
kind = st.session_state.get("errors_by") or "error_type"
loaded = ui.load(
    filters,
    lambda: data.compare(filters, [k.metric for k in KPIS]),
    lambda: data.stats(filters, ("error_rate", "rate_limited_share"), bucket="auto"),
    lambda: data.stats(filters, ("error_rate",), group_by=("provider",), bucket="auto", top_groups=6),
    lambda: data.stats(filters, ("errors",), extra=ERRORS_ONLY, group_by=(kind,), bucket="auto", top_groups=8),
    lambda: data.calls(filters, extra=ERRORS_ONLY, limit=50),
)
if loaded is not None:
    kpis, overall, by_provider, by_kind, (recent, total) = loaded
    ui.kpi_row(kpis.row(0, named=True), KPIS)

    left, right = st.columns(2)
    with left:
        ui.chart(
            charts.lines(
                overall,
                ("error_rate", "rate_limited_share"),
                "ratio",
                "Error rate over time (%)",
                {"error_rate": "all errors", "rate_limited_share": "429 rate limited"},
            ),
            "error_rate",
        )
    with right:
        ui.chart(
            charts.series(by_provider, "error_rate", "ratio", "Error rate by provider (%)", group="provider"),
            "error_rate_provider",
        )

    st.segmented_control("Errors by", list(KINDS), format_func=KINDS.__getitem__, default="error_type", key="errors_by")
    event = ui.chart(
        charts.series(
            by_kind,
            "errors",
            "calls",
            f"Errors over time by {KINDS[kind].lower()}",
            group=kind,
            kind="bar",
            stacked=True,
        ),
        "errors_by_kind",
        select="points",
    )
    window = ui.selected_window(event, by_kind["bucket"].unique().sort().to_list())
    if window is not None:
        sidebar.drill_down(nav.CALLS, filters.with_window(*window), status="error")

    st.subheader("Recent errors")
    st.caption(f"The latest {recent.height} of {fmt.count(total)} failed calls.")
    if recent.height:
        st.dataframe(
            recent.select(RECENT),
            column_config={
                "start_time": "Started (UTC)",
                "error_type": "Error",
                "error_message": st.column_config.TextColumn("Message", width="large"),
                "http_status": st.column_config.NumberColumn("HTTP", format="localized"),
                "duration_ms": st.column_config.NumberColumn("Duration (ms)", format="%.0f"),
            },
            hide_index=True,
            key="recent_errors",
        )
