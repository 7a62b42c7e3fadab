"""Alerts: what fires now and the calls behind it, every rule's state and last value, the history of states,
silences, whether notifications get through, and a rule editor that previews a rule over past days before saving.

Everything comes from the alerting routes of the read API (/api/v1/alerts/...) through dashboard/data.py. The
silences and the rule editor are their own modules (dashboard/silence_panel.py, dashboard/rule_editor.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import streamlit as st

from dashboard import (
    alert_charts,
    alert_links,
    alert_rows,
    auth,
    data,
    fmt,
    nav,
    rule_editor,
    sidebar,
    silence_panel,
    ui,
)

HISTORY_LIMIT = 2000


def _page_address() -> str:
    try:
        return st.context.url or ""
    except Exception:  # runtimes without a browser (AppTest) have no address
        return ""


def _history_range(filters) -> tuple[datetime | None, datetime | None, datetime, datetime]:
    """What to ask (start to the minute, so answers cache; no end for "last ...") and what to draw."""
    start, end = filters.window()
    if filters.range == "custom":
        return start, end, start, end
    asked = start.replace(second=0, microsecond=0)
    return asked, None, asked, datetime.now(UTC)


def show_active(instances, specs, units, filters) -> None:
    rows = alert_rows.active_rows(instances, specs, units)
    if not rows:
        st.success("Nothing is firing or pending." if specs else "No alert rules yet: create one in the Rule editor.")
        return
    by_fp = {i["fingerprint"]: i for i in instances}
    address = _page_address()
    views = {}
    for row in rows:
        inst = by_fp[row["fingerprint"]]
        view = alert_links.calls_view(inst, specs.get(inst["rule"]), filters.tz)
        views[row["fingerprint"]] = view
        row["calls"] = alert_links.calls_url(address, view) if view else None
        row["chart"] = alert_links.metric_page_url(address, inst, filters.tz)
    st.caption(
        "Select a row to open the calls behind it: the window the rule evaluated, filtered to the instance's group "
        "(the failed calls for error rules, the slowest first for latency). The links open them in a new tab."
    )
    event = st.dataframe(
        rows,
        column_order=("state", "severity", "rule", "group", "value", "threshold", "since", "calls", "chart", "summary"),
        column_config={
            "state": "State",
            "severity": "Severity",
            "rule": "Rule",
            "group": "Group",
            "value": "Value",
            "threshold": "Threshold",
            "since": st.column_config.TextColumn("Since (UTC)"),
            "calls": st.column_config.LinkColumn("Breaching calls", display_text="calls"),
            "chart": st.column_config.LinkColumn("Metric page", display_text="chart"),
            "summary": "Summary",
        },
        hide_index=True,
        placeholder="\u2014",
        key="active_alerts",
        on_select="rerun",
        selection_mode="single-row",
    )
    picked = event.selection.rows if event else []
    if picked:
        view = views[rows[picked[0]]["fingerprint"]]
        if view is not None:
            sidebar.drill_down(nav.CALLS, view[0], **view[1])


def show_rules(answer, instances, units) -> None:
    rows = alert_rows.rule_rows(answer["rules"], instances, units)
    file = answer.get("file") or {}
    st.caption(
        f"Rules from the rules file ({file.get('path') or 'none'}) are read-only here: edit the file (it is reloaded "
        "on change and on SIGHUP). Rules created through the API or the Rule editor tab can be changed there."
    )
    if not rows:
        st.info("No rules. Add them to the rules file or create one in the Rule editor tab.")
        return
    st.dataframe(
        rows,
        column_order=(
            "rule",
            "source",
            "state",
            "firing",
            "last_value",
            "last_group",
            "condition",
            "group_by",
            "evaluated_at",
            "health",
        ),
        column_config={
            "rule": "Rule",
            "state": "State",
            "firing": st.column_config.NumberColumn("Firing", help="Firing instances (groups x severities)"),
            "last_value": "Last value",
            "last_group": "Of",
            "condition": "Condition",
            "group_by": "Group by",
            "evaluated_at": st.column_config.TextColumn("Last evaluated (UTC)"),
            "health": "Health",
            "source": "Source",
        },
        hide_index=True,
        placeholder="\u2014",
        key="alert_rules",
    )
    cycle = (answer.get("evaluation") or {}).get("last_cycle")
    if cycle:
        st.caption(
            f"Last evaluation cycle at {cycle['at']}: {cycle['rules']} rules, {cycle['queries']} queries, "
            f"{cycle['seconds']:.2f} s."
        )


def show_history(specs, units, filters) -> None:
    asked_from, asked_to, start, end = _history_range(filters)
    history = data.alert_history(asked_from, asked_to, HISTORY_LIMIT)
    segments = alert_rows.timeline(history, start, end)
    if not history:
        st.info(f"No alert changed state in the {filters.describe()}.")
        return
    if segments:
        figure = alert_charts.timeline(segments, f"Alert states in the {filters.describe()}")
        ui.chart(figure, "alert_timeline")
    if len(history) == HISTORY_LIMIT:
        st.caption(f"The latest {HISTORY_LIMIT:,} changes; narrow the time range for earlier ones.")
    rows = []
    for h in history:
        unit = alert_rows.unit_of(specs.get(h["rule_id"], {}), units)
        rows.append(
            {
                "changed_at": h["changed_at"],
                "rule": h["rule_id"],
                "severity": h["labels"].get("severity", ""),
                "group": alert_rows.group_text(h, (specs.get(h["rule_id"]) or {}).get("labels") or {}),
                "change": f"{h['from_state']} → {h['to_state']}",
                "value": fmt.by_unit(unit, h.get("value")),
                "reason": h.get("reason") or "",
            }
        )
    st.dataframe(
        rows,
        column_config={"changed_at": st.column_config.TextColumn("Changed at (UTC)")},
        hide_index=True,
        placeholder="\u2014",
        key="alert_history",
    )


def _delivery_rows(notes) -> list[dict]:
    return [
        {
            "status": n["status"],
            "kind": n["kind"],
            "receiver": n["receiver"],
            "channel": n["channel_type"],
            "to": alert_rows.target_text(n),
            "attempts": n["attempts"],
            "last_error": n.get("last_error") or "",
            "next_attempt_at": n.get("next_attempt_at"),
            "created_at": n["created_at"],
            "sent_at": n.get("sent_at"),
            "summary": n.get("summary") or "",
        }
        for n in notes
    ]


DELIVERY_COLUMNS = {
    "last_error": st.column_config.TextColumn("Last error", width="large"),
    "next_attempt_at": st.column_config.TextColumn("Next try (UTC)"),
    "created_at": st.column_config.TextColumn("Queued (UTC)"),
    "sent_at": st.column_config.TextColumn("Sent (UTC)"),
}


def show_deliveries(outbox) -> None:
    counts = outbox.get("counts") or {}
    cols = st.columns(4)
    for col, status in zip(cols, ("pending", "retrying", "failed", "sent"), strict=True):
        col.metric(status.capitalize(), f"{counts.get(status, 0):,}", border=True)
    notes = outbox.get("notifications") or []
    if not notes:
        st.info(
            "No notifications yet. Receivers (e-mail, webhooks) are configured in callscope.toml: see the README, "
            '"Alert notifications and digests".'
        )
        return
    problems = alert_rows.delivery_problems(notes)
    if problems:
        st.markdown("**Not delivered** (retrying, or given up), with the last error")
        st.dataframe(
            _delivery_rows(problems),
            column_config=DELIVERY_COLUMNS,
            hide_index=True,
            placeholder="\u2014",
            key="undelivered",
        )
    st.markdown(f"**The latest {len(notes):,} notifications**")
    st.dataframe(
        _delivery_rows(notes), column_config=DELIVERY_COLUMNS, hide_index=True, placeholder="\u2014", key="deliveries"
    )


filters = sidebar.current()
st.title("Alerts")
# Silences and notifications span projects: the API shows them to who holds a role on every project only.
everywhere = auth.everywhere()
rules_answer, instances, silences, outbox, meta = data.parallel(
    data.alert_rules,
    data.alert_instances,
    data.silences if everywhere else list,
    data.notifications if everywhere else dict,
    data.meta,
)
units = {name: m["unit"] for name, m in meta["metrics"].items()}
specs = {r["name"]: r["spec"] for r in rules_answer["rules"]}
counts = alert_rows.firing_counts(instances)
outbox_counts = outbox.get("counts") or {}
# Failing now: retrying, or given up within the last day (an old failure stays listed under Deliveries).
problems = alert_rows.delivery_problems(outbox.get("notifications") or [], since=datetime.now(UTC) - timedelta(days=1))
st.caption("Rules are evaluated by the server; firing alerts are notified as configured in callscope.toml.")

tiles = st.columns(6)
tiles[0].metric("Critical firing", f"{counts['critical']:,}", border=True)
tiles[1].metric("Warning firing", f"{counts['warning']:,}", border=True)
tiles[2].metric("Pending", f"{sum(1 for i in instances if i['state'] == 'pending'):,}", border=True)
tiles[3].metric("Rules", f"{len(specs):,}", border=True)
active_silences = sum(1 for s in silences if s["state"] == "active")
tiles[4].metric("Active silences", f"{active_silences:,}" if everywhere else "—", border=True)
undelivered = outbox_counts.get("retrying", 0) + outbox_counts.get("failed", 0)
tiles[5].metric(
    "Undelivered", f"{undelivered:,}" if everywhere else "—", border=True, help="Notifications retrying or given up"
)

for problem in (rules_answer.get("file") or {}).get("problems", []):
    st.error(
        f"Rules file {problem['file']}, line {problem['line']}, rule {problem['rule']!r}, field {problem['field']!r}: "
        f"{problem['message']}. The last good rules keep running."
    )
if (rules_answer.get("evaluation") or {}).get("tick_failures"):
    st.warning(f"{rules_answer['evaluation']['tick_failures']} evaluation ticks failed; see the server log.")
if problems:
    latest = problems[0]
    st.warning(
        f"**{len(problems)} notification(s) not delivered.** Latest reason: {latest.get('last_error') or 'unknown'} "
        f"({latest['receiver']}, {latest['channel_type']} to {alert_rows.target_text(latest)}; "
        f"{latest['attempts']} attempts, status {latest['status']}). See Deliveries."
    )

tabs = st.tabs(["Firing", "Rules", "History", "Silences", "Deliveries", "Rule editor"])
with tabs[0]:
    show_active(instances, specs, units, filters)
with tabs[1]:
    show_rules(rules_answer, instances, units)
with tabs[2]:
    show_history(specs, units, filters)
SERVER_WIDE = "They span projects: seeing them needs a role on every project. An admin can grant it."
with tabs[3]:
    if everywhere:
        silence_panel.show(silences, instances)
    else:
        st.info(f"Silences are not shown. {SERVER_WIDE}")
with tabs[4]:
    if everywhere:
        show_deliveries(outbox)
    else:
        st.info(f"Deliveries are not shown. {SERVER_WIDE}")
with tabs[5]:
    rule_editor.show(rules_answer["rules"], meta)
