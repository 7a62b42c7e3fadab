"""Drift: which distributions changed (tokens, latency, cost per call, finish reasons, error types) per service and
model, against the week before or since a release; the two distributions behind a verdict; recent anomalies,
each opening the calls of its hour. Everything comes from the read API (drift and anomaly jobs of the server)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl
import streamlit as st

from dashboard import data, drift_charts, fmt, nav, sidebar, ui
from dashboard.drift_charts import METRIC_LABELS
from dashboard.filters import ViewFilters, iso

LATEST = "Latest run of the drift job"
ANOMALY_COLUMNS = ("hour", "scope", "service", "model", "metric", "value", "baseline", "score", "calls")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _window_text(row: dict[str, Any]) -> str:
    def day(text: str) -> str:
        return _parse(text).strftime("%Y-%m-%d %H:%M")

    return (
        f"current {day(row['current_from'])} to {day(row['current_to'])} UTC against reference "
        f"{day(row['reference_from'])} to {day(row['reference_to'])}"
        + (f" ({row['baseline']})" if row.get("baseline") else "")
    )


filters = sidebar.current()
services = list(filters.dims.get("service", ()))
st.title("Drift")
st.caption(
    "Has the distribution of a call statistic changed? Each cell compares the current window of a (service, model) "
    "with its reference: numbers with Kolmogorov-Smirnov (small references) or the normed Wasserstein distance, mixes "
    "with chi-square, a z-test or the Jensen-Shannon distance, as Evidently chooses; a cell needs enough calls in both "
    "windows, a distance must also be significant, and p-values are adjusted over the whole comparison. "
    + (f"Services: {', '.join(services)} (sidebar). " if services else "")
)

by_service = [("service", s) for s in services]


def _anomalies() -> dict[str, Any]:
    """The anomalies of the last 7 days, and (into the cache) the series of the first, which the page shows unless
    another row is selected: asked while the drift part of the page is fetched and drawn."""
    found = data.detection("anomalies", [("last", "7d"), *by_service])
    if found["anomalies"]:
        data.detection("anomaly_series", _series_params(found["anomalies"][0]))
    return found


def _series_params(focus: dict[str, Any]) -> list[tuple[str, str]]:
    series_key = ("service", focus["service"]) if focus["scope"] == "service" else ("model", focus["model"])
    hour = _parse(focus["hour"])
    return [
        ("from", iso(hour - timedelta(days=3))),
        ("to", iso(hour + timedelta(days=1))),
        ("scope", focus["scope"]),
        (series_key[0], str(series_key[1])),
        ("metric", focus["metric"]),
    ]


def _hour_text(anomaly: dict[str, Any]) -> str:
    return _parse(anomaly["hour"]).strftime("%Y-%m-%d %H:%M")


def _anomaly_label(anomaly: dict[str, Any]) -> str:
    name = anomaly["service"] if anomaly["scope"] == "service" else anomaly["model"]
    return f"{_hour_text(anomaly)} UTC · {anomaly['scope']} {name} · {anomaly['metric']} (score {anomaly['score']:.1f})"


def _calls_of(anomaly: dict[str, Any]) -> tuple[ViewFilters, dict[str, str]]:
    """The filters (the anomaly's hour, its service) and Calls page parameters (its model) of an anomaly's calls."""
    link = anomaly["calls_filter"]
    target = filters.with_window(_parse(link["from"]), _parse(link["to"]))
    target = target.with_dim("service", [link["service"]] if "service" in link else [])
    return target, ({"request_model": link["request_model"]} if "request_model" in link else {})


# The page's independent questions at once (each waits ~0.1-0.5 s on 10M calls), not one after the other.
pending_drift = data.background(lambda: data.detection("drift", by_service))
pending_anomalies = data.background(_anomalies)
releases = data.detection("releases", by_service)
choices = [LATEST] + [f"since {m['service']} {m['release']}" for m in reversed(releases)]
compare_to = st.selectbox(
    "Compare", choices, key="drift_compare", help="A release compares everything after it with the reference before it."
)
if compare_to == LATEST:
    answer = pending_drift.result()
    run = (answer.get("meta") or {}).get("run")
    rows = answer["data"]
    cell_params: list[tuple[str, str]] = [("run_id", str(run["run_id"]))] if run else []
else:
    marker = list(reversed(releases))[choices.index(compare_to) - 1]
    answer = data.detection("drift_compare", [("service", marker["service"]), ("release", marker["release"])])
    rows = answer["data"]
    run = None
    cell_params = [("release", marker["release"])]

if not rows:
    st.info(
        "No drift verdicts yet. The drift job of `callscope serve` runs at start and every `drift_interval_seconds` "
        "(default hourly) once calls are stored; a cell needs `drift_min_samples` calls in both windows."
    )
else:
    if run:
        st.caption(f"Run {run['run_id']} at {run['computed_at']}: {_window_text(rows[0])}.")
    else:
        st.caption(_window_text(rows[0]) + ".")
    drifted = [r for r in rows if r["drifted"]]
    decided = [r for r in rows if r["status"] != "not_enough_data"]
    tiles = st.columns(3)
    tiles[0].metric("Drifted cells", fmt.count(len(drifted)), border=True)
    tiles[1].metric("Cells with a verdict", fmt.count(len(decided)), border=True)
    tiles[2].metric("Not enough data", fmt.count(len(rows) - len(decided)), border=True)

    event = ui.chart(drift_charts.matrix(rows), "drift_matrix", select="points")
    cells = sorted({(r["project"], r["service"], r["model"]) for r in rows}, key=lambda c: [str(x) for x in c])
    labels = [drift_charts.cell_label({"project": p, "service": s, "model": m}) for p, s, m in cells]
    picked = ui.selected_point(event)
    default_cell, default_metric = 0, "input_tokens"
    if picked is not None:
        label = str(picked.get("y"))
        default_cell = labels.index(label) if label in labels else 0
        by_label = {v: k for k, v in METRIC_LABELS.items()}
        default_metric = by_label.get(str(picked.get("x")), default_metric)
    elif drifted:
        first = drifted[0]
        default_cell = cells.index((first["project"], first["service"], first["model"]))
        default_metric = first["metric"]

    st.subheader("One cell, both distributions")
    pick = st.columns(2)
    cell_index = pick[0].selectbox(
        "Service · model", range(len(cells)), index=default_cell, format_func=labels.__getitem__, key="drift_cell"
    )
    metric = pick[1].selectbox(
        "Metric",
        list(METRIC_LABELS),
        index=list(METRIC_LABELS).index(default_metric),
        format_func=METRIC_LABELS.__getitem__,
        key="drift_metric",
    )
    project, service, model = cells[cell_index]
    verdict = next(
        r for r in rows if (r["project"], r["service"], r["model"], r["metric"]) == (*cells[cell_index], metric)
    )
    body = data.detection(
        "drift_distribution",
        [
            ("project", project),
            ("service", service if service is not None else "null"),
            ("model", model if model is not None else "null"),
            ("metric", metric),
            *cell_params,
        ],
    )
    facts = st.columns(5)
    facts[0].metric("Verdict", verdict["status"].replace("_", " "), border=True)
    facts[1].metric("Test", verdict["test"] or "—", border=True)
    facts[2].metric(
        "Score",
        f"{verdict['score']:.4g}" if verdict["score"] is not None else "—",
        help=(f"threshold {verdict['threshold']:g}" if verdict["threshold"] is not None else None),
        border=True,
    )
    facts[3].metric("Threshold", f"{verdict['threshold']:g}" if verdict["threshold"] is not None else "—", border=True)
    facts[4].metric(
        "Calls (reference / current)",
        f"{fmt.count(verdict['n_reference'])} / {fmt.count(verdict['n_current'])}",
        border=True,
    )
    notes = []
    if verdict["effect_size"] is not None:
        floor = f", floor {verdict['effect_floor']:g}" if verdict["effect_floor"] is not None else ""
        notes.append(f"effect size ({verdict['effect_measure']}) {verdict['effect_size']:.4g}{floor}")
    if verdict["p_value"] is not None:
        notes.append(f"p-value {verdict['p_value']:.3g}, adjusted over the comparison {verdict['p_adjusted']:.3g}")
    if verdict["status"] == "not_enough_data":
        notes.append(f"a verdict needs {body['min_samples']:,} values in each window")
    if notes:
        st.caption("; ".join(notes) + ".")
    figures = drift_charts.distributions(body)
    for column, figure, key in zip(st.columns(len(figures)), figures, ("drift_hist", "drift_ecdf"), strict=False):
        with column:
            ui.chart(figure, key)
    if st.button("Calls of this cell in the current window", key="drift_cell_calls"):
        window = filters.with_window(_parse(verdict["current_from"]), _parse(verdict["current_to"]))
        target = window.with_dim("service", [service] if service is not None else [])
        sidebar.drill_down(nav.CALLS, target, **({"request_model": model} if model else {}))

    if drifted:
        st.subheader("Drifted cells")
        ui.table(
            pl.DataFrame(drifted).select("service", "model", "metric", "test", "score", "threshold", "n_current"),
            "drifted_cells",
            column_config={
                "score": st.column_config.NumberColumn("Score", format="%.3f"),
                "threshold": st.column_config.NumberColumn("Threshold", format="%.3f"),
                "n_current": st.column_config.NumberColumn("Calls now", format="localized"),
            },
        )

st.subheader("Recent anomalies")
found = pending_anomalies.result()
anomalies = found["anomalies"]
st.caption(
    "Hours whose spend, calls, p95 latency, error rate or 429 share left their seasonal baseline (same hour of the "
    "week, robust median and spread), per service and per model, in the last 7 days. An hour opens its calls; pick "
    "a row below for its series."
)
if not anomalies:
    st.info("No anomalies in the last 7 days.")
else:
    ui.table(
        pl.DataFrame(anomalies, infer_schema_length=None)
        .select(ANOMALY_COLUMNS)
        .with_columns(pl.Series("hour", [_hour_text(a) for a in anomalies])),
        "anomaly_table",
        column_config={
            "hour": "Hour (UTC)",
            **{c: c.capitalize() for c in ("scope", "service", "model", "metric", "value", "baseline", "calls")},
            "score": st.column_config.NumberColumn("Score", format="%.1f"),
        },
        links=[nav.link("calls", target, **params) for target, params in map(_calls_of, anomalies)],
        link_column="hour",
    )
    picked_row = st.selectbox(
        "Series of", range(len(anomalies)), format_func=lambda i: _anomaly_label(anomalies[i]), key="anomaly_pick"
    )
    focus = anomalies[picked_row]
    series_key = ("service", focus["service"]) if focus["scope"] == "service" else ("model", focus["model"])
    hour = _parse(focus["hour"])
    series = data.detection("anomaly_series", _series_params(focus))
    start, end = hour - timedelta(days=3), hour + timedelta(days=1)
    shown_markers = [
        m
        for m in releases
        if start <= _parse(m["released_at"]) < end and (focus["scope"] == "model" or m["service"] == focus["service"])
    ]
    ui.chart(
        drift_charts.anomaly_series(
            series,
            found["units"][focus["metric"]],
            f"{focus['metric']} of {focus['scope']} {series_key[1]}",
            shown_markers,
        ),
        "anomaly_series",
    )
    if st.button(f"Calls of {focus['scope']} {series_key[1]} at {focus['hour']}", key="anomaly_calls"):
        target, params = _calls_of(focus)
        sidebar.drill_down(nav.CALLS, target, **params)
