"""dashboard/figure.py builds the JSON plotly.py would build: the same operations done with plotly itself give the
same figure, and every chart the dashboard draws is a figure plotly's own schema accepts."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import plotly.graph_objects as go
import plotly.io as pio
import plotly.subplots
import polars as pl
import pytest

from dashboard import alert_charts, budget_charts, charts, drift_charts
from dashboard import figure as fg


@pytest.fixture(autouse=True)
def no_default_template(monkeypatch):
    """plotly.py copies its default template into every figure; dashboard/plot.py adds one at drawing instead."""
    monkeypatch.setattr(pio.templates, "default", None)


def same(ours: fg.Figure, theirs: go.Figure) -> None:
    assert json.loads(ours.to_json()) == json.loads(theirs.to_json())


def both(build) -> None:
    """Run `build(module, figure)` once with plotly and once with ours, and compare the JSON."""
    same(build(fg, fg.Figure()), build(go, go.Figure()))


def test_traces_layout_updates_and_magic_underscores():
    when = [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, 30, 0, 500_000, tzinfo=UTC)]

    def build(m, fig):
        fig.add_trace(m.Scatter(x=when, y=[1.5, float("nan")], name="a", marker={"color": "#fff", "size": 5}))
        fig.add_trace(m.Bar(x=[date(2026, 1, 2)], y=[3], customdata=[("x", 1)], orientation="v"))
        fig.update_layout(title={"text": "T", "x": 0, "font": {"size": 15}}, height=320, yaxis_title="USD")
        fig.update_layout(legend={"orientation": "h"}, barmode="stack")
        fig.update_layout(legend={"x": 1.0}, title="replaced")  # merged into the legend; the title's text only
        fig.update_yaxes(tickprefix="$", tickformat=",.4~f")
        fig.update_xaxes(title_text="Time", type="date", range=[when[0], when[1]])
        fig.update_yaxes(title=None)  # None removes
        fig.add_annotation(text="n", xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False, font={"size": 14})
        fig.update_annotations(font={"color": "#808495"})
        return fig

    both(build)


def test_lines_and_bands():
    def build(m, fig):
        fig.add_trace(m.Scatter(x=[1, 2], y=[1, 2]))
        fig.add_vrect(x0=1, x1=2, fillcolor="#E45756", opacity=0.15, line_width=0, layer="below")
        fig.add_hline(
            y=3,
            line={"color": "red", "dash": "dash", "width": 1.5},
            annotation_text="warn",
            annotation_position="top left",
        )
        fig.add_vline(x="2026-01-02", line={"color": "#7B7B7B", "width": 1, "dash": "dash"})
        return fig

    both(build)


@pytest.mark.parametrize(
    ("rows", "cols", "titles", "shared", "vs", "hs"),
    [
        (1, 3, ["a", "b"], True, 0.12, 0.06),
        (2, 3, ["a", "b", "c", "d"], True, 0.12, 0.06),
        (4, 3, [str(i) for i in range(11)], True, 0.35 / 4, 0.06),
        (3, 2, ["x"] * 6, False, None, None),
    ],
)
def test_subplot_grids_as_plotly_lays_them_out(rows, cols, titles, shared, vs, hs):
    def build(m, make):
        fig = make(
            rows=rows, cols=cols, subplot_titles=titles, shared_xaxes=shared, vertical_spacing=vs, horizontal_spacing=hs
        )
        for i in range(len(titles) - 1):  # the last cell stays empty: bands skip it, as plotly's do
            fig.add_trace(
                m.Bar(x=[1, 2], y=[i, i + 1], name="n", showlegend=i == 0), row=i // cols + 1, col=i % cols + 1
            )
        fig.update_yaxes(dtick=1, tickformat="d", row=1, col=2 if cols > 1 else 1)
        fig.update_xaxes(range=[0, 3])
        fig.add_vrect(x0=1, x1=2, fillcolor="#E45756", opacity=0.15, line_width=0, layer="below", row="all", col="all")
        fig.update_annotations(font={"size": 12})
        return fig

    same(build(fg, fg.make_subplots), build(go, plotly.subplots.make_subplots))


def test_unset_properties_read_as_none_and_set_ones_as_attributes():
    fig = fg.Figure(fg.Scatter(x=[1], y=[2]))
    assert fig.data[0].y == [2]
    assert fig.data[0].text is None
    assert fig.layout.xaxis is None
    fig.update_xaxes(range=[0, 1])
    assert fig.layout.xaxis.range == [0, 1]
    with pytest.raises(ValueError, match="make_subplots"):
        fig.add_trace(fg.Bar(x=[1], y=[1]), row=1, col=1)


def _plotly_too(monkeypatch, build):
    """`build()` once with dashboard/figure.py and once with plotly's classes in its place: the same JSON."""
    ours = build()
    for module in (charts, alert_charts, budget_charts, drift_charts):
        for name, theirs in (("Figure", go.Figure), ("Bar", go.Bar), ("Scatter", go.Scatter)):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, theirs)
    monkeypatch.setattr(charts, "make_subplots", plotly.subplots.make_subplots)
    theirs = build()
    monkeypatch.undo()
    pio.templates.default = None
    same(ours, theirs)
    go.Figure(json.loads(ours.to_json()))  # and plotly's validation accepts it (raises on an unknown property)


T0 = datetime(2026, 3, 1, tzinfo=UTC)
BUCKETS = [T0 + timedelta(hours=h) for h in range(30)]
FRAME = pl.DataFrame(
    {
        "bucket": BUCKETS * 2,
        "model": ["m1"] * 30 + [None] * 30,
        "calls": [float(h % 7) for h in range(60)],
        "cost_usd": [h * 0.01 for h in range(60)],
        "input_tokens_per_call": [100.0 + h for h in range(60)],
        "output_tokens_per_call": [10.0 + h for h in range(60)],
    }
)
ONE = FRAME.filter(pl.col("model") == "m1")
ZONE = ZoneInfo("Europe/Berlin")
SPANS = [
    {
        "depth": 0,
        "name": "root",
        "span_id": "a" * 16,
        "status": "ok",
        "type": "span",
        "duration_ms": 9.0,
        "offset_ms": 0.0,
    },
    {
        "depth": 1,
        "name": None,
        "span_id": "b" * 16,
        "status": "error",
        "type": "call",
        "duration_ms": 5.0,
        "offset_ms": 1.0,
        "cost_usd": 0.01,
    },
]
ANOMALIES = [{"hour": "2026-03-01T05:00:00Z", "metric": "spend", "scope": "service", "service": "s", "score": 4.2}]
BUILDERS = {
    "stacked bars by group": lambda: charts.series(
        FRAME, "cost_usd", "USD", "Spend", group="model", kind="bar", stacked=True
    ),
    "one line": lambda: charts.series(ONE, "calls", "calls", "Calls"),
    "lines": lambda: charts.lines(ONE, ["calls", "cost_usd"], "calls", "Calls", {"calls": "c"}),
    "histogram": lambda: charts.histogram(pl.DataFrame({"lo": [1.0, 10.0], "hi": [10.0, 100.0], "calls": [3, 4]}), "D"),
    "small multiples": lambda: charts.small_multiples(
        FRAME, "model", {"calls": "calls"}, "calls", "Per model", kind="bar"
    ),
    "small multiples, two lines": lambda: charts.small_multiples(
        FRAME, "model", {"input_tokens_per_call": "in", "output_tokens_per_call": "out"}, "tokens", "T", columns=2
    ),
    "small multiples, stacked steps": lambda: charts.small_multiples(
        FRAME, "model", {"calls": "a", "cost_usd": "b"}, "calls", "Steps", kind="steps"
    ),
    "empty, with a message": lambda: charts.with_message(charts.series(FRAME.head(0), "calls", "calls", "E"), "None"),
    "anomaly marks": lambda: charts.mark_anomalies(charts.series(FRAME, "calls", "calls", "x"), ANOMALIES, ZONE),
    "one time axis": lambda: charts.time_axis(
        charts.series(FRAME, "calls", "calls", "x"), BUCKETS[0], BUCKETS[-1], ZONE
    ),
    "trace waterfall": lambda: charts.waterfall(SPANS, highlight="b" * 16),
    "alert preview": lambda: alert_charts.preview(
        {
            "unit": "ms",
            "rule": {"op": ">"},
            "to": "2026-03-01T03:00:00Z",
            "series": [{"group": "all", "points": [["2026-03-01T00:00:00Z", 3.0], ["2026-03-01T01:00:00Z", None]]}],
            "thresholds": {"warning": 2.0, "critical": 5.0},
            "firings": [{"starts_at": "2026-03-01T00:00:00Z", "ends_at": None, "severity": "warning"}],
        },
        "Preview",
    ),
    "drift matrix": lambda: drift_charts.matrix(
        [
            {
                "project": "p",
                "service": "s",
                "model": "m",
                "metric": metric,
                "status": status,
                "severity": 1.5,
                "drifted": status == "drift",
                "n_reference": 100,
                "n_current": 90,
                "test": "ks",
                "score": 0.3,
                "threshold": 0.1,
            }
            for metric, status in (("duration_ms", "drift"), ("output_tokens", "not_enough_data"))
        ]
    ),
    "anomaly series": lambda: drift_charts.anomaly_series(
        [
            {"hour": "2026-03-01T00:00:00Z", "baseline": 1.0, "value": 1.1, "anomalous": False, "score": 0.2},
            {"hour": "2026-03-01T01:00:00Z", "baseline": 1.0, "value": 9.0, "anomalous": True, "score": 7.7},
        ],
        "ratio",
        "Error rate",
        [{"released_at": "2026-03-01T00:30:00Z", "service": "s", "release": "v2"}],
    ),
}


@pytest.mark.parametrize("name", BUILDERS)
def test_every_chart_is_the_figure_plotly_would_build(monkeypatch, name):
    _plotly_too(monkeypatch, BUILDERS[name])


def test_anomaly_bands_cover_each_panel_with_data_once():
    grid = charts.mark_anomalies(charts.small_multiples(FRAME, "model", {"calls": "c"}, "calls", "x"), ANOMALIES, ZONE)
    panels = {t.get("xaxis") for t in grid.data if t["name"] != "anomaly"}
    assert len(panels) == 2
    assert sorted(s["xref"] for s in grid.layout.shapes) == sorted(p or "x" for p in panels)


def test_stacked_steps_fall_back_to_zero_where_the_answer_has_no_bucket():
    """The API leaves buckets without failures out; a step must not hold a 5-minute count until the next one."""
    five = timedelta(minutes=5)
    frame = pl.DataFrame(
        {
            "bucket": [T0, T0 + five, T0 + 12 * five, T0, T0 + 3 * five],
            "provider": ["a", "a", "a", "b", "b"],
            "errors": [2, 1, 4, 1, 1],
        }
    )
    fig = charts.small_multiples(frame, "provider", {"errors": "errors"}, "calls", "Failed", kind="steps")
    a, b = fig.data
    assert list(zip(a.x, a.y, strict=True)) == [
        (T0, 2),
        (T0 + five, 1),
        (T0 + 2 * five, 0),
        (T0 + 12 * five, 4),
        (T0 + 13 * five, 0),
    ]
    assert list(zip(b.x, b.y, strict=True)) == [(T0, 1), (T0 + five, 0), (T0 + 3 * five, 1), (T0 + 4 * five, 0)]
    assert a.stackgroup != b.stackgroup and a.line["shape"] == "hv"
