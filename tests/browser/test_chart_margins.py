"""dashboard/plotly_loader.js callscopeMargins in real Chromium with the dashboard's own plotly.js: a chart drawn
again starts from the margins it needed last time (so plotly's automargin has no reason to draw it twice), what is
remembered is what the labels and legend need (a stale, larger value shrinks back), and unreadable storage is
ignored."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.stack import CHROMIUM, launch
from tests.helpers import ROOT

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Page, sync_playwright

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


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    (tmp_path / "index.html").write_text("<html><body></body></html>")
    with sync_playwright() as playwright:
        browser = launch(playwright)
        context = browser.new_context()
        # a page with an origin (localStorage needs one), served from a file URL is not enough: route a fake one
        context.route("http://callscope.test/**", lambda route: route.fulfill(path=str(tmp_path / "index.html")))
        page = context.new_page()
        page.goto("http://callscope.test/cost")
        page.add_script_tag(path=str(PLOTLY))
        page.add_script_tag(path=str(LOADER))
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
