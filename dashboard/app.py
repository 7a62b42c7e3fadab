"""callscope dashboard: `streamlit run dashboard/app.py` (or `callscope dashboard`). Reads only the read API."""

from __future__ import annotations

from importlib.metadata import version

import streamlit as st

from dashboard import data, nav, plot, sidebar, ui
from dashboard.api_client import ApiError

st.set_page_config(page_title="callscope", page_icon=":material/monitoring:", layout="wide")
page = st.navigation(nav.pages())
plot.begin_run()
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
