"""dashboard/plotly_loader.js callscopeMargins in real Chromium with the dashboard's own plotly.js: a chart drawn
again starts from the margins it needed last time (so plotly's automargin has no reason to draw it twice), what is
remembered is what the labels and legend need (a stale, larger value shrinks back), and unreadable storage is
ignored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit

from bench.stack import launch
from tests.browser import require_chromium
from tests.helpers import ROOT

require_chromium()

from playwright.sync_api import Page, sync_playwright  # noqa: E402

pytestmark = pytest.mark.slow
PLOTLY = next((ROOT / "dashboard" / "static").glob("plotly-basic-*.min.js"))
LOADER = ROOT / "dashboard" / "plotly_loader.js"
OWN = {"l": 10, "r": 10, "t": 60, "b": 10}  # dashboard/charts.py's margins; automargin widens them
# One chart the way plot.js draws it: seed, draw, remember. Long y labels and an axis title push the left margin,
# a legend to the right of the plot pushes the right one.
DRAW = """async ([key, scale, own]) => {
    const div = document.createElement('div');
    div.style.width = '700px';
    document.body.appendChild(div);
    const layout = {
        margin: window.callscopeMargins.seed(key, own), height: 320, showlegend: true,
        legend: {x: 1.02, xanchor: 'left'},
        xaxis: {automargin: true}, yaxis: {automargin: true, title: {text: 'Spend (USD)'}, tickformat: ',~f'},
    };
    const data = [{x: [1, 2, 3], y: [1, 2, 3].map((v) => v * scale), name: 'a rather long series name'}];
    await Plotly.react(div, data, layout);
    window.callscopeMargins.remember(key, own, div._fullLayout);
    const size = div._fullLayout._size;
    const stored = JSON.parse(localStorage.getItem(`callscope-margins:${location.pathname}:${key}`));
    div.remove();
    return {given: layout.margin, size: {l: size.l, r: size.r, t: size.t, b: size.b}, stored};
}"""


def draw(page: Page, key: str, scale: float) -> dict:
    return page.evaluate(DRAW, [key, scale, OWN])


# The dashboard's charts are drawn in Streamlit's font (Source Sans, shipped with Streamlit): label widths depend on it.
FONT = next((Path(streamlit.__file__).parent / "static" / "static" / "media").glob("SourceSansVF-Upright*.woff2"))
PAGE = """<html><head><style>@font-face {font-family: "Source Sans"; src: url(/font.woff2) format("woff2");}</style>
</head><body></body></html>"""


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    (tmp_path / "index.html").write_text(PAGE)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        context = browser.new_context()
        # a page with an origin (localStorage needs one; a file URL has none): a made-up one, answered here
        context.route("http://callscope.test/font.woff2", lambda route: route.fulfill(path=str(FONT)))
        context.route("http://callscope.test/cost", lambda route: route.fulfill(path=str(tmp_path / "index.html")))
        page = context.new_page()
        page.goto("http://callscope.test/cost")
        page.add_script_tag(path=str(PLOTLY))
        page.add_script_tag(path=str(LOADER))
        assert page.evaluate("""async () => (await document.fonts.load('13px "Source Sans"')).length""") == 1
        yield page
        browser.close()


def test_a_chart_drawn_again_starts_from_the_margins_it_needed(page: Page) -> None:
    first = draw(page, "spend", 1_000_000)
    assert first["given"] == OWN
    # automargin widened the left (labels, title) and right (legend) margins: plotly drew the chart again
    assert first["size"]["l"] > 60 and first["size"]["r"] > 100
    # what is remembered covers what plotly settled on, by no more than a few pixels
    for side in "lrtb":
        assert first["size"][side] <= first["stored"][side] <= first["size"][side] + 3, side
    second = draw(page, "spend", 1_000_000)
    assert second["given"] == first["stored"]
    # plotly kept the margins it was given: with no margin change, automargin does not draw it again
    assert second["size"] == second["given"]
    assert second["stored"] == first["stored"]


def test_a_stale_larger_margin_shrinks_back_and_other_charts_are_apart(page: Page) -> None:
    wide = draw(page, "spend", 1_000_000_000_000)
    narrow = draw(page, "spend", 1)  # small labels now: drawn with the stale wide margin once
    assert narrow["given"]["l"] == wide["stored"]["l"] and narrow["size"]["l"] == wide["stored"]["l"]
    assert narrow["stored"]["l"] < wide["stored"]["l"] - 20  # remembered: what the small labels need
    again = draw(page, "spend", 1)
    assert again["given"] == narrow["stored"] and again["size"] == again["given"]
    other = draw(page, "latency", 1_000_000_000_000)
    assert other["given"] == OWN  # another chart key starts from its own margins


def test_unreadable_storage_is_ignored(page: Page) -> None:
    page.evaluate("() => localStorage.setItem(`callscope-margins:${location.pathname}:spend`, '{not json')")
    drawn = draw(page, "spend", 1_000)
    assert drawn["given"] == OWN and drawn["stored"]["l"] >= drawn["size"]["l"]
    page.evaluate('() => localStorage.setItem(`callscope-margins:${location.pathname}:spend`, \'{"l": "x"}\')')
    assert draw(page, "spend", 1_000)["given"] == OWN


def _figures() -> list[tuple[str, object]]:
    """Charts as dashboard/charts.py builds them, over values of every magnitude the units see."""
    from datetime import UTC, datetime, timedelta

    import numpy as np
    import polars as pl

    from dashboard import charts

    rng = np.random.default_rng(7)
    start = datetime(2026, 12, 2, 9, tzinfo=UTC)
    buckets = [start + timedelta(hours=h) for h in range(24)]
    out = []
    for unit, scales in {
        "USD": (3e-4, 0.02, 7.0, 450.0, 61_000.0),
        "calls": (3, 180, 7_900, 2.4e6),
        "ms": (35.0, 900.0, 61_234.0, 3.3e6),
        "ratio": (0.004, 0.21, 1.0),
    }.items():
        for scale in scales:
            groups = ["a", "b", "c"]
            frame = pl.DataFrame(
                {
                    "bucket": [b for b in buckets for _ in groups],
                    "g": groups * len(buckets),
                    "v": (rng.random(len(buckets) * len(groups)) * scale).tolist(),
                }
            )
            stacked = unit in ("USD", "calls")
            kind = "bar" if stacked else "line"
            fig = charts.series(frame, "v", unit, "t", group="g", kind=kind, stacked=stacked)
            out.append((f"{unit} {scale:g}", fig))
    return out


def test_the_first_drawing_of_a_single_axis_chart_needs_no_second_one(page: Page) -> None:
    """The estimated starting margins (dashboard/margins.py) already hold each chart's labels: plotly keeps them."""
    from dashboard import plot

    missed = []
    for name, fig in _figures():
        size = page.evaluate(
            """async (figure) => {
                const fig = JSON.parse(figure);
                const div = document.createElement('div');
                div.style.width = '700px';
                document.body.appendChild(div);
                await Plotly.react(div, fig.data, fig.layout);
                const s = div._fullLayout._size;
                div.remove();
                return {given: fig.layout.margin, size: {l: s.l, r: s.r, t: s.t, b: s.b}};
            }""",
            plot.figure_json(fig),
        )
        if size["size"] != size["given"]:
            missed.append((name, size))
    assert not missed, missed
