"""The Budgets view's chart and the Overview's budget tiles: spend to date, the forecast band, the budget line and
the crossing date, drawn from one budget's API answer (GET /api/v1/budgets/{name}); no numbers computed here
beyond accumulating the daily figures the API gave."""

from __future__ import annotations

from itertools import accumulate
from typing import Any

import streamlit as st

from dashboard import data, fmt
from dashboard.api_client import ApiError
from dashboard.figure import Figure, Scatter


def budget_figure(b: dict[str, Any]) -> Figure:
    spent_days = [d["day"] for d in b["daily"]]
    spent = list(accumulate(d["spent_usd"] for d in b["daily"]))
    base = b["spent_usd"] if b["budget"]["period"] != "rolling" else 0.0
    ahead = [d["day"] for d in b["forecast_daily"]]
    expected = [base + x for x in accumulate(d["expected_usd"] for d in b["forecast_daily"])]
    rest = (b["forecast_usd"] - base) or 1.0
    # the interval is of the period's total; the band widens with the expected spend still to come
    low = [base + (e - base) * (b["forecast_low_usd"] - base) / rest for e in expected]
    high = [base + (e - base) * (b["forecast_high_usd"] - base) / rest for e in expected]
    fig = Figure()
    fig.add_trace(
        Scatter(
            x=ahead + ahead[::-1],
            y=high + low[::-1],
            fill="toself",
            name=f"{b['interval_level']:.0%} interval",
            line={"width": 0},
            fillcolor="rgba(63,81,181,0.15)",
            hoverinfo="skip",
        )
    )
    fig.add_trace(Scatter(x=spent_days, y=spent, name="spent", mode="lines+markers", line={"color": "#3f51b5"}))
    fig.add_trace(
        Scatter(x=ahead, y=expected, name="forecast", mode="lines", line={"dash": "dash", "color": "#3f51b5"})
    )
    x_all = spent_days + ahead
    if x_all:
        amount = b["budget"]["amount_usd"]
        fig.add_trace(
            Scatter(x=[x_all[0], x_all[-1]], y=[amount, amount], name="budget", mode="lines", line={"color": "#c62828"})
        )
    if b.get("crossing_date"):
        fig.add_vline(x=b["crossing_date"], line={"color": "#c62828", "dash": "dot"})
        fig.add_annotation(
            x=b["crossing_date"], y=b["budget"]["amount_usd"], text=f"crosses {b['crossing_date']}", showarrow=True
        )
    fig.update_layout(
        title=f"{b['budget']['name']}: spend and forecast (USD)",
        height=340,
        margin={"l": 40, "r": 20, "t": 50, "b": 30},
        yaxis_title="USD",
    )
    return fig


def tile(b: dict[str, Any]) -> None:
    """One budget as a metric tile: spent of amount, and the forecast against it."""
    amount = b["budget"]["amount_usd"]
    over = b["forecast_usd"] > amount
    st.metric(
        b["budget"]["name"],
        f"{fmt.usd(b['spent_usd'])} of {fmt.usd(amount)}",
        delta=f"forecast {fmt.usd(b['forecast_usd'])} ({b['forecast_share']:.0%})",
        delta_color="inverse" if over else "normal",
        border=True,
        help=(
            f"{b['budget']['period']} budget; forecast {fmt.usd(b['forecast_low_usd'])} to "
            f"{fmt.usd(b['forecast_high_usd'])} ({b['interval_level']:.0%})"
            + (f"; crosses the budget on {b['crossing_date']}" if b.get("crossing_date") else "")
        ),
    )


def tiles(budgets: list[dict[str, Any]], limit: int = 4) -> None:
    """The Overview's budget tiles (the budgets most spent first), or nothing when there are none."""
    if not budgets:
        return
    st.subheader("Budgets")
    shown = sorted(budgets, key=lambda b: b["forecast_share"], reverse=True)[:limit]
    for col, b in zip(st.columns(len(shown)), shown, strict=True):
        with col:
            tile(b)


def overview_tiles() -> None:
    """The Overview's hook: budget tiles, or nothing when the server has none (or no budget routes)."""
    try:
        found = data.client().budgets()
    except ApiError:
        return
    tiles(found)
