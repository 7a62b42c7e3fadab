"""A chart's starting margins, estimated from its data and axis formats.

Why: plotly's automargin draws a chart with the margins it is given, measures the tick labels, and draws the whole
chart again when they need more room (about half of a chart's drawing time; dashboard/plotly_loader.js). A browser
that drew the chart before starts from what it needed then; this estimate is for the first drawing in a browser.
It only ever widens the figure's own margins and errs wide by a few pixels: plotly widens them further when the
labels need more (one more drawing, as without it). Only charts with one x and one y axis are estimated; small
multiples keep their own margins.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from dashboard.figure import Figure

# Widths in pixels of the dashboard's chart font (Source Sans, 13 px), by character class.
NARROW, SEMI, WIDE, OTHER = 3.0, 4.0, 9.5, 6.4
_NARROW, _SEMI, _WIDE = set("il.,:;'|!- "), set("tfjr"), set("%mwMW")
Y_TITLE = 26.0  # a y axis title, written sideways, and its distance from the labels
PAD = 12.0  # plotly's padding around what pushes a margin
SLACK = 3.0  # errs wide: a pixel short means one more drawing
DATE_LABELS = 47  # a date axis's labels take two lines (the time, and the date under the first tick of each day)
LEGEND_PAD = 2  # plotly pads what pushes a margin by min(12, the four margins)
DATE_RIGHT = 16  # half a time label ("18:00") past the right edge, when a tick falls on it
X_TITLE = 56  # one line of labels and an x axis title


def text_px(text: str) -> float:
    return sum(NARROW if c in _NARROW else SEMI if c in _SEMI else WIDE if c in _WIDE else OTHER for c in text)


def start_margin(fig: Figure) -> dict[str, int]:
    """The figure's own margins, widened on the left (y labels and title) and at the bottom (x labels and title)
    to what its labels will likely need."""
    layout = fig.layout
    own = {side: int((layout.margin or {}).get(side, 0)) for side in ("l", "r", "t", "b")}
    if any(k.startswith(("xaxis", "yaxis")) and k[5:] for k in layout):  # subplots: left as they are
        return own
    x, y = layout.xaxis or {}, layout.yaxis or {}
    bars = [t for t in fig.data if t.get("type") == "bar"]
    left = 0.0
    if y.get("type") == "category" or any(t.get("orientation") == "h" for t in bars):
        labels = [str(v) for t in fig.data for v in (t.get("y") or [])]
        left = max((text_px(s) for s in labels), default=0.0)
    elif y.get("type") in (None, "linear", "-"):
        values = _y_values(fig.data, stacked=layout.barmode in ("stack", "relative"))
        left = max((text_px(y.get("tickprefix", "") + s) for s in tick_labels(values, y.get("tickformat"))), default=0)
    if left:
        left += PAD + SLACK + (Y_TITLE if _title(y) else 0.0)
        own["l"] = max(own["l"], math.ceil(left))
    if x.get("type") == "date" or (x.get("type") is None and _looks_like_dates(fig.data)):
        own["b"] = max(own["b"], DATE_LABELS)
        own["r"] = max(own["r"], DATE_RIGHT)
    elif _title(x):
        own["b"] = max(own["b"], X_TITLE)
    if min(own.values()) >= PAD and _has_legend(fig):
        own["t"] += LEGEND_PAD  # the legend above is padded by 12 px, not 10, once every margin is 12 or more
    return own


def tick_labels(values: Sequence[float], tickformat: str | None) -> list[str]:
    """The labels plotly would likely put on a linear axis over `values` (from 0 when all are positive)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return []
    low, high = min(0.0, min(finite)), max(0.0, max(finite)) * 1.05
    if high <= low:
        return [format_tick(low, tickformat)]
    labels: list[str] = []
    for ticks in (4, 8):  # plotly puts 4-8 ticks on a chart this tall; both spacings, so the widest is covered
        step = _nice_step((high - low) / ticks)
        labels += [format_tick(k * step, tickformat) for k in range(math.ceil(low / step), math.floor(high / step) + 1)]
    return labels


def format_tick(value: float, tickformat: str | None) -> str:
    """d3-format's rendering of the formats the dashboard's axes use (",~s", ",~f", "+,~f", ",.4~f", ",.3~r", ".1%",
    ".0%", "d"); plotly's own (no format) approximated by the shortest general form."""
    if tickformat and tickformat.endswith("%"):
        digits = tickformat.removesuffix("%").removesuffix("~").lstrip(",.") or "0"
        text = f"{value * 100:,.{int(digits)}f}"
        return (_trim(text) if "~" in tickformat else text) + "%"
    if tickformat and tickformat.endswith("~s"):
        for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= factor:
                return _trim(f"{value / factor:,.6f}") + suffix
        return _trim(f"{value:,.6f}")
    if tickformat and tickformat.endswith("~f"):
        digits = tickformat.lstrip("+,").removesuffix("~f").lstrip(".") or "6"
        sign = "+" if tickformat.startswith("+") and value > 0 else ""
        return sign + _trim(f"{value:,.{int(digits)}f}")
    if tickformat and tickformat.endswith("~r"):  # significant digits, never an exponent
        digits = int(tickformat.lstrip(",").removesuffix("~r").lstrip(".") or "6")
        if value == 0:
            return "0"
        places = digits - 1 - math.floor(math.log10(abs(value)))  # negative: rounded to tens, hundreds, ...
        return _trim(f"{round(value, places):,.{max(0, places)}f}")
    if tickformat == "d":
        return f"{round(value)}"
    return f"{value:g}"


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def _nice_step(rough: float) -> float:
    magnitude = 10 ** math.floor(math.log10(rough))
    return next(m * magnitude for m in (1, 2, 5, 10) if rough <= m * magnitude)


def _y_values(traces: Sequence[dict[str, Any]], *, stacked: bool) -> list[float]:
    """Every y value, or with stacked bars the positive stack totals per x (when there are any)."""
    values = [v for t in traces for v in (t.get("y") or []) if isinstance(v, int | float)]
    if not stacked:
        return values
    totals: dict[Any, float] = {}
    for t in traces:
        for xv, yv in zip(t.get("x") or [], t.get("y") or [], strict=False):
            if isinstance(yv, int | float) and yv > 0:
                totals[xv] = totals.get(xv, 0.0) + yv
    return list(totals.values()) or values


def _has_legend(fig: Figure) -> bool:
    shown = [t for t in fig.data if t.get("showlegend") is not False]
    return fig.layout.showlegend is not False and len(shown) > 1


def _title(axis: dict[str, Any]) -> bool:
    title = axis.get("title")
    return bool(title.get("text") if isinstance(title, dict) else title)


def _looks_like_dates(traces: Iterable[dict[str, Any]]) -> bool:
    for t in traces:
        xs = t.get("x") or []
        if xs:
            return hasattr(xs[0], "isoformat") or (isinstance(xs[0], str) and xs[0][:4].isdigit() and "-" in xs[0])
    return False
