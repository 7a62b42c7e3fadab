"""Plotly figures as plain dicts: the part of plotly.graph_objects the dashboard's charts use, without its cost.

Why: plotly's Python objects validate every property against the schema on every update and copy the whole
template into each figure; a chart cost 10-100 ms to build that way and the Cost page's eight charts ~1 s of the
dashboard process's CPU, which the browser drawing them on the same machine waits for. The charts are only ever
sent to plotly.js as JSON, so they are built here as the JSON plotly would send, directly. The operations
implemented behave as plotly's (tests/unit/test_figure.py builds the same figures with plotly and compares the
JSON); anything else is not needed by the dashboard and raises.

Properties read as attributes (`fig.layout.xaxis.range`, `fig.data[0].y`), unset ones as None, as in plotly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson


class Node(dict):
    """A JSON object whose keys also read as attributes; a missing key reads as None (plotly's unset value)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self.get(name)

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = _node(value)


def _node(value: Any) -> Any:
    if isinstance(value, Node):
        return value
    if isinstance(value, Mapping):  # None inside a dict leaves the property unset, as in plotly
        return Node((k, _node(v)) for k, v in value.items() if v is not None)
    if isinstance(value, list) and value and isinstance(value[0], Mapping):
        return [_node(v) for v in value]
    return value


# Property names that contain an underscore themselves (everything else splits: yaxis_title -> yaxis.title).
_UNDERSCORED = frozenset({"error_x", "error_y"})


def _path(key: str) -> list[str]:
    if key in _UNDERSCORED or "_" not in key:
        return [key]
    head, _, rest = key.partition("_")
    return [head, *_path(rest)]


def update(target: Node, values: Mapping[str, Any]) -> Node:
    """plotly's update: magic underscores (`title_text`), nested dicts merged, a string `title` is its text, None
    unsets the property."""
    for key, value in values.items():
        *parents, leaf = _path(key)
        node = target
        for name in parents:
            child = node.get(name)
            if not isinstance(child, Node):
                child = node[name] = Node()
            node = child
        if leaf == "title" and isinstance(value, str):  # a string title replaces the whole title
            node[leaf] = Node(text=value)
        elif value is None:  # unset; plotly leaves an unset object (a title, a font) as {}
            if isinstance(node.get(leaf), Node) or leaf == "title":
                node[leaf] = Node()
            else:
                node.pop(leaf, None)
        elif isinstance(value, Mapping) and isinstance(node.get(leaf), Node):
            update(node[leaf], value)
        else:
            node[leaf] = _node(value)
    return target


def trace(kind: str, **props: Any) -> Node:
    return update(Node(type=kind), props)


def Scatter(**props: Any) -> Node:
    return trace("scatter", **props)


def Bar(**props: Any) -> Node:
    return trace("bar", **props)


class Figure:
    """data (traces) and layout; on a grid from make_subplots, traces and axis updates can name a row and column."""

    def __init__(self, data: Node | Iterable[Node] | None = None, layout: Mapping[str, Any] | None = None) -> None:
        self.data: list[Node] = []
        self.layout = Node()
        self.grid: list[list[int]] | None = None  # subplot number per (row, col), 1-based, when a grid
        if isinstance(data, Node):
            data = [data]
        for t in data or ():
            self.add_trace(t)
        if layout:
            update(self.layout, layout)

    # -- traces ---------------------------------------------------------------------------------------------

    def add_trace(self, trace: Node, row: int | None = None, col: int | None = None) -> Figure:
        trace = _node(trace)
        if row is not None and col is not None:
            n = self._cell(row, col)
            trace["xaxis"], trace["yaxis"] = _ref("x", n), _ref("y", n)
        self.data.append(trace)
        return self

    # -- layout ---------------------------------------------------------------------------------------------

    def update_layout(self, values: Mapping[str, Any] | None = None, **props: Any) -> Figure:
        update(self.layout, {**(values or {}), **props})
        return self

    def update_xaxes(self, row: int | None = None, col: int | None = None, **props: Any) -> Figure:
        return self._update_axes("x", row, col, props)

    def update_yaxes(self, row: int | None = None, col: int | None = None, **props: Any) -> Figure:
        return self._update_axes("y", row, col, props)

    def _update_axes(self, letter: str, row: int | None, col: int | None, props: Mapping[str, Any]) -> Figure:
        if row is not None or col is not None:
            if row is None or col is None:
                raise NotImplementedError("an axis update names both row and col, or neither")
            names = [_axis(letter, self._cell(row, col))]
        else:  # every axis of that letter; a figure without subplots has its one axis even when unset
            names = [k for k in self.layout if _is_axis(k, letter)] or [f"{letter}axis"]
        for name in names:
            axis = self.layout.get(name)
            if not isinstance(axis, Node):
                axis = self.layout[name] = Node()
            update(axis, props)
        return self

    def add_annotation(self, **props: Any) -> Figure:
        self.layout.setdefault("annotations", []).append(update(Node(), props))
        return self

    def update_annotations(self, **props: Any) -> Figure:
        for annotation in self.layout.get("annotations", ()):
            update(annotation, props)
        return self

    def add_shape(self, **props: Any) -> Figure:
        self.layout.setdefault("shapes", []).append(update(Node(), props))
        return self

    def add_hline(self, y: Any, annotation_text: str | None = None, annotation_position: str | None = None, **props):
        """A horizontal line across the plot at `y` (plotly's add_hline); its label at the top left."""
        self.add_shape(**{**props, "type": "line", "x0": 0, "x1": 1, "xref": "x domain", "y0": y, "y1": y, "yref": "y"})
        if annotation_text is not None:
            if annotation_position not in (None, "top left"):
                raise NotImplementedError(f"annotation_position {annotation_position!r}")
            self.add_annotation(
                showarrow=False,
                text=annotation_text,
                x=0,
                xanchor="left",
                xref="x domain",
                y=y,
                yanchor="bottom",
                yref="y",
            )
        return self

    def add_vline(self, x: Any, **props: Any) -> Figure:
        return self.add_shape(
            **{**props, "type": "line", "x0": x, "x1": x, "xref": "x", "y0": 0, "y1": 1, "yref": "y domain"}
        )

    def add_vrect(self, x0: Any, x1: Any, row: str | None = None, col: str | None = None, **props: Any) -> Figure:
        """A shaded band from x0 to x1 over the plot's height; with row="all", col="all" on a grid, over every
        subplot that has a trace (plotly's default)."""
        cells = [1]
        if row is not None or col is not None:
            if (row, col) != ("all", "all"):
                raise NotImplementedError("add_vrect on a grid takes row='all', col='all'")
            used = {_number(t.get("xaxis") or "x") for t in self.data}
            cells = [n for line in (self.grid or [[1]]) for n in line if n in used]
        for n in cells:
            self.add_shape(
                **props,
                type="rect",
                x0=x0,
                x1=x1,
                xref=_ref("x", n),
                y0=0,
                y1=1,
                yref=f"{_ref('y', n)} domain",
            )
        return self

    # -- grid -----------------------------------------------------------------------------------------------

    def _cell(self, row: int, col: int) -> int:
        if self.grid is None:
            raise ValueError("row/col need a figure from make_subplots")
        return self.grid[row - 1][col - 1]

    # -- output ---------------------------------------------------------------------------------------------

    def to_json(self) -> str:
        return to_json({"data": self.data, "layout": self.layout})


def make_subplots(
    rows: int,
    cols: int,
    *,
    subplot_titles: Iterable[str] = (),
    shared_xaxes: bool = False,
    vertical_spacing: float | None = None,
    horizontal_spacing: float | None = None,
) -> Figure:
    """A grid of subplots, top row first, numbered across then down, as plotly.subplots.make_subplots lays it out
    (domains, anchors, shared x axes matching the bottom row's, titles above each cell)."""
    hs = 0.2 / cols if horizontal_spacing is None else horizontal_spacing
    subplot_titles = list(subplot_titles)
    vs = (0.5 if subplot_titles else 0.3) / rows if vertical_spacing is None else vertical_spacing
    widths = [(1.0 - hs * (cols - 1)) / cols] * cols
    heights = [(1.0 - vs * (rows - 1)) / rows] * rows
    fig = Figure()
    fig.grid = [[r * cols + c + 1 for c in range(cols)] for r in range(rows)]
    domains = []
    for r in range(rows):  # plotly's arithmetic, sums and all, so the domains are its to the last bit
        below = rows - 1 - r
        y0 = sum(heights[:below]) + below * vs
        y = [_clip(y0), _clip(y0 + heights[-1 - r])]
        for c in range(cols):
            n = fig.grid[r][c]
            x0 = sum(widths[:c]) + c * hs
            x = [_clip(x0), _clip(x0 + widths[c])]
            domains.append((x, y))
            xaxis = Node(anchor=_ref("y", n), domain=x)
            if shared_xaxes and r < rows - 1:
                xaxis.update(matches=_ref("x", fig.grid[rows - 1][c]), showticklabels=False)
            fig.layout[_axis("x", n)] = xaxis
            fig.layout[_axis("y", n)] = Node(anchor=_ref("x", n), domain=y)
    for title, (x, y) in zip(subplot_titles, domains, strict=False):
        fig.add_annotation(
            font={"size": 16},
            showarrow=False,
            text=title,
            x=sum(x) / 2.0,
            xanchor="center",
            xref="paper",
            y=y[1],
            yanchor="bottom",
            yref="paper",
        )
    return fig


def _clip(value: float) -> float:
    """plotly puts a domain end that float error left a hair outside [0, 1] back on the edge."""
    return 1.0 if 1.0 < value < 1.01 else 0.0 if -0.01 < value < 0.0 else value


def _axis(letter: str, n: int) -> str:
    return f"{letter}axis" if n == 1 else f"{letter}axis{n}"


def _ref(letter: str, n: int) -> str:
    return letter if n == 1 else f"{letter}{n}"


def _number(ref: str) -> int:
    return int(ref[1:] or 1)


def _is_axis(key: str, letter: str) -> bool:
    prefix = f"{letter}axis"
    return key.startswith(prefix) and (key == prefix or key[len(prefix) :].isdigit())


def to_json(figure: Mapping[str, Any]) -> str:
    """JSON as plotly writes it: datetimes in ISO 8601 (with their offset when they have one), NaN as null."""
    return orjson.dumps(figure, option=orjson.OPT_NON_STR_KEYS).decode()
