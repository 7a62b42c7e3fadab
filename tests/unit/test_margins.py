"""dashboard/margins.py: tick labels as d3-format writes them for the dashboard's axis formats, and starting margins
that only ever widen a figure's own (the browser test tests/browser/test_chart_margins.py checks that plotly.js keeps
them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from dashboard import charts, margins
from dashboard.figure import Bar, Figure, Scatter, make_subplots


@pytest.mark.parametrize(
    ("value", "fmt", "text"),
    [
        (8000, ",~s", "8k"),
        (2500, ",~s", "2.5k"),
        (150_000, ",~s", "150k"),
        (2_000_000, ",~s", "2M"),
        (40, ",~s", "40"),
        (60_000, ",~f", "60,000"),
        (0.5, ",~f", "0.5"),
        (0.024, ",.4~f", "0.024"),
        (1234.5, ",.4~f", "1,234.5"),
        (0.00015, ",.3~r", "0.00015"),  # d3-format 3's own answers (checked with node)
        (0.000125, ",.3~r", "0.000125"),
        (1250, ",.3~r", "1,250"),
        (12345, ",.3~r", "12,300"),
        (2_500_000, ",.3~r", "2,500,000"),
        (0.1 + 0.2, ",.3~r", "0.3"),
        (0, ",.3~r", "0"),
        (0.02, ".1%", "2.0%"),
        (0.2, ".0%", "20%"),
        (5, "+,~f", "+5"),
        (-5, "+,~f", "-5"),
        (1500, "d", "1500"),
        (1500, None, "1500"),
    ],
)
def test_tick_labels_read_as_d3_format_writes_them(value: float, fmt: str | None, text: str) -> None:
    assert margins.format_tick(value, fmt) == text


def test_the_widest_label_of_both_tick_spacings_is_among_the_candidates() -> None:
    labels = margins.tick_labels([0.0249], ",.4~f")
    assert "0.025" in labels and "0.02" in labels  # 8 ticks: steps of 0.005; 4 ticks: 0.01
    assert margins.tick_labels([], ",~f") == []
    assert margins.tick_labels([0.0, 0.0], ",~f") == ["0"]


def _series(scale: float) -> Figure:
    start = datetime(2026, 12, 2, tzinfo=UTC)
    frame = pl.DataFrame({"bucket": [start + timedelta(hours=h) for h in range(6)], "v": [scale * h for h in range(6)]})
    return charts.series(frame, "v", "ms", "t")


def test_a_time_chart_gets_room_for_its_labels_and_never_less_than_its_own() -> None:
    small, large = margins.start_margin(_series(1.0)), margins.start_margin(_series(1e6))
    assert small["b"] == large["b"] == margins.DATE_LABELS and small["r"] == margins.DATE_RIGHT
    # "5" against "5,000,000" (and the axis title) on the left
    assert small["l"] > 10 + margins.Y_TITLE and large["l"] > small["l"] + 6 * margins.OTHER
    fig = _series(1.0)
    fig.update_layout(margin={"l": 300, "r": 40, "t": 90, "b": 80})
    assert margins.start_margin(fig) == {"l": 300, "r": 40, "t": 90, "b": 80}


def test_category_labels_set_the_left_margin_and_subplots_keep_their_own() -> None:
    bars = Figure(Bar(x=[1.0, 2.0], y=["x", "a-much-longer-user-name"], orientation="h"))
    bars.update_layout(xaxis_title="Spend (USD)")
    bars.update_yaxes(type="category")
    ranked = margins.start_margin(bars)
    assert ranked["l"] == pytest.approx(margins.text_px("a-much-longer-user-name") + margins.PAD + margins.SLACK, abs=1)
    assert ranked["b"] == margins.X_TITLE  # one line of amounts and the axis title
    grid = make_subplots(rows=1, cols=2)
    grid.add_trace(Scatter(x=[1, 2], y=[3e9, 4e9]), row=1, col=2)
    grid.update_layout(margin={"l": 10, "r": 10, "t": 60, "b": 10})
    assert margins.start_margin(grid) == {"l": 10, "r": 10, "t": 60, "b": 10}
