"""Figures of the Drift page: the verdict matrix, one cell's two distributions (histogram and ECDF), and an anomaly
series with its baseline and marks. They take the read API's answers as they come and never fetch data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dashboard.charts import AXIS_TITLES
from dashboard.figure import Bar, Figure, Scatter

REFERENCE_COLOR, CURRENT_COLOR = "#4C78A8", "#F58518"
NO_DATA_COLOR = "#D5D5D5"
# severity 0 (identical) .. 1 (at the threshold) .. 3+ (far past it)
SEVERITY_SCALE = [[0.0, "#E8F3E8"], [0.33, "#F6E7A8"], [0.34, "#F8C289"], [1.0, "#C0392B"]]
SEVERITY_MAX = 3.0
METRIC_LABELS = {
    "input_tokens": "Input tokens",
    "output_tokens": "Output tokens",
    "latency": "Latency",
    "ttft": "Time to first token",
    "cost_per_call": "Cost per call",
    "finish_reason": "Finish reasons",
    "error_type": "Error types",
}


def cell_label(row: dict[str, Any], with_project: bool = False) -> str:
    text = f"{row['service'] or '(none)'} · {row['model'] or '(none)'}"
    return f"{row['project']} / {text}" if with_project else text


def matrix(rows: Sequence[dict[str, Any]]) -> Figure:
    """Metric x (service, model): a square per verdict coloured by severity (score against threshold on one scale),
    an outline where drifted, grey where there was not enough data."""
    projects = {r["project"] for r in rows}
    labels = sorted({cell_label(r, len(projects) > 1) for r in rows}, reverse=True)
    fig = Figure()
    for decided in (False, True):
        part = [r for r in rows if (r["status"] != "not_enough_data") == decided]
        if not part:
            continue
        severity = [min(r["severity"] or 0.0, SEVERITY_MAX) for r in part] if decided else None
        fig.add_trace(
            Scatter(
                x=[METRIC_LABELS.get(r["metric"], r["metric"]) for r in part],
                y=[cell_label(r, len(projects) > 1) for r in part],
                mode="markers",
                name="verdict" if decided else "not enough data",
                marker={
                    "symbol": "square",
                    "size": 26,
                    "color": severity if decided else NO_DATA_COLOR,
                    **(
                        {"colorscale": SEVERITY_SCALE, "cmin": 0, "cmax": SEVERITY_MAX, "showscale": True}
                        if decided
                        else {}
                    ),
                    "colorbar": {"title": {"text": "severity"}, "thickness": 12} if decided else None,
                    "line": {
                        "width": [3 if r["drifted"] else 0.5 for r in part],
                        "color": ["#7B1A10" if r["drifted"] else "#FFFFFF" for r in part],
                    },
                },
                customdata=[_hover(r) for r in part],
                hovertemplate="%{customdata}<extra></extra>",
            )
        )
    fig.update_layout(
        title={"text": "Drift by metric and (service, model)", "x": 0, "font": {"size": 15}},
        height=max(260, 34 * len(labels) + 120),
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        showlegend=False,
        hovermode="closest",
    )
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=list(METRIC_LABELS.values()), side="top")
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=labels)
    return fig


def _hover(row: dict[str, Any]) -> str:
    head = f"<b>{row['service']} · {row['model']}</b><br>{METRIC_LABELS.get(row['metric'], row['metric'])}: "
    counts = f"<br>{row['n_reference']:,} reference, {row['n_current']:,} current values"
    if row["status"] == "not_enough_data":
        return head + "not enough data" + counts
    return head + f"{row['status']}<br>{row['test']} {row['score']:.4g} (threshold {row['threshold']:g})" + counts


def _centers(edges: Sequence[float], log: bool) -> tuple[list[float], list[float]]:
    lo, hi = edges[:-1], edges[1:]
    centers = [(a * b) ** 0.5 if log and a > 0 else (a + b) / 2 for a, b in zip(lo, hi, strict=True)]
    return centers, [b - a for a, b in zip(lo, hi, strict=True)]


def distributions(body: dict[str, Any]) -> list[Figure]:
    """The cell's two windows overlaid: a histogram of shares and the ECDF (numbers), or category shares."""
    dist = body["distribution"]
    unit = body["unit"]
    windows = (("reference", "reference", REFERENCE_COLOR), ("current", "current", CURRENT_COLOR))
    if dist["kind"] == "categorical":
        fig = Figure()
        for key, name, color in windows:
            if dist[key]:
                fig.add_trace(
                    Bar(
                        x=dist["labels"],
                        y=dist[key]["shares"],
                        name=f"{name} ({dist[key]['n']:,})",
                        marker={"color": color},
                        hovertemplate="%{x}: %{y:.2%}<extra>" + name + "</extra>",
                    )
                )
        fig.update_layout(barmode="group", title={"text": "Share of calls per category", "x": 0})
        fig.update_yaxes(tickformat=".0%", title="Share of calls")
        return [_small(fig)]
    log = dist["scale"] == "log"
    centers, widths = _centers(dist["edges"], log)
    hist, ecdf = Figure(), Figure()
    for key, name, color in windows:
        part = dist[key]
        if not part:
            continue
        hist.add_trace(
            Bar(
                x=centers,
                y=part["shares"],
                width=widths,
                name=f"{name} ({part['n']:,})",
                opacity=0.55,
                marker={"color": color},
                hovertemplate="%{x:,.4g}: %{y:.2%}<extra>" + name + "</extra>",
            )
        )
        ecdf.add_trace(
            Scatter(
                x=part["ecdf"]["x"],
                y=part["ecdf"]["p"],
                name=name,
                mode="lines",
                line={"color": color, "shape": "hv"},
                hovertemplate="%{y:.0%} of calls at most %{x:,.4g}<extra>" + name + "</extra>",
            )
        )
    axis = f"{METRIC_LABELS.get(body['metric'], body['metric'])} ({unit})"
    hist.update_layout(barmode="overlay", bargap=0, title={"text": "Histogram (share of calls per bin)", "x": 0})
    hist.update_yaxes(tickformat=".0%", title="Share of calls")
    ecdf.update_layout(title={"text": "Empirical CDF", "x": 0})
    ecdf.update_yaxes(tickformat=".0%", title="Share of calls at most x", range=[0, 1])
    for fig in (hist, ecdf):
        fig.update_xaxes(title=axis, type="log" if log else "linear")
    return [_small(hist), _small(ecdf)]


def _small(fig: Figure) -> Figure:
    fig.update_layout(
        height=300,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
    )
    return fig


def anomaly_series(
    rows: Sequence[dict[str, Any]], unit: str, title: str, markers: Sequence[dict[str, Any]] = ()
) -> Figure:
    """An hourly series, its seasonal baseline, its anomalous hours marked, and release markers as vertical lines."""
    fig = Figure()
    for marker in markers:
        fig.add_vline(x=marker["released_at"], line={"color": "#7B7B7B", "width": 1, "dash": "dash"})
        fig.add_annotation(
            x=marker["released_at"],
            y=1,
            yref="paper",
            text=f"{marker['service']} {marker['release']}",
            showarrow=False,
            xanchor="left",
            font={"size": 11, "color": "#555555"},
        )
    hours = [r["hour"] for r in rows]
    base = [r["baseline"] for r in rows]
    fig.add_trace(Scatter(x=hours, y=base, name="baseline", mode="lines", line={"color": "#9D9D9D", "dash": "dot"}))
    fig.add_trace(
        Scatter(x=hours, y=[r["value"] for r in rows], name="value", mode="lines", line={"color": REFERENCE_COLOR})
    )
    marks = [r for r in rows if r["anomalous"]]
    fig.add_trace(
        Scatter(
            x=[r["hour"] for r in marks],
            y=[r["value"] for r in marks],
            name="anomaly",
            mode="markers",
            marker={"color": "#C0392B", "size": 10, "symbol": "diamond"},
            customdata=[round(r["score"], 1) for r in marks],
            hovertemplate="%{x}<br>score %{customdata}<extra>anomaly</extra>",
        )
    )
    fig.update_layout(title={"text": title, "x": 0}, height=300, margin={"l": 10, "r": 10, "t": 50, "b": 10})
    if unit == "ratio":
        fig.update_yaxes(tickformat=".1%")
    fig.update_yaxes(title=AXIS_TITLES.get(unit, unit))
    return fig
