"""Budgets: spend to date against each budget, the month-end (or week-end) forecast with its band, the budget line
and the date the forecast crosses it; and a form to add a budget. All figures come from /api/v1/budgets."""

from __future__ import annotations

import streamlit as st

from dashboard import data, fmt, ui
from dashboard.api_client import ApiError
from dashboard.budget_charts import budget_figure, tile

st.title("Budgets")
st.caption(
    "Spend to date in each budget's period, and a forecast to the period's end (weekday-seasonal level with growth;"
    " the band is its interval). Budget signals (50/80/100 % spent, forecast overrun) are alert metrics:"
    " budget_spent_share, budget_forecast_share."
)
budgets = data.client().budgets()
if not budgets:
    st.info("No budgets yet. Add one below, or in callscope.toml (`[[budgets]]`).")
for b in budgets:
    with st.container(border=True, key=f"budget_{b['budget']['budget_id']}"):
        left, right = st.columns([1, 3])
        with left:
            tile(b)
            st.caption(
                f"Burn rate {fmt.usd(b['burn_rate_usd_per_day'])}/day · {b['budget']['period']}"
                f" · {b['budget']['tz']} · filters {b['budget']['filters'] or 'none'}"
            )
            if b["overrun"]:
                st.error(f"Forecast overrun: {fmt.usd(b['forecast_usd'])} expected by the period's end.")
        with right:
            ui.chart(budget_figure(b), f"budget_chart_{b['budget']['budget_id']}")

st.subheader("Add a budget")
with st.form("new_budget", clear_on_submit=False):
    cols = st.columns(4)
    name = cols[0].text_input("Name", key="budget_name")
    amount = cols[1].number_input("Amount (USD)", min_value=0.0, value=100.0, step=10.0, key="budget_amount")
    period = cols[2].selectbox("Period", ["month", "week", "rolling"])
    days = cols[3].number_input("Days (rolling)", min_value=1, max_value=366, value=30)
    cols = st.columns(3)
    tz = cols[0].text_input("Time zone", value="UTC")
    dimension = cols[1].selectbox("Filter by", ["(none)", "project", "service", "model", "user", "tag", "environment"])
    value = cols[2].text_input("Filter value")
    if st.form_submit_button("Add budget", key="budget_add"):
        body = {"name": name, "amount_usd": amount, "period": period, "tz": tz}
        if period == "rolling":
            body["days"] = int(days)
        if dimension != "(none)" and value:
            body["filters"] = {dimension: value}
        try:
            data.client().create_budget(body)
        except ApiError as exc:
            st.error(f"Not added: {exc.reason}")
        else:
            st.success(f"Budget {name} added.")
            st.rerun()
