"""Plotly figure builders. Every axis names its unit; every hover shows the exact value, formatted for its unit.

Builders take polars frames as the API returned them (a `bucket` column of zoned timestamps for series) and
return figures; they never fetch data. Additive quantities (spend, calls, errors) may stack; percentiles and
rates never do, each series is its own line.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import polars as pl

from dashboard import fmt
from dashboard.figure import Bar, Figure, Scatter, make_subplots

AXIS_TITLES = {
    "USD": "Spend (USD)",
    "calls": "Calls",
    "tokens": "Tokens",
    "ms": "Milliseconds (ms)",
    "ratio": "Share (%)",
    "tokens/s": "Output tokens per second",
}
HOVER_FORMATS = {
    "USD": "$%{y:,.6f}",
    "calls": "%{y:,d} calls",
    "tokens": "%{y:,d} tokens",
    "ms": "%{y:,.1f} ms",
    "ratio": "%{y:.2%}",
    "tokens/s": "%{y:,.1f} tokens/s",
}
NULL_LABEL = "(none)"
# A palette that stays readable on light and dark themes.
COLORS = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D", "#BAB0AC")


# Dollars on an axis to three significant digits: $0.00015 and $0.0002 stay apart on a panel of cheap calls (four
# decimals wrote both as $0.0002), and $1,250 keeps its last digits.
USD_TICKS = ",.3~r"


def _layout(fig: Figure, title: str, unit: str, *, height: int = 320) -> Figure:
    fig.update_layout(
        title={"text": title, "x": 0, "y": 0.98, "yanchor": "top", "font": {"size": 15}},
        height=height,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        hovermode="closest",
        yaxis_title=AXIS_TITLES.get(unit, unit),
    )
    if unit == "ratio":
        fig.update_yaxes(tickformat=".1%")
    elif unit == "USD":
        fig.update_yaxes(tickprefix="$", tickformat=USD_TICKS)
    else:
        fig.update_yaxes(tickformat=",~s" if unit in ("calls", "tokens") else ",~f")
    return fig


def _label(value: Any) -> str:
    return NULL_LABEL if value is None else str(value)


def series(
    frame: pl.DataFrame,
    metric: str,
    unit: str,
    title: str,
    *,
    group: str | None = None,
    kind: str = "line",
    stacked: bool = False,
) -> Figure:
    """A metric over time (the `bucket` column), one trace per group value (or one trace)."""
    fig = Figure()
    groups: list[tuple[str, pl.DataFrame]]
    if group is None:
        groups = [(metric, frame)]
    else:
        order = frame.group_by(group).agg(pl.col(metric).sum().alias("_t")).sort("_t", descending=True, nulls_last=True)
        groups = [(_label(v), frame.filter(_eq(group, v))) for v in order[group].to_list()]
    hover = HOVER_FORMATS.get(unit, "%{y}")
    for i, (name, part) in enumerate(groups):
        common: dict[str, Any] = {
            "x": part["bucket"].to_list(),
            "y": part[metric].to_list(),
            "name": name,
            "customdata": [name] * part.height,
            "hovertemplate": f"<b>%{{customdata}}</b><br>%{{x}}<br>{hover}<extra></extra>",
            "marker": {"color": COLORS[i % len(COLORS)]},
        }
        if kind == "bar":
            fig.add_trace(Bar(**{**common, "y": _bars(common["y"])}))
        else:
            fig.add_trace(Scatter(mode=_mode(part.height), connectgaps=False, **common))
    if kind == "bar":
        fig.update_layout(barmode="stack" if stacked else "group")
    fig = _layout(fig, title, unit)
    if unit == "calls" and frame.height:
        per_bucket = frame.group_by("bucket").agg(pl.col(metric).sum()) if stacked else frame
        _whole_ticks_for_few(fig, per_bucket[metric].max() or 0)
    return fig


def _whole_ticks_for_few(fig: Figure, top: float, **cell: int) -> None:
    """Counts whose tallest value is a few calls get whole-number ticks (plotly would write 0, 500m, 1, ...)."""
    if top <= 5:
        fig.update_yaxes(dtick=1, tickformat="d", **cell)


def _shortest_gap(buckets: pl.Series) -> timedelta | None:
    times = buckets.unique().sort().to_list()
    gaps = [b - a for a, b in pairwise(times)]
    return min(gaps) if gaps else None


def _back_to_zero(part: pl.DataFrame, step: timedelta) -> pl.DataFrame:
    """A step holds its value until the next point, and the API leaves buckets without rows out: after a bucket
    whose next one is missing, a row of zeros where it ends (else a 5-minute count would be drawn held for hours,
    until the next bucket with a failure)."""
    times = part["bucket"].to_list()
    ends = [_plus(t, step) for t in times]
    present = set(times)
    missing = sorted({e for e in ends if e not in present})
    if not missing:
        return part
    first = part.row(0, named=True)  # the group's own labels; its numbers are zero
    zeros = pl.DataFrame({"bucket": pl.Series(missing, dtype=part.schema["bucket"])}).with_columns(
        pl.lit(0 if kind.is_numeric() else first[c], dtype=kind).alias(c)
        for c, kind in part.schema.items()
        if c != "bucket"
    )
    return pl.concat([part, zeros.select(part.columns)]).sort("bucket")


def _plus(moment: datetime, step: timedelta) -> datetime:
    """`moment` + `step` in absolute time (a zoned wall clock would gain or lose an hour across a DST change)."""
    if moment.tzinfo is None:
        return moment + step
    return (moment.astimezone(UTC) + step).astimezone(moment.tzinfo)


def _bars(values: list[Any]) -> list[Any]:
    """Bar heights with the zeros left out: a zero-height bar shows nothing and cannot be hovered, but plotly.js
    still lays out and draws it. Counts in fine buckets are mostly zeros (failed calls per provider in 5-minute
    buckets over a day: ~5,000 bars, a few dozen of them not zero, took the browser ~1 s to draw)."""
    return [None if v == 0 else v for v in values]


def _mode(points: int) -> str:
    """Markers help on short series; on long ones they only cost drawing time (hover still finds every point)."""
    return "lines+markers" if points <= 48 else "lines"


def _eq(column: str, value: Any) -> pl.Expr:
    return pl.col(column).is_null() if value is None else pl.col(column) == value


def lines(frame: pl.DataFrame, metrics: Sequence[str], unit: str, title: str, names: dict[str, str]) -> Figure:
    """Several metrics of the same unit over time, e.g. p50/p90/p95/p99: separate lines, never stacked."""
    fig = Figure()
    hover = HOVER_FORMATS.get(unit, "%{y}")
    for i, metric in enumerate(metrics):
        fig.add_trace(
            Scatter(
                x=frame["bucket"].to_list(),
                y=frame[metric].to_list(),
                name=names.get(metric, metric),
                mode=_mode(frame.height),
                marker={"color": COLORS[i % len(COLORS)], "size": 5},
                hovertemplate=f"<b>{names.get(metric, metric)}</b><br>%{{x}}<br>{hover}<extra></extra>",
            )
        )
    return _layout(fig, title, unit)


def histogram(frame: pl.DataFrame, title: str, log_x: bool = True) -> Figure:
    """Calls per duration bin; bars span their bins exactly (lo..hi), on a log axis for log bins."""
    lo, hi, n = frame["lo"].to_list(), frame["hi"].to_list(), frame["calls"].to_list()
    centers = [(a * b) ** 0.5 if log_x and a > 0 else (a + b) / 2 for a, b in zip(lo, hi, strict=True)]
    fig = Figure(
        Bar(
            x=centers,
            y=n,
            width=[b - a for a, b in zip(lo, hi, strict=True)],
            customdata=list(zip(lo, hi, strict=True)),
            marker={"color": COLORS[0]},
            hovertemplate="%{customdata[0]:,.1f} to %{customdata[1]:,.1f} ms<br>%{y:,d} calls<extra></extra>",
        )
    )
    fig = _layout(fig, title, "calls")
    fig.update_xaxes(title_text="Duration (ms)", type="log" if log_x else "linear")
    fig.update_layout(bargap=0)
    return fig


def waterfall(spans: Sequence[dict[str, Any]], highlight: str | None = None) -> Figure:
    """A trace on a timeline: one row per span (indented by depth), bar from offset_ms for duration_ms."""
    labels = [f"{'  ' * s['depth']}{s['name'] or s['span_id']}  ·{s['span_id'][:6]}" for s in spans]
    colors = []
    for s in spans:
        if s["span_id"] == highlight:
            colors.append("#E45756" if s["status"] == "error" else "#F58518")
        elif s["status"] == "error":
            colors.append("#FF9DA6")
        else:
            colors.append(COLORS[0] if s["type"] == "call" else "#BAB0AC")
    details = [
        (
            s["type"],
            s.get("service") or "",
            s.get("request_model") or "",
            fmt.usd_exact(s.get("cost_usd")) if s["type"] == "call" else "",
            s["status"],
            s["span_id"],
        )
        for s in spans
    ]
    fig = Figure(
        Bar(
            y=labels,
            x=[s["duration_ms"] for s in spans],
            base=[s["offset_ms"] for s in spans],
            orientation="h",
            marker={"color": colors},
            customdata=details,
            hovertemplate=(
                "<b>%{y}</b><br>start +%{base:,.1f} ms, duration %{x:,.1f} ms<br>%{customdata[0]} "
                "%{customdata[1]} %{customdata[2]}<br>cost %{customdata[3]}  status %{customdata[4]}<extra></extra>"
            ),
        )
    )
    fig.update_yaxes(autorange="reversed", title=None)
    fig.update_xaxes(title_text="Milliseconds since the trace started (ms)", rangemode="tozero")
    fig.update_layout(
        title={"text": "Trace timeline", "x": 0, "font": {"size": 15}},
        height=max(200, 30 * len(spans) + 90),
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        showlegend=False,
    )
    return fig


def small_multiples(
    frame: pl.DataFrame,
    group: str,
    metrics: dict[str, str],
    unit: str,
    title: str,
    *,
    columns: int = 3,
    kind: str = "line",
    order: Sequence[Any] | None = None,
    step: timedelta | None = None,
) -> Figure:
    """One small chart per value of `group` (in `order`, else as they come), each with its own y axis, sharing
    the time axis: a group whose line would vanish under a busier one's scale keeps its own story. `metrics`
    maps the frame's metric columns to the names of their lines (e.g. input and output tokens per call).

    kind: "line", "bar" (stacked), or "steps": counts per bucket stacked as steps (each bucket's value held over
    its width), which reads as stacked bars but is one shape per series: 5-minute buckets over a day in 6 panels
    of 3 series are ~5,000 bars, which took the browser ~0.7-1 s to draw, against ~0.1 s as steps. `step` is the
    buckets' length (default: the shortest gap between the frame's buckets)."""
    values = list(order) if order is not None else list(dict.fromkeys(frame[group].to_list()))
    rows = max(1, -(-len(values) // columns))
    fig = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=[_label(v) for v in values],
        shared_xaxes=True,
        vertical_spacing=min(0.12, 0.35 / rows),
        horizontal_spacing=0.06,
    )
    hover = HOVER_FORMATS.get(unit, "%{y}")
    if kind == "steps" and step is None and frame.height:
        step = _shortest_gap(frame["bucket"])
    for i, value in enumerate(values):
        part = frame.filter(_eq(group, value)).sort("bucket")
        if kind == "steps" and step is not None:
            part = _back_to_zero(part, step)
        for j, (metric, name) in enumerate(metrics.items()):
            common: dict[str, Any] = {
                "x": part["bucket"].to_list(),
                "y": part[metric].to_list(),
                "name": name,
                "legendgroup": name,
                "showlegend": i == 0 and len(metrics) > 1,
                "customdata": [_label(value)] * part.height,
                "hovertemplate": f"<b>%{{customdata}}</b> {name}<br>%{{x}}<br>{hover}<extra></extra>",
                "marker": {"color": COLORS[j % len(COLORS)]},
            }
            if kind == "bar":
                trace = Bar(**{**common, "y": _bars(common["y"])})
            elif kind == "steps":
                color = COLORS[j % len(COLORS)]
                trace = Scatter(
                    **{**common, "marker": None},
                    mode="lines",
                    line={"shape": "hv", "width": 0, "color": color},
                    fillcolor=color,
                    stackgroup=f"panel{i}",
                )
            else:
                trace = Scatter(mode="lines", connectgaps=False, **common)
            fig.add_trace(trace, row=i // columns + 1, col=i % columns + 1)
    if kind == "bar":
        fig.update_layout(barmode="stack")
    fig = _layout(fig, title, unit, height=max(260, 190 * rows + 70))
    # a small panel reads well with a few ticks, and each tick label is text the browser measures and draws
    # (4 instead of plotly's ~7 per axis: a nine-panel chart draws ~30% faster)
    fig.update_yaxes(nticks=4)
    if unit == "calls":
        for i, value in enumerate(values):
            part = frame.filter(_eq(group, value))
            top = max((part[m].max() or 0 for m in metrics), default=0)
            if kind in ("bar", "steps"):
                top = part.select(sum(pl.col(m).fill_null(0) for m in metrics)).max().item() or 0
            _whole_ticks_for_few(fig, top, row=i // columns + 1, col=i % columns + 1)
    # the legend (the lines' names) above the panels' titles, on the left, so it covers no panel
    fig.update_layout(
        yaxis_title=None,
        margin={"l": 10, "r": 10, "t": 100 if len(metrics) > 1 else 70, "b": 10},
        legend={
            "orientation": "h",
            "yanchor": "bottom",
            "y": 1.0 + 40 / max(260, 190 * rows + 70),
            "x": 0,
            "xanchor": "left",
        },
    )
    fig.update_annotations(font={"size": 12})
    return fig


def has_data(fig: Figure) -> bool:
    """True when some trace has a value to draw."""
    for trace in fig.data:
        for axis in ("y", "x"):
            values = getattr(trace, axis, None)
            if values is not None and any(v is not None for v in values):
                return True
    return False


def with_message(fig: Figure, message: str) -> Figure:
    """An empty chart says why, in its middle, instead of drawing empty axes."""
    fig.add_annotation(
        text=message, xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False, font={"size": 14, "color": "#808495"}
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def mark_anomalies(fig: Figure, anomalies: Sequence[dict[str, Any]], zone: Any) -> Figure:
    """The anomaly job's hours (analytics/anomalies) on a time chart: a shaded hour each, and a marker at the top
    with what was anomalous (hover), so a spike on the chart and the detector's verdict line up."""
    if not anomalies:
        return fig
    xs, texts = [], []
    grid = {"row": "all", "col": "all"} if getattr(fig, "grid", None) else {}  # (plotly's own figures in tests)
    for row in anomalies:
        start = _wall(row["hour"], zone)
        fig.add_vrect(
            x0=start,
            x1=start + timedelta(hours=1),
            fillcolor="#E45756",
            opacity=0.15,
            line_width=0,
            layer="below",
            **grid,
        )
        who = row.get("service") if row.get("scope") == "service" else row.get("model")
        xs.append(start + timedelta(minutes=30))
        texts.append(f"{row['metric']} of {row.get('scope')} {who}: score {row.get('score') or 0:.1f}")
    top = _top(fig)
    fig.add_trace(
        Scatter(
            x=xs,
            y=[top] * len(xs),
            mode="markers",
            name="anomaly",
            marker={"symbol": "triangle-down", "size": 9, "color": "#E45756"},
            text=texts,
            hovertemplate="<b>anomaly</b><br>%{x}<br>%{text}<extra></extra>",
        )
    )
    return fig


def _top(fig: Figure) -> float:
    top = 0.0
    for trace in fig.data:
        for v in getattr(trace, "y", None) or ():
            if isinstance(v, int | float) and v > top:
                top = float(v)
    return top or 1.0


def _wall(moment: Any, zone: Any) -> datetime:
    """An instant as wall time in `zone`, the way the buckets are drawn (plotly.js has no time zones)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return moment.astimezone(zone).replace(tzinfo=None)


def time_axis(fig: Figure, start: datetime, end: datetime, zone: Any) -> Figure:
    """The whole selected range on the x axis (every time chart of a page the same), not where data starts."""
    fig.update_xaxes(range=[_wall(start, zone), _wall(end, zone)])
    return fig
