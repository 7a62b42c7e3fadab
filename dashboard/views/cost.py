"""Cost: where the money goes (by model, provider, service, user or tag), per call and per 1k tokens, what is
not priced, and the month so far."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import polars as pl
import streamlit as st

from dashboard import charts, data, fmt, nav, sidebar, ui, whatif_panel
from dashboard.filters import FILTER_DIMS, iso

BREAKDOWNS = {"model": "Model", "provider": "Provider", "service": "Service", "user": "User", "tag": "Tag"}
PER_GROUP = ("cost_usd", "calls", "cost_per_call", "cost_per_1k_tokens", "total_tokens")
UNPRICED = ("unpriced_calls", "calls", "unpriced_token_share")
KPIS = (
    ui.Kpi("cost_usd", "Spend", fmt.usd, help="USD of priced calls."),
    ui.Kpi("cost_per_call", "Cost per call", fmt.usd, help="Mean over priced calls."),
    ui.Kpi("cost_per_1k_tokens", "Cost per 1k tokens", fmt.usd, help="Input + output tokens of priced calls."),
    ui.Kpi("unpriced_call_share", "Unpriced calls", fmt.pct, help="Calls of models with no known price."),
)
PANELS = 9  # services drawn as small multiples (3 x 3), the biggest spenders first


def month_to_date(filters) -> float | None:
    """Spend from the first of this month (in the view's time zone) until now, with the same dimension filters."""
    zone = ZoneInfo(filters.tz)
    first = datetime.now(UTC).astimezone(zone).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    # No end: the server's "now", so the question (and its cache key) stays the same all month.
    return data.totals(replace(filters, range="custom", start=iso(first), end=None), ("cost_usd",))["cost_usd"]


def top_spenders(filters, top_user: pl.DataFrame, top_session: pl.DataFrame, top_tag: pl.DataFrame) -> None:
    """The ten biggest spenders of each kind as tables (names and amounts are what is read here; a bar chart each
    cost a new tab ~0.05 s); a user's or a tag's row opens its calls."""
    whose = (
        ("user", "Top users", "User", top_user),
        ("session", "Top sessions", "Session", top_session),
        ("tag", "Top features (tags)", "Tag", top_tag),
    )
    for col, (who, title, label, top) in zip(st.columns(3), whose, strict=True):
        with col:
            st.markdown(f"**{title}**")
            top = top.filter(pl.col(who).is_not_null() & pl.col("cost_usd").is_not_null()).sort(
                "cost_usd", descending=True
            )
            if top.height == 0:
                st.caption(f"No priced calls with a {who} in this range.")
                continue
            links = None
            if who in FILTER_DIMS:
                links = [nav.link("calls", filters.with_dim(who, [str(v)])) for v in top[who].to_list()]
            ui.table(
                top.select(who, "cost_usd", "calls"),
                f"top_{who}",
                units={"cost_usd": "USD", who: "text"},
                column_config={
                    who: label,
                    "cost_usd": "Spend",
                    "calls": st.column_config.NumberColumn("Calls", format="localized"),
                },
                links=links,
                link_column=who,
            )


def unpriced_calls(filters, unpriced: pl.DataFrame, over_time: pl.DataFrame) -> None:
    unpriced = unpriced.filter(pl.col("unpriced_calls") > 0)
    if unpriced.height == 0:
        st.success("Every call in this view has a price.")
        return
    left, right = st.columns([2, 1])
    with left:
        ui.chart(
            charts.series(
                over_time.filter(pl.col("unpriced_calls") > 0),
                "unpriced_calls",
                "calls",
                "Unpriced calls over time by model",
                group="model",
                kind="bar",
                stacked=True,
            ),
            "unpriced_series",
            filters=filters,
        )
    with right:
        ui.table(
            unpriced,
            "unpriced",
            units={"unpriced_token_share": "ratio", "provider": "text"},
            column_config={
                "provider": "Provider",
                "model": "Model",
                "unpriced_calls": st.column_config.NumberColumn("Unpriced calls", format="localized"),
                "calls": st.column_config.NumberColumn("Calls", format="localized"),
                "unpriced_token_share": "Share of tokens",
            },
        )


def what_if(filters, models: list[str]) -> None:
    whatif_panel.render(filters.api_params(), [m for m in models if m])


TOP = ("cost_usd", "calls")
SECTIONS = {
    "Top spenders": ui.Section(
        lambda f: [
            lambda who=who: data.stats(f, TOP, group_by=(who,), order_by="cost_usd", limit=10)
            for who in ("user", "session", "tag")
        ],
        top_spenders,
    ),
    "Unpriced calls": ui.Section(
        lambda f: [
            lambda: data.stats(f, UNPRICED, group_by=("provider", "model"), order_by="unpriced_calls", limit=50),
            lambda: data.stats(f, ("unpriced_calls",), group_by=("model",), bucket="auto", top_groups=6),
        ],
        unpriced_calls,
    ),
    "What if": ui.Section(lambda f: [lambda: data.values(f, "model", 50)], what_if),
}


filters = sidebar.current()
st.title("Cost")
st.caption(f"Spend of priced calls in the {filters.describe()}, in USD.")
# The breakdown picker is drawn below the tiles; its value from the last run is known already.
dim = st.session_state.get("cost_by") or "model"
section = ui.open_tab("section", SECTIONS)
loaded = ui.load(
    filters,
    lambda: data.compare(filters, [k.metric for k in KPIS]),
    lambda: month_to_date(filters),
    lambda: data.stats(filters, ("cost_usd",), group_by=(dim,), bucket=ui.stacked_bucket(filters), top_groups=8),
    lambda: data.stats(filters, PER_GROUP, group_by=(dim,), order_by="cost_usd", limit=20),
    lambda: data.stats(
        filters,
        ("cost_per_call", "input_tokens_per_call", "output_tokens_per_call"),
        group_by=("service",),
        bucket="auto",
        top_groups=PANELS,
        top_by="cost_usd",
    ),
    lambda: data.anomalies(filters),
    *SECTIONS[section].loaders(filters),
)
if loaded is not None:
    kpis, mtd, series, per, per_service, marks, *section_data = loaded
    row = kpis.row(0, named=True)
    # the four tiles and the month so far in one row (a fifth tile alone on a line reads as a different thing)
    tiles = st.columns(len(KPIS) + 1)
    with tiles[-1]:
        st.metric(
            "Month to date",
            fmt.usd(mtd),
            delta="since the 1st",
            delta_arrow="off",
            delta_color="off",
            border=True,
            help="Spend since the 1st of this month, in the view's time zone.",
        )
    ui.kpi_row(row, KPIS, columns=tiles[:-1])
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
        filters=filters,
        anomalies=[a for a in marks if a["metric"] == "spend"],
    )
    point = ui.selected_point(event)
    if point is not None:
        window = ui.selected_window(event, series["bucket"].unique().sort().to_list())
        value = point.get("customdata")
        chosen = filters.with_window(*window) if window else filters
        if dim in ("model", "provider", "service", "user", "tag") and value not in (None, "(other)", "(none)"):
            chosen = chosen.with_dim(dim, [str(value)])
        sidebar.drill_down(nav.CALLS, chosen)

    ui.table(
        per.select(dim, "cost_usd", "calls", "cost_per_call", "cost_per_1k_tokens", "total_tokens"),
        "cost_table",
        units={"cost_usd": "USD", "cost_per_call": "USD", "cost_per_1k_tokens": "USD", dim: "text"},
        column_config={
            dim: BREAKDOWNS[dim],
            "cost_usd": "Spend",
            "calls": st.column_config.NumberColumn("Calls", format="localized"),
            "cost_per_call": "Per call",
            "cost_per_1k_tokens": "Per 1k tokens",
            "total_tokens": st.column_config.NumberColumn("Tokens", format="localized"),
        },
    )

    st.subheader("Per call, per service")
    st.caption(
        "Mean cost of a priced call and mean tokens per call, one small chart per service (the biggest spenders "
        "first), each on its own scale: a prompt change that doubles one feature's cost shows here even when the "
        "total barely moves."
    )
    services = [v for v in per_service["service"].unique(maintain_order=True).to_list() if v != "(other)"]
    per_service = per_service.filter(pl.col("service").is_in(services) | pl.col("service").is_null())
    ui.chart(
        charts.small_multiples(
            per_service,
            "service",
            {"cost_per_call": "cost per call"},
            "USD",
            "Cost per call by service (USD)",
            order=services,
        ),
        "cost_per_call_by_service",
        filters=filters,
    )
    ui.chart(
        charts.small_multiples(
            per_service,
            "service",
            {"input_tokens_per_call": "input", "output_tokens_per_call": "output"},
            "tokens",
            "Tokens per call by service (input and output)",
            order=services,
        ),
        "tokens_per_call_by_service",
        filters=filters,
    )

    st.subheader("Top spenders, unpriced calls, other models")
    share = row.get("unpriced_call_share")
    if share:
        st.warning(
            f"{fmt.pct(share)} of calls have no known price and are not in the spend above: see Unpriced calls. "
            "Add prices for these models in callscope.toml (`[[prices]]`)."
        )
    # Drawn only when chosen (the tab is in the URL): the charts above answer at a glance; these are for reading on.
    for tab, (label, shown) in zip(
        st.tabs(list(SECTIONS), key="section", bind="query-params"), SECTIONS.items(), strict=True
    ):
        if tab.open:
            with tab:
                shown.draw(filters, *(section_data if label == section else data.parallel(*shown.loaders(filters))))
