"""The Alerts page's rule editor: a form for a new rule or one created through the API (file rules are changed
in their file), a preview that replays it over past days (POST /api/v1/alerts/preview), and save (POST, or PUT for
an existing rule). The server checks the rule and names the wrong field; its reason is shown under that field."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

from dashboard import alert_charts, alert_rows, changes, data, fmt, rule_form, ui
from dashboard.api_client import ApiError
from dashboard.rule_form import FormError

NEW = "(new rule)"
KEYS = {name: f"rule_{name}" for name in rule_form.FIELDS}
RESULT = "rule_result"
PREVIEW = "rule_preview"
RELATIVE_LABELS = {"": "absolute value", "previous_window": "% change vs the window before"}
THRESHOLD_HELP = (
    "In the metric's unit: ratios as fractions (0.05 = 5%), latency in ms, spend in USD; with a baseline, a % "
    "change. Empty: none."
)


# -- callbacks (run before the page is drawn) ------------------------------------------------------------------


def _values() -> dict[str, Any]:
    return {name: st.session_state.get(key) for name, key in KEYS.items()}


def _load(spec: Mapping[str, Any] | None) -> None:
    for name, value in rule_form.form_values(spec or {}).items():
        st.session_state[KEYS[name]] = value
    changes.forget(RESULT)
    st.session_state.pop(PREVIEW, None)


def _picked() -> None:
    name = st.session_state.get("rule_pick")
    _load(st.session_state.get("_api_rule_specs", {}).get(name) if name != NEW else None)


def _save() -> None:
    editing = st.session_state.get("rule_pick", NEW)
    try:
        spec = rule_form.spec_from_form(_values())
        if editing == NEW:
            saved = data.create_rule(spec)
            st.session_state["rule_pick"] = saved["name"]
            changes.report(RESULT, f"Rule **{saved['name']}** created; it is evaluated from the next tick.")
        else:
            data.update_rule(editing, {**spec, "name": editing})
            changes.report(RESULT, f"Rule **{editing}** saved.")
    except (FormError, ApiError) as exc:
        changes.report(RESULT, error=exc)


def _preview() -> None:
    """Ask for the preview now, so a refusal is shown under its field; the page draws the (cached) answer."""
    st.session_state.pop(PREVIEW, None)
    changes.forget(RESULT)
    last = st.session_state.get("rule_preview_last", "7d")
    try:
        spec = rule_form.spec_from_form(_values())
        spec["name"] = spec["name"] or "preview"
        data.preview_rule(spec, last)
    except (FormError, ApiError) as exc:
        changes.report(RESULT, error=exc)
        return
    st.session_state[PREVIEW] = (spec, last)


def _delete() -> None:
    name = st.session_state.get("rule_pick")
    try:
        data.delete_rule(name)
    except ApiError as exc:
        changes.report(RESULT, error=exc)
        return
    st.session_state["rule_pick"] = NEW
    _load(None)
    changes.report(RESULT, f"Rule **{name}** deleted; its firing alerts resolve.")


# -- drawing ----------------------------------------------------------------------------------------------------


def _field(column: Any, name: str, draw: Callable[[], Any]) -> None:
    with column:
        draw()
        changes.field_error(RESULT, name)


def _prepare(rules: list[dict[str, Any]], metrics: Mapping[str, Any], dims: list[str]) -> dict[str, Any]:
    """The API rules by name; the editor's state set up (a new rule, or reset when its rule was deleted)."""
    api_rules = {r["name"]: r["spec"] for r in rules if not r["read_only"]}
    st.session_state["_api_rule_specs"] = api_rules
    if st.session_state.get("rule_pick", NEW) not in (NEW, *api_rules):
        st.session_state["rule_pick"] = NEW
        _load(None)
    if KEYS["name"] not in st.session_state:
        _load(None)
    if st.session_state[KEYS["metric"]] not in metrics:
        st.session_state[KEYS["metric"]] = rule_form.NEW_RULE["metric"]
    st.session_state[KEYS["group_by"]] = [g for g in st.session_state[KEYS["group_by"]] if g in dims]
    return api_rules


def show(rules: list[dict[str, Any]], meta: Mapping[str, Any]) -> None:
    metrics = meta["metrics"]
    dims = [d for d in meta["dimensions"] if not d.startswith("meta.")]
    api_rules = _prepare(rules, metrics, dims)
    st.selectbox("Rule", [NEW, *api_rules], key="rule_pick", on_change=_picked)
    file_rules = [r["name"] for r in rules if r["read_only"]]
    if file_rules:
        st.caption(f"Rules of the rules file ({', '.join(file_rules)}) are changed in the file, not here.")
    editing = st.session_state["rule_pick"] != NEW
    k = KEYS
    with st.form("rule_form", enter_to_submit=False):
        c = st.columns(3)
        _field(c[0], "name", lambda: st.text_input("Name", key=k["name"], disabled=editing, help="The alertname"))
        _field(
            c[1],
            "metric",
            lambda: st.selectbox(
                "Metric", list(metrics), key=k["metric"], format_func=lambda m: f"{m} ({metrics[m]['unit']})"
            ),
        )
        _field(c[2], "window", lambda: st.text_input("Window", key=k["window"], help="[t - window, t): 1m .. 31d"))
        c = st.columns(4)
        _field(c[0], "op", lambda: st.selectbox("Comparator", rule_form.OPS, key=k["op"]))
        _field(c[1], "warning", lambda: st.text_input("Warning threshold", key=k["warning"], help=THRESHOLD_HELP))
        _field(c[2], "critical", lambda: st.text_input("Critical threshold", key=k["critical"], help=THRESHOLD_HELP))
        _field(
            c[3],
            "relative_to",
            lambda: st.selectbox(
                "Compare with",
                rule_form.RELATIVE,
                key=k["relative_to"],
                format_func=lambda r: RELATIVE_LABELS.get(r, "% change vs a week ago"),
            ),
        )
        c = st.columns(5)
        _field(c[0], "min_calls", lambda: st.number_input("Minimum calls", min_value=0, step=1, key=k["min_calls"]))
        _field(c[1], "for", lambda: st.text_input("For (pending)", key=k["for"], help="0s: fires at once"))
        _field(c[2], "keep_firing_for", lambda: st.text_input("Keep firing for", key=k["keep_firing_for"]))
        _field(c[3], "no_data", lambda: st.selectbox("No data", rule_form.NO_DATA, key=k["no_data"]))
        _field(c[4], "interval", lambda: st.text_input("Interval", key=k["interval"], help="10s .. 1d"))
        c = st.columns(3)
        _field(
            c[0],
            "filters",
            lambda: st.text_area(
                "Filters",
                key=k["filters"],
                help="One dimension=value a line; repeat a dimension for any of several values; q=text searches.",
                placeholder="service=support-bot",
            ),
        )
        _field(c[1], "group_by", lambda: st.multiselect("Group by", dims, key=k["group_by"], help="Up to 4"))
        _field(
            c[2],
            "labels",
            lambda: st.text_area("Labels", key=k["labels"], help="One name=value a line.", placeholder="team=search"),
        )
        templates = st.expander("Summary and description templates")
        _field(templates, "summary", lambda: st.text_area("Summary", key=k["summary"], help="Empty: the default"))
        _field(templates, "description", lambda: st.text_area("Description", key=k["description"]))
        c = st.columns([1, 1, 1, 3], vertical_alignment="bottom")
        c[0].selectbox("Preview over the last", rule_form.PREVIEW_RANGES, index=2, key="rule_preview_last")
        c[1].form_submit_button("Preview", on_click=_preview)
        c[2].form_submit_button("Save rule", type="primary", on_click=_save)
    changes.show(RESULT, rule_form.FIELDS)
    if editing:
        with st.popover("Delete rule"):
            st.button(f"Delete {st.session_state['rule_pick']} for good", key="rule_delete", on_click=_delete)
    show_preview()


def show_preview() -> None:
    kept = st.session_state.get(PREVIEW)
    if not kept:
        st.caption("Preview draws the rule's value over past days with its thresholds, shaded where it would fire.")
        return
    spec, last = kept
    answer = data.preview_rule(spec, last)
    step = fmt.duration(answer["step_seconds"])
    ui.chart(alert_charts.preview(answer, f"{spec['metric']} over the last {last}, every {step}"), "rule_preview_chart")
    firings = answer["firings"]
    by_severity = {s: sum(1 for f in firings if f["severity"] == s) for s in ("critical", "warning")}
    st.markdown(
        f"Over the last {last} this rule would have fired **{len(firings)}** times "
        f"({by_severity['critical']} critical, {by_severity['warning']} warning) and sent about "
        f"**{answer['notifications']}** notifications (one when an instance fires, one when it resolves)."
    )
    if not answer["exact"]:
        st.caption(
            f"Evaluated every {step} rather than every {spec.get('interval', '1m')} to keep the preview quick; "
            "`for` and `keep_firing_for` count in those steps."
        )
    if firings:
        unit = answer["unit"]
        rows = [
            {
                "severity": f["severity"],
                "group": alert_rows.group_text(f),
                "starts_at": f["starts_at"],
                "ends_at": f["ends_at"] or "still firing",
                "peak": fmt.by_unit(unit, f["peak"]),
            }
            for f in firings
        ]
        st.dataframe(rows, hide_index=True, placeholder="\u2014", key="rule_preview_firings")
