"""callscope dashboard: `streamlit run dashboard/app.py` (or `callscope dashboard`). Reads only the read API."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import streamlit as st

from dashboard import auth, data, nav, plot, sidebar, ui
from dashboard.api_client import ApiError

# A local icon: a material-icon or emoji favicon is fetched from a CDN, and the dashboard needs no network.
st.set_page_config(
    page_title="callscope", page_icon=str(Path(__file__).parent / "static" / "favicon.png"), layout="wide"
)
plot.begin_run()
try:
    allowed = auth.gate()  # the sign-in / not-allowed page instead of the app when nobody may see it
except ApiError as exc:
    ui.show_api_error(exc)
    allowed = False
if allowed:
    page = st.navigation(nav.pages(admin="admin" in auth.roles().values()))
    if nav.draws_charts(page):
        plot.preload()
    draw_pickers = sidebar.render()
    try:
        page.run()
    except ApiError as exc:
        ui.show_api_error(exc)
    finally:
        draw_pickers()
# Last element of every run: a footer, and for browser tests and the benchmark the sign that the page is complete.
with st.container(key="rendered"):
    st.caption(f"callscope {version('callscope')} · data from {data.config().url}")
    plot.drawn_marker()
