"""The pages of the app (paths relative to dashboard/app.py), so pages can link to each other by name."""

from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

from dashboard.filters import ViewFilters

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


# Pages that draw charts on every visit start loading plotly.js (1.2 MB to fetch, parse and compile: ~0.3 s of the
# browser's main thread even from its cache) while they wait for their numbers. The others (Calls, Budgets, Price
# book, Alerts, Call and trace, Access) draw a chart only when there is something to chart (a budget, an alert's
# history, a chosen call); their charts load it themselves then, and a visit without one does not pay for it.
ALWAYS_CHARTS = ("", "cost", "latency", "errors", "drift")  # url paths; "" is the default page, the Overview


def draws_charts(page: st.Page) -> bool:
    return page.url_path in ALWAYS_CHARTS


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


def link(url_path: str, filters: ViewFilters, **page_params: str) -> str:
    """The address of a page with `filters` and its own parameters, relative to the page linking to it (so it
    holds under a base URL path): what a link in a table points to. Opening it is a new session, and a new session
    takes its filters from the URL."""
    return f"{url_path}?" + urlencode({**filters.to_query(), **page_params}, doseq=True)


def call_link(filters: ViewFilters, trace_id: str, span_id: str) -> str:
    """The address of a call's page, keeping the filters of the page linking to it."""
    return link("call", filters, trace=trace_id, span=span_id)
