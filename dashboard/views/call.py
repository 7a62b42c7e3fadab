"""One call: every stored field, its tokens and cost, its content if stored, and its trace as a timeline."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, data, fmt, nav, sidebar, ui
from dashboard.api_client import ApiError
from dashboard.call_layout import cost_rows, field_rows

trace_id = st.query_params.get("trace", "")
span_id = st.query_params.get("span", "")
st.title("Call and trace")
if not trace_id or not span_id:
    st.info("Pick a call in the Calls explorer (or a slow call on the Latency page) to see it here.")
    if st.button("Open the Calls explorer"):
        st.switch_page(nav.CALLS)
    st.stop()

try:
    call = data.call(trace_id, span_id)
except ApiError as exc:
    if exc.kind in ("not_found", "bad_request"):
        st.warning(f"No call {trace_id}/{span_id} in the store ({exc}).")
        st.stop()
    raise

# the same name as the Calls list and every chart (one name per model); what was asked and answered follows
model = call.get("model") or call.get("response_model") or call.get("request_model") or "unknown model"
asked = [
    f"{label} {call[key]}"
    for key, label in (("request_model", "asked for"), ("response_model", "answered by"))
    if call.get(key) and call[key] != model
]
if len(asked) == 2 and call["request_model"] == call["response_model"]:
    asked = [f"asked for and answered by {call['request_model']}"]
status = "failed" if call["status"] == "error" else "ok"
st.markdown(
    f"**{model}**{' (' + ', '.join(asked) + ')' if asked else ''} via {call.get('provider') or 'an unknown provider'}"
    f" · service **{call.get('service') or '(none)'}** · {fmt.when(call['start_time'])} UTC · {status}"
    + (f" (**{call['error_type']}**)" if call.get("error_type") else "")
)
if call.get("error_message"):
    st.error(f"**{call.get('error_type') or 'Error'}**: {call['error_message']}", icon=":material/error:")
ui.kpi_row(
    call,
    (
        ui.Kpi("duration_ms", "Duration", fmt.ms),
        ui.Kpi("ttft_ms", "TTFT", fmt.ms, help="Time to first token (streamed calls only)."),
        ui.Kpi("input_tokens", "Input tokens", fmt.count),
        ui.Kpi("output_tokens", "Output tokens", fmt.count),
        ui.Kpi("cost_usd", "Cost", fmt.usd, help="Computed at ingest; the exact value is in the table below."),
    ),
    compare=False,
)

left, right = st.columns([2, 3])
with left:
    st.subheader("Tokens and cost")
    breakdown = cost_rows(call)
    # Tall enough for every line (header + rows of 35 px), so the cost split never hides behind a scroll bar.
    ui.table(breakdown, "cost_breakdown", max_rows=breakdown.height)
with right:
    st.subheader("Trace")
    trace = data.trace(trace_id)
    st.caption(
        f"{fmt.plural(trace['span_count'], 'span')} over {fmt.ms(trace['duration_ms'])}. Click a model call to open it."
    )
    event = ui.chart(charts.waterfall(trace["spans"], highlight=span_id), "trace_waterfall", select="points")
    point = ui.selected_point(event)
    if point is not None:
        picked = trace["spans"][int(point.get("point_index", point.get("point_number", 0)))]
        if picked["type"] == "call" and picked["span_id"] != span_id:
            st.switch_page(nav.CALL, query_params={"trace": trace_id, "span": picked["span_id"]})

st.subheader("Content")
events = call.get("content_events") or []
if call.get("input_content") or call.get("output_content") or events:
    if call.get("input_content"):
        st.text_area("Prompt", call["input_content"], height=160, disabled=True)
    if call.get("output_content"):
        st.text_area("Completion", call["output_content"], height=160, disabled=True)
    for i, ev in enumerate(events):
        st.text_area(
            f"{ev.get('event_name') or 'event'} ({ev.get('role') or '-'})",
            ev.get("content") or "",
            height=100,
            disabled=True,
            key=f"event_{i}",
        )
else:
    st.caption("No content stored for this call (content capture is off unless CALLSCOPE_CAPTURE_CONTENT=true).")

st.subheader("Every field")
fields = field_rows(call)
ui.table(fields, "all_fields", rows=fields.height, max_rows=fields.height)
filters = sidebar.current()
if st.button("Back to the calls", key="back"):
    st.switch_page(nav.CALLS, query_params=filters.to_query())
