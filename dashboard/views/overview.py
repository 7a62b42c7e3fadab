"""Overview: what was spent and how the calls went, against the previous period, what changed most (one click from
the page that shows it), and the models that moved most."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard import budget_charts, charts, data, fmt, movers, nav, sidebar, ui

KPIS = (
    ui.Kpi("cost_usd", "Spend", fmt.usd, help="USD of priced calls; unpriced calls are not counted as $0."),
    ui.Kpi("calls", "Calls", fmt.count, up_is_good=True),
    ui.Kpi("error_rate", "Error rate", fmt.pct),
    ui.Kpi("latency_p95", "p95 latency", fmt.ms),
    ui.Kpi("ttft_p50", "TTFT p50", fmt.ms, help="Time to first token, median over streamed calls."),
    ui.Kpi("total_tokens", "Tokens", fmt.compact, up_is_good=True, help="Input + output tokens."),
)
CALLOUT_DIMS = ("service", "model", "provider")
PAGES = {"spend": nav.COST, "error_rate": nav.ERRORS, "latency_p95": nav.LATENCY, "tokens_per_call": nav.COST}
TITLES = {"spend": "Spend", "error_rate": "Error rate", "latency_p95": "p95 latency", "tokens_per_call": "Tokens/call"}


def callout_text(c: movers.Callout) -> str:
    who = f"{c.dim} **{c.value if c.value is not None else '(none)'}**"
    if c.measure == "spend":
        return (
            f"{who}: {fmt.usd(c.before)} → {fmt.usd(c.now)} ({'+' if c.change >= 0 else '-'}{fmt.usd(abs(c.change))})"
        )
    if c.measure == "error_rate":
        return f"{who}: {fmt.pct(c.before)} → {fmt.pct(c.now)} ({c.change:+,.0f} errors beyond the earlier rate)"
    if c.measure == "latency_p95":
        return f"{who}: {fmt.ms(c.before)} → {fmt.ms(c.now)} ({c.change * 100:+.0f}%)"
    return f"{who}: {c.detail} {fmt.count(c.before)} → {fmt.count(c.now)} tokens ({c.change * 100:+.0f}%)"


def show_callouts(frames: dict[str, pl.DataFrame], totals: dict) -> None:
    st.subheader("What changed")
    if not totals.get("calls_prev"):
        st.info(
            "No calls in the previous period of the same length, so there is nothing to compare with yet: "
            "pick a shorter time range to compare its second half with its first."
        )
        return
    found = movers.biggest(frames, int(totals["calls"] or 0))
    if not found:
        st.caption("Nothing moved against the previous period of the same length.")
        return
    st.caption(
        "Against the previous period of the same length: the service, model or provider that moved most, per "
        "measure (spend in dollars, errors beyond the earlier rate, p95 and tokens per call among groups with "
        f"at least {movers.MIN_CALLS} calls and {movers.MIN_SHARE:.0%} of calls)."
    )
    for column, c in zip(st.columns(len(found)), found, strict=True):
        with column.container(border=True, key=f"callout_{c.measure}"):
            st.markdown(f"**{TITLES[c.measure]}**  \n{callout_text(c)}")
            st.page_link(PAGES[c.measure], label="Show it", icon=":material/arrow_forward:")


filters = sidebar.current()
firing = data.background(data.alert_instances)  # alerts are about now, whatever the range; asked while we wait
st.title("Overview")
st.caption(f"All calls in the {filters.describe()}.")
loaded = ui.load(
    filters,
    lambda: data.compare(filters, [k.metric for k in KPIS]),
    lambda: data.stats(filters, ("cost_usd", "calls"), bucket="auto"),
    lambda: data.compare(filters, ("cost_usd", "calls"), group_by=("model",)),
    *(lambda d=d: data.compare(filters, movers.METRICS, group_by=(d,)) for d in CALLOUT_DIMS),
    lambda: data.anomalies(filters),
)
if loaded is not None:
    kpis, series, by_model, *callout_frames, anomalies = loaded
    row = kpis.row(0, named=True)
    ui.kpi_row(row, KPIS)
    show_callouts(dict(zip(CALLOUT_DIMS, callout_frames, strict=True)), row)

    left, right = st.columns(2)
    with left:
        ui.chart(
            charts.series(series, "cost_usd", "USD", "Spend over time (USD)", kind="bar"),
            "spend_over_time",
            filters=filters,
            anomalies=[a for a in anomalies if a["metric"] == "spend"],
        )
    with right:
        event = ui.chart(
            charts.series(series, "calls", "calls", "Calls over time (click a bar for its calls)", kind="bar"),
            "calls_over_time",
            select="points",
            filters=filters,
            anomalies=[a for a in anomalies if a["metric"] == "calls"],
        )
        window = ui.selected_window(event, series["bucket"].to_list())
        if window is not None:
            sidebar.drill_down(nav.CALLS, filters.with_window(*window))

    st.subheader("Top movers by model")
    if not row.get("calls_prev"):
        st.caption("Spend and calls per model. No calls in the previous period: the change columns stay empty.")
    else:
        st.caption("Spend and calls per model against the previous period, largest spend change first.")
    by_model = by_model.sort(pl.col("cost_usd_delta").abs(), descending=True, nulls_last=True).head(10)
    ui.table(
        by_model.select(
            "model", "cost_usd", "cost_usd_prev", "cost_usd_delta", "cost_usd_delta_pct", "calls", "calls_delta"
        ),
        "movers",
        units={
            "cost_usd": "USD",
            "cost_usd_prev": "USD",
            "cost_usd_delta": "USD+",
            "cost_usd_delta_pct": "ratio+",
            "calls_delta": "count+",
        },
        column_config={
            "model": "Model",
            "cost_usd": "Spend",
            "cost_usd_prev": "Before",
            "cost_usd_delta": "Change",
            "cost_usd_delta_pct": "Change (%)",
            "calls": st.column_config.NumberColumn("Calls", format="localized"),
            "calls_delta": "Calls change",
        },
    )

budget_charts.overview_tiles()

st.subheader("Firing alerts")
ui.firing_alerts(firing)
