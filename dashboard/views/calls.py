"""Calls explorer: every call behind the numbers, searchable, sortable, paged and exportable; a row opens the call."""

from __future__ import annotations

import streamlit as st

from dashboard import data, fmt, nav, sidebar, ui
from dashboard.calls_explorer import COLUMNS, SORTS, UNITS, PageState

PAGE_SIZE = 50

filters = sidebar.current()
state = PageState.from_query(st.query_params)
st.title("Calls")

top = st.columns([3, 1, 1, 1])
q = top[0].text_input("Search", value=state.q, placeholder="model, service, user, session, error, trace id…")
status = top[1].selectbox("Status", ("all", "ok", "error"), index=("all", "ok", "error").index(state.status))
sort = top[2].selectbox("Sort by", list(SORTS), index=list(SORTS).index(state.sort), format_func=SORTS.__getitem__)
order = top[3].selectbox("Order", ("descending", "ascending"), index=0 if state.desc else 1)
model = state.request_model
if model:
    asked = st.columns([5, 1])
    asked[0].caption(f"Only calls that asked for the model **{model}** (opened from the Drift page).")
    if asked[1].button("Show all models", key="clear_request_model"):
        model = ""
new = PageState(q.strip(), status, sort, order == "descending", state.page, model)
if new.key() != state.key():
    new = new.first_page()
extra = new.api_params()

frame, total = data.calls(
    filters, extra=extra, order_by=new.sort, desc=new.desc, limit=PAGE_SIZE, offset=(new.page - 1) * PAGE_SIZE
)
total = total or 0
pages = max(1, -(-total // PAGE_SIZE))
if new.page > pages:
    new = new.first_page()
new.write(st.query_params)

first = (new.page - 1) * PAGE_SIZE + 1 if total else 0
st.caption(
    f"Calls {fmt.count(first)} to {fmt.count(min(new.page * PAGE_SIZE, total))} of {fmt.count(total)} in the "
    f"{filters.describe()}. Select a row to open the call and its trace."
)
if total == 0:
    st.info("No calls match. Clear the search or widen the filters in the sidebar.")
else:
    shown = frame.select([c for c in COLUMNS if c in frame.columns])
    event = ui.table(
        shown,
        "calls_table",
        column_config=COLUMNS,
        units=UNITS,
        max_rows=PAGE_SIZE,
        on_select="rerun",
        selection_mode="single-row",
    )
    rows = event.selection.rows if event else []
    if rows:
        chosen = frame.row(rows[0], named=True)
        st.switch_page(
            nav.CALL, query_params={**filters.to_query(), "trace": chosen["trace_id"], "span": chosen["span_id"]}
        )

    nav_cols = st.columns([1, 1, 2, 2, 2])
    if nav_cols[0].button("← Previous", disabled=new.page <= 1, key="prev_page"):
        new.at(new.page - 1).write(st.query_params)
        st.rerun()
    if nav_cols[1].button("Next →", disabled=new.page >= pages, key="next_page"):
        new.at(new.page + 1).write(st.query_params)
        st.rerun()
    nav_cols[2].markdown(f"Page {new.page} of {pages:,}")
    nav_cols[3].download_button(
        "Export CSV",
        data=lambda: data.export(filters, "csv", extra),
        file_name="callscope-calls.csv",
        mime="text/csv",
        on_click="ignore",
        key="export_csv",
        help="Every matching call (not only this page), streamed from the server.",
    )
    nav_cols[4].download_button(
        "Export Parquet",
        data=lambda: data.export(filters, "parquet", extra),
        file_name="callscope-calls.parquet",
        mime="application/vnd.apache.parquet",
        on_click="ignore",
        key="export_parquet",
    )
