"""The pages of the app (paths relative to dashboard/app.py), so pages can link to each other by name."""

from __future__ import annotations

import streamlit as st

OVERVIEW = "views/overview.py"
COST = "views/cost.py"
LATENCY = "views/latency.py"
ERRORS = "views/errors.py"
CALLS = "views/calls.py"
CALL = "views/call.py"
DRIFT = "views/drift.py"
ACCESS = "views/access.py"
BUDGETS = "views/budgets.py"
PRICES = "views/prices.py"


# Pages that never draw a chart: they do not start loading plotly.js (1.2 MB to fetch, parse and compile) early.
WITHOUT_CHARTS = ("calls",)  # url paths (views/calls.py)


def draws_charts(page: st.Page) -> bool:
    return page.url_path not in WITHOUT_CHARTS


def pages(admin: bool = False) -> list[st.Page]:
    """The pages; the Access page (users, audit log) only for who is an admin somewhere."""
    return [
        st.Page(OVERVIEW, title="Overview", icon=":material/space_dashboard:", default=True),
        st.Page(COST, title="Cost", icon=":material/payments:"),
        st.Page(BUDGETS, title="Budgets", icon=":material/savings:"),
        st.Page(PRICES, title="Price book", icon=":material/sell:"),
        st.Page(LATENCY, title="Latency", icon=":material/speed:"),
        st.Page(ERRORS, title="Errors", icon=":material/error:"),
        st.Page("views/alerts.py", title="Alerts", icon=":material/notifications_active:"),
        st.Page(DRIFT, title="Drift", icon=":material/query_stats:"),
        st.Page(CALLS, title="Calls", icon=":material/list:"),
        st.Page(CALL, title="Call and trace", icon=":material/account_tree:"),
        *([st.Page(ACCESS, title="Access", icon=":material/admin_panel_settings:")] if admin else []),
    ]
