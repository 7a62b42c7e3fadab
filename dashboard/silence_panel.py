"""The Alerts page's silences: the list (pending, active, expired), expiring one, and a form that creates one
from label matchers, a duration and a comment (POST /api/v1/alerts/silences), prefilled from an alert if wanted.
The server checks the silence; a refusal shows its reason (which starts with the field) under the form."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from dashboard import alert_rows, changes, data
from dashboard.api_client import ApiError

RESULT = "silence_result"
DURATION_HELP = "How long it mutes, from now: 30m, 2h, 1d, 1w."
MATCHERS_HELP = (
    'One a line, as Alertmanager writes them: name="value", name!="value", name=~"regex", name!~"regex". '
    "Labels are alertname, severity, the rule's labels and its group-by dimensions."
)


def _prefill() -> None:
    """Matchers for exactly the picked alert instance: every one of its labels."""
    picked = st.session_state.get("silence_from")
    instances = st.session_state.get("_silenceable", {})
    if picked in instances:
        labels = instances[picked]["labels"]
        st.session_state["silence_matchers"] = "\n".join(f'{k}="{v}"' for k, v in labels.items())


def _create() -> None:
    text = st.session_state.get("silence_matchers", "")
    body = {
        "matchers": [line.strip() for line in text.splitlines() if line.strip()],
        "duration": st.session_state.get("silence_duration", "").strip(),
        "created_by": st.session_state.get("silence_by", "").strip(),
        "comment": st.session_state.get("silence_comment", "").strip(),
    }
    try:
        created = data.create_silence(body)
    except ApiError as exc:
        changes.report(RESULT, error=exc)
        return
    changes.report(RESULT, f"Silence created: it mutes matching alerts until {created['ends_at']}.")
    st.session_state["silence_comment"] = ""


def _expire() -> None:
    silence_id = st.session_state.get("silence_expire")
    if not silence_id:
        return
    try:
        data.expire_silence(silence_id)
    except ApiError as exc:
        changes.report(RESULT, error=exc)
        return
    changes.report(RESULT, "Silence expired: what it muted is notified again at its group's next flush.")


def _matchers(silence: Mapping[str, Any]) -> str:
    return ", ".join(m["text"] for m in silence["matchers"])


def show(silences: Sequence[Mapping[str, Any]], instances: Sequence[Mapping[str, Any]]) -> None:
    if silences:
        rows = [
            {
                "state": s["state"],
                "matchers": _matchers(s),
                "starts_at": s["starts_at"],
                "ends_at": s["ends_at"],
                "created_by": s["created_by"],
                "comment": s["comment"],
                "id": s["id"],
            }
            for s in silences
        ]
        st.dataframe(
            rows,
            column_config={
                "starts_at": st.column_config.TextColumn("Starts (UTC)"),
                "ends_at": st.column_config.TextColumn("Ends (UTC)"),
            },
            hide_index=True,
            placeholder="\u2014",
            key="silences_table",
        )
    else:
        st.info("No silences.")
    live = {s["id"]: f"{_matchers(s)} — {s['comment']}" for s in silences if s["state"] != "expired"}
    if live:
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        left.selectbox("Silence to expire", list(live), format_func=live.__getitem__, key="silence_expire")
        right.button("Expire now", key="silence_expire_button", on_click=_expire)

    st.markdown("**New silence**")
    active = {i["fingerprint"]: i for i in instances if i["state"] != "normal"}
    st.session_state["_silenceable"] = active
    names = {
        fp: f"{i['rule']} · {alert_rows.group_text(i)} · {i['labels'].get('severity')}" for fp, i in active.items()
    }
    st.selectbox(
        "Start from an alert",
        [None, *names],
        format_func=lambda fp: "(type the matchers)" if fp is None else names.get(fp, fp),
        key="silence_from",
        on_change=_prefill,
    )
    st.session_state.setdefault("silence_duration", "2h")
    st.session_state.setdefault("silence_by", "dashboard")
    with st.form("silence_form"):
        st.text_area("Matchers", key="silence_matchers", help=MATCHERS_HELP, placeholder='alertname="HighErrorRate"')
        cols = st.columns(3)
        cols[0].text_input("Duration", key="silence_duration", help=DURATION_HELP)
        cols[1].text_input("Created by", key="silence_by")
        cols[2].text_input("Comment", key="silence_comment", placeholder="why, e.g. deploying the fix")
        st.form_submit_button("Create silence", on_click=_create)
    changes.show(RESULT)
