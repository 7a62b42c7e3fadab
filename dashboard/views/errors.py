"""Errors: how often calls fail, of what kind, where (provider), how many were rate limited, and the latest ones."""

from __future__ import annotations

import polars as pl
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
    "service",
    "model",
    "provider",
    "error_type",
    "http_status",
    "error_message",
    "duration_ms",
    "user_id",
    "trace_id",
    "span_id",
)
PANELS = 6  # providers drawn as small multiples, most errors first
MIN_CALLS = 20  # an error rate of fewer calls in a bucket is not drawn (3 of 4 calls is not a 75% outage)

filters = sidebar.current()
st.title("Errors")
st.caption(f"Failed calls in the {filters.describe()}.")
# The breakdown picker is drawn further down; its value from the last run is known already.
kind = st.session_state.get("errors_by") or "error_type"
loaded = ui.load(
    filters,
    lambda: data.compare(filters, [k.metric for k in KPIS]),
    lambda: data.stats(filters, ("error_rate", "rate_limited_share", "calls"), bucket="auto"),
    lambda: data.stats(
        filters,
        ("errors", "rate_limited", "server_errors"),
        group_by=("provider",),
        bucket=ui.fine_bucket(filters),
        top_groups=PANELS,
        top_by="errors",
    ),
    lambda: data.stats(filters, ("errors",), extra=ERRORS_ONLY, group_by=(kind,), bucket="auto", top_groups=8),
    lambda: data.calls(filters, extra=ERRORS_ONLY, limit=50),
    lambda: data.anomalies(filters),
)
if loaded is not None:
    kpis, overall, by_provider, by_kind, (recent, total), anomalies = loaded
    ui.kpi_row(kpis.row(0, named=True), KPIS)
    rate_marks = [a for a in anomalies if a["metric"] in ("error_rate", "rate_limited_share")]

    # a rate over a handful of calls is noise: buckets with fewer than MIN_CALLS calls are left out of the line
    overall = overall.with_columns(
        pl.when(pl.col("calls") >= MIN_CALLS).then(pl.col(c)).otherwise(None).alias(c)
        for c in ("error_rate", "rate_limited_share")
    )
    ui.chart(
        charts.lines(
            overall,
            ("error_rate", "rate_limited_share"),
            "ratio",
            f"Error rate over time (%, buckets of at least {MIN_CALLS} calls)",
            {"error_rate": "all errors", "rate_limited_share": "429 rate limited"},
        ),
        "error_rate",
        filters=filters,
        anomalies=rate_marks,
    )
    by_provider = by_provider.filter(pl.col("provider") != "(other)").with_columns(
        (pl.col("errors") - pl.col("rate_limited") - pl.col("server_errors")).alias("other_errors")
    )
    providers = [p for p in by_provider["provider"].unique(maintain_order=True).to_list()]
    ui.chart(
        charts.small_multiples(
            by_provider,
            "provider",
            {"rate_limited": "429 rate limited", "server_errors": "5xx server errors", "other_errors": "other errors"},
            "calls",
            "Failed calls per provider, most errors first, each on its own scale (a burst of a few 5xx at a quiet "
            "provider stands out in its own panel)",
            kind="steps",
            order=providers,
        ),
        "errors_per_provider",
        filters=filters,
        anomalies=rate_marks,
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
        filters=filters,
    )
    window = ui.selected_window(event, by_kind["bucket"].unique().sort().to_list())
    if window is not None:
        sidebar.drill_down(nav.CALLS, filters.with_window(*window), status="error")

    st.subheader("Recent errors")
    st.caption(
        f"The latest {recent.height:,} of {fmt.count(total)} failed calls; open one for its trace and every field."
    )
    if recent.height:
        ui.table(
            recent.select(RECENT),
            "recent_errors",
            units={"start_time": "time", "duration_ms": "ms", "http_status": "int"},
            column_config={
                "start_time": "Started (UTC)",
                "service": "Service",
                "model": "Model",
                "provider": "Provider",
                "error_type": "Error",
                "http_status": "HTTP",
                "error_message": st.column_config.TextColumn("Message", width="large"),
                "duration_ms": "Duration (ms)",
                "user_id": "User",
                "trace_id": "Trace",
                "span_id": "Span",
            },
            links=[nav.call_link(filters, r["trace_id"], r["span_id"]) for r in recent.iter_rows(named=True)],
        )
