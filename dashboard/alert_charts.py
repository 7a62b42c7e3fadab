"""Figures of the Alerts page: a rule's preview (its value over past days, the thresholds, and shaded where it
would have fired) and the history of alert states as a timeline. Same look and units as dashboard/charts.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from dashboard import charts, fmt
from dashboard.alert_rows import Segment
from dashboard.figure import Bar, Figure, Scatter

SEVERITY_COLORS = {"critical": "#E45756", "warning": "#F58518"}
STATE_COLORS = {
    "firing": "#E45756",
    "recovering": "#FF9DA6",
    "pending": "#F58518",
    "nodata": "#BAB0AC",
    "error": "#B279A2",
}
MAX_GROUPS = 8  # lines drawn in a preview: the groups that came closest to (or went furthest past) a threshold
HOVER = {**charts.HOVER_FORMATS, "%": "%{y:+.1f}%"}
TITLES = {**charts.AXIS_TITLES, "%": "Change (%)"}


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _merged(spans: Sequence[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Overlapping stretches as one (a grouped rule fires for several groups at once; one shade says it)."""
    out: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def firing_spans(preview: Mapping[str, Any], severity: str) -> list[tuple[datetime, datetime]]:
    """When the previewed rule would have fired at `severity` (any group), overlapping firings merged."""
    end = _time(preview["to"])
    spans = [
        (_time(f["starts_at"]), _time(f["ends_at"]) if f["ends_at"] else end)
        for f in preview["firings"]
        if f["severity"] == severity
    ]
    return _merged(spans)


def _closeness(points: Sequence[Sequence[Any]], upward: bool) -> float:
    values = [v for _, v in points if v is not None]
    if not values:
        return float("-inf")
    return max(values) if upward else -min(values)


def preview(answer: Mapping[str, Any], title: str) -> Figure:
    """The rule's value at each step (a line per group), its thresholds, and shaded where it would have fired."""
    unit = answer["unit"]
    upward = answer["rule"].get("op") in (">", ">=")
    series = sorted(answer["series"], key=lambda s: _closeness(s["points"], upward), reverse=True)[:MAX_GROUPS]
    fig = Figure()
    hover = HOVER.get(unit, "%{y}")
    for i, s in enumerate(series):
        fig.add_trace(
            Scatter(
                x=[_time(t) for t, _ in s["points"]],
                y=[v for _, v in s["points"]],
                name=s["group"],
                mode="lines" if len(s["points"]) > 48 else "lines+markers",
                connectgaps=False,
                marker={"color": charts.COLORS[i % len(charts.COLORS)], "size": 5},
                hovertemplate=f"<b>{s['group']}</b><br>%{{x}}<br>{hover}<extra></extra>",
            )
        )
    for severity in ("warning", "critical"):
        for start, end in firing_spans(answer, severity):
            fig.add_vrect(
                x0=start, x1=end, fillcolor=SEVERITY_COLORS[severity], opacity=0.15, line_width=0, layer="below"
            )
    for severity, threshold in answer["thresholds"].items():
        fig.add_hline(
            y=threshold,
            line={"color": SEVERITY_COLORS[severity], "dash": "dash", "width": 1.5},
            annotation_text=f"{severity} {fmt.by_unit(unit, threshold)}",
            annotation_position="top left",
        )
    fig = charts._layout(fig, title, unit, height=380)
    fig.update_layout(yaxis_title=TITLES.get(unit, unit), showlegend=True)
    if unit == "%":
        fig.update_yaxes(ticksuffix="%", tickformat="+,~f")
    return fig


def timeline(segments: Sequence[Segment], title: str) -> Figure:
    """One row per alert instance, a bar for each stretch it spent pending, firing, recovering, without data or
    in error (normal is the empty space)."""
    fig = Figure()
    rows = sorted({s.instance for s in segments})
    for state, color in STATE_COLORS.items():
        mine = [s for s in segments if s.state == state]
        if not mine:
            continue
        fig.add_trace(
            Bar(
                y=[s.instance for s in mine],
                base=[s.start for s in mine],
                x=[(s.end - s.start).total_seconds() * 1000 for s in mine],
                orientation="h",
                name=state,
                marker={"color": color},
                customdata=[(s.start.isoformat(), s.end.isoformat(), s.reason or "") for s in mine],
                hovertemplate=(
                    f"<b>%{{y}}</b><br>{state} from %{{customdata[0]}}<br>to %{{customdata[1]}}"
                    "<br>%{customdata[2]}<extra></extra>"
                ),
            )
        )
    fig.update_layout(
        title={"text": title, "x": 0, "y": 0.98, "yanchor": "top", "font": {"size": 15}},
        height=max(220, 28 * len(rows) + 110),
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        barmode="overlay",
        showlegend=True,
        hovermode="closest",
    )
    fig.update_xaxes(type="date", title_text="Time (UTC)")  # ranged to the stretches drawn; zoom out for all
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=list(reversed(rows)), title=None)
    return fig
