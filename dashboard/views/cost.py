"""Cost: where the money goes (by model, provider, service, user or tag), per call and per 1k tokens, what is
not priced, and the month so far."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import polars as pl
import streamlit as st

from dashboard import charts, data, fmt, nav, sidebar, ui, whatif_panel
from dashboard.filters import iso

BREAKDOWNS = {"model": "Model", "provider": "Provider", "service": "Service", "user": "User", "tag": "Tag"}
PER_GROUP = ("cost_usd", "calls", "cost_per_call", "cost_per_1k_tokens", "total_tokens")
UNPRICED = ("unpriced_calls", "calls", "unpriced_token_share")
KPIS = (
    ui.Kpi("cost_usd", "Spend", fmt.usd, help="USD of priced calls."),
    ui.Kpi("cost_per_call", "Cost per call", fmt.usd, help="Mean over priced calls."),
    ui.Kpi("cost_per_1k_tokens", "Cost per 1k tokens", fmt.usd, help="Input + output tokens of priced calls."),
    ui.Kpi("unpriced_call_share", "Unpriced calls", fmt.pct, help="Calls of models with no known price."),
)


def month_to_date(filters) -> float | None:
    """Spend from the first of this month (in the view's time zone) until now, with the same dimension filters."""
    zone = ZoneInfo(filters.tz)
    first = datetime.now(UTC).astimezone(zone).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    # No end: the server's "now", so the question (and its cache key) stays the same all month.
    return data.totals(replace(filters, range="custom", start=iso(first), end=None), ("cost_usd",))["cost_usd"]


filters = sidebar.current()
st.title("Cost")
st.caption(f"Spend of priced calls in the {filters.describe()}, in USD.")
# The breakdown picker is drawn below the tiles; its value from the last run is known already.
dim = st.session_state.get("cost_by") or "model"
top_metrics = ("cost_usd", "calls")
loaded = ui.load(
    filters,
    lambda: data.compare(filters, [k.metric for k in KPIS]),
    lambda: month_to_date(filters),
    lambda: data.stats(filters, ("cost_usd",), group_by=(dim,), bucket="auto", top_groups=8),
    lambda: data.stats(filters, PER_GROUP, group_by=(dim,), order_by="cost_usd", limit=20),
    lambda: data.stats(filters, top_metrics, group_by=("user",), order_by="cost_usd", limit=10),
    lambda: data.stats(filters, top_metrics, group_by=("session",), order_by="cost_usd", limit=10),
    lambda: data.stats(filters, top_metrics, group_by=("tag",), order_by="cost_usd", limit=10),
    lambda: data.stats(filters, UNPRICED, group_by=("provider", "model"), order_by="unpriced_calls", limit=50),
)
if loaded is not None:
    kpis, mtd, series, per, top_user, top_session, top_tag, unpriced = loaded
    row = kpis.row(0, named=True)
    ui.kpi_row(row, KPIS)
    mtd_col, _ = st.columns([1, 3])
    mtd_col.metric("Month to date", fmt.usd(mtd), border=True, help="Spend since the 1st, in the view's zone.")
    st.segmented_control(
        "Break spend down by", list(BREAKDOWNS), format_func=BREAKDOWNS.__getitem__, default="model", key="cost_by"
    )
    event = ui.chart(
        charts.series(
            series,
            "cost_usd",
            "USD",
            f"Spend over time by {BREAKDOWNS[dim].lower()} (USD)",
            group=dim,
            kind="bar",
            stacked=True,
        ),
        "cost_series",
        select="points",
    )
    point = ui.selected_point(event)
    if point is not None:
        window = ui.selected_window(event, series["bucket"].unique().sort().to_list())
        value = point.get("customdata")
        chosen = filters.with_window(*window) if window else filters
        if dim in ("model", "provider", "service", "user", "tag") and value not in (None, "(other)", "(none)"):
            chosen = chosen.with_dim(dim, [str(value)])
        sidebar.drill_down(nav.CALLS, chosen)

    st.dataframe(
        ui.money_table(per, money=("cost_usd", "cost_per_call", "cost_per_1k_tokens")),
        column_config={
            dim: BREAKDOWNS[dim],
            "cost_usd": st.column_config.NumberColumn("Spend (USD)", format="$%.4f"),
            "calls": st.column_config.NumberColumn("Calls", format="localized"),
            "cost_per_call": st.column_config.NumberColumn("Per call (USD)", format="$%.6f"),
            "cost_per_1k_tokens": st.column_config.NumberColumn("Per 1k tokens (USD)", format="$%.6f"),
            "total_tokens": st.column_config.NumberColumn("Tokens", format="localized"),
        },
        hide_index=True,
        key="cost_table",
    )

    st.subheader("Top spenders")
    cols = st.columns(3)
    for col, (who, title) in zip(
        cols, (("user", "Users"), ("session", "Sessions"), ("tag", "Features (tags)")), strict=True
    ):
        top = {"user": top_user, "session": top_session, "tag": top_tag}[who]
        with col:
            ui.chart(
                charts.ranking(top.filter(pl.col(who).is_not_null()), who, "cost_usd", "USD", f"Top {title.lower()}"),
                f"top_{who}",
            )

    st.subheader("Unpriced calls")
    unpriced = unpriced.filter(pl.col("unpriced_calls") > 0)
    share = row.get("unpriced_call_share")
    if unpriced.height == 0:
        st.success("Every call in this view has a price.")
    else:
        st.warning(
            f"{fmt.pct(share)} of calls have no known price and are not in the spend above. Add prices for these "
            "models in callscope.toml (`[[prices]]`)."
        )
        st.dataframe(
            ui.money_table(unpriced, shares=("unpriced_token_share",)),
            column_config={
                "unpriced_calls": st.column_config.NumberColumn("Unpriced calls", format="localized"),
                "calls": st.column_config.NumberColumn("Calls", format="localized"),
                "unpriced_token_share": st.column_config.NumberColumn("Share of tokens (%)", format="%.2f%%"),
            },
            hide_index=True,
            key="unpriced",
        )

whatif_panel.render(filters.api_params(), [m for m in data.values(filters, "model", 50) if m])
