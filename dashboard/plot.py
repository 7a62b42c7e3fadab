"""Plotly charts drawn with plotly.js "basic" through a Streamlit component instead of st.plotly_chart.

Why: st.plotly_chart makes every new browser tab load and run the full plotly.js (4.7 MB), which took about a
second of the page's 2 s budget on a 2-core machine. The charts here only use scatter and bar traces, which the
1.2 MB basic bundle (dashboard/static, MIT licence, served by Streamlit's static file serving) draws the same.
Selections come back in st.plotly_chart's shape ({"selection": {"points": [...], "box": [...]}}).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard import margins
from dashboard.figure import Figure, to_json

PLOTLY_JS = "plotly-basic-4.1.1.min.js"
CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["toImage", "lasso2d"], "responsive": True}
FONT = {"family": '"Source Sans", "Source Sans Pro", sans-serif', "size": 13, "color": "#31333F"}
# plotly's "plotly_white" look, as plotly itself ships it (read once; plotly.py would copy it into every figure).
TEMPLATE = json.loads(resources.files("plotly").joinpath("package_data/templates/plotly_white.json").read_text())

_DRAWN = "_callscope_charts_drawn"  # charts drawn by the current script run (the footer shows the count)
_HERE = Path(__file__).parent
LOADER_JS = (_HERE / "plotly_loader.js").read_text()
_component = st.components.v2.component(
    "callscope_plot",
    js=LOADER_JS + "\n" + (_HERE / "plot.js").read_text(),
    isolate_styles=False,  # plotly.js puts its styles in the page's <head>
)


def draw(
    fig: Figure, key: str, *, select: str | tuple[str, ...] | None = None, scope: str = ""
) -> dict[str, Any] | None:
    """Draw `fig` (its layout gets the dashboard's look); with `select` ("points", "box" or both), return the
    current selection as st.plotly_chart would.

    A selection belongs to the view it was made in: under another `scope` (e.g. other filters) the chart starts
    without one, while the same scope keeps it through reruns and redraws (plot.js keeps the drawn box)."""
    modes = (select,) if isinstance(select, str) else tuple(select or ())
    st.session_state[_DRAWN] = st.session_state.get(_DRAWN, 0) + 1
    if "box" in modes:
        fig.update_layout(dragmode="select", selectdirection="h")
    elif modes:
        fig.update_layout(clickmode="event")
    result = _component(
        key=f"{key}_{scope}" if scope else key,
        data={
            "figure": figure_json(fig),
            "config": CONFIG,
            "select": bool(modes),
            "src": _src(),
            "key": key,  # the chart's margins are remembered by it (plotly_loader.js callscopeMargins)
            "scope": scope,  # a box drawn in another scope is not carried over (plot.js)
        },
        default={"selection": None},
        on_selection_change=lambda: None,
    )
    if not modes:
        return None
    return {"selection": result.selection} if result.selection else None


def figure_json(fig: Figure) -> str:
    """The figure as plotly.js gets it: the dashboard's font and look, and margins its labels will likely need
    (dashboard/margins.py)."""
    fig.update_layout(font=FONT, autosize=True, margin=margins.start_margin(fig))
    return to_json({"data": fig.data, "layout": {**fig.layout, "template": TEMPLATE}})


def begin_run() -> None:
    """Start counting the charts of this script run (app.py, before the page runs)."""
    st.session_state[_DRAWN] = 0


def drawn_marker() -> None:
    """An invisible mark with the number of charts this run drew: a browser test or the benchmark waits until that
    many plots are drawn (bench/stack.py wait_rendered), so it cannot stop before the charts are on screen."""
    st.html(f'<span class="callscope-expect" data-charts="{int(st.session_state.get(_DRAWN, 0))}"></span>')


def preload() -> None:
    """Start loading plotly.js while the page waits for its numbers, so charts draw as soon as they arrive.

    A script in the sidebar (the first thing a run draws); it starts the one shared load plot.js waits on.
    """
    st.sidebar.html(
        f"<script>{LOADER_JS}\nwindow.callscopeLoadPlotly({json.dumps(_src())});</script>",
        unsafe_allow_javascript=True,
    )


def _src() -> str:
    """Where Streamlit serves dashboard/static (server.enableStaticServing), honouring a base URL path."""
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}/app/static/{PLOTLY_JS}" if base else f"/app/static/{PLOTLY_JS}"
