"""bench.stack.wait_rendered, the wait of the browser tests and of bench/dashboard.py, on pages made here in real
Chromium with the dashboard's own plotly.js: it returns only once as many plotly plots as the footer announces are
drawn with their traces, and fails loudly (naming what is missing) when its selectors find nothing."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from bench.stack import RenderTimeout, launch, wait_rendered
from tests.browser import require_chromium
from tests.helpers import ROOT

require_chromium()

from playwright.sync_api import Page, sync_playwright  # noqa: E402

pytestmark = pytest.mark.slow
PLOTLY = next((ROOT / "dashboard" / "static").glob("plotly-basic-*.min.js"))
FOOTER = '<div class="st-key-rendered">footer<span class="callscope-expect" data-charts="{n}"></span></div>'


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser.new_page()
        browser.close()


def test_it_waits_for_every_announced_chart_to_be_drawn(page: Page) -> None:
    page.set_content(f"<div id='a'></div><div id='b'></div>{FOOTER.format(n=2)}")
    page.add_script_tag(path=str(PLOTLY))
    # the second chart is drawn 600 ms later: the wait must not return before it
    page.evaluate(
        """() => {
            Plotly.newPlot('a', [{x: [1, 2], y: [3, 4], type: 'bar'}, {x: [1, 2], y: [2, 1]}]);
            setTimeout(() => Plotly.newPlot('b', [{x: [1, 2, 3], y: [1, 3, 2]}]), 600);
        }"""
    )
    started = time.monotonic()
    state = wait_rendered(page, timeout_ms=10_000)
    assert time.monotonic() - started >= 0.5
    assert (state["expected"], state["plots"], state["drawn"]) == (2, 2, 2)
    assert page.locator("#b .main-svg g.trace").count() == 1 and page.locator("#a .main-svg g.trace").count() == 2


def test_it_fails_loudly_when_the_charts_selector_finds_nothing(page: Page) -> None:
    # the app says it drew two charts, but nothing on the page is a plotly plot (e.g. a renamed element)
    page.set_content(f"<div class='some-other-chart'></div>{FOOTER.format(n=2)}")
    with pytest.raises(RenderTimeout, match=re.escape("drew 2 charts but '.js-plotly-plot' finds nothing")):
        wait_rendered(page, timeout_ms=1_000)


def test_it_fails_loudly_without_the_footer_count(page: Page) -> None:
    page.set_content("<div class='st-key-rendered'>footer</div>")
    with pytest.raises(RenderTimeout, match="chart count"):
        wait_rendered(page, timeout_ms=1_000)


def test_it_waits_for_tables_to_be_laid_out(page: Page) -> None:
    """A table on screen must get its canvas; one in a hidden tab (laid out when shown) does not hold the wait."""
    hidden = "<div style='display: none'><div data-testid='stDataFrame' style='height: 40px'></div></div>"
    page.set_content(f"<div data-testid='stDataFrame' id='t' style='height: 40px'></div>{hidden}{FOOTER.format(n=0)}")
    page.evaluate(
        """() => setTimeout(() => {
            const c = document.createElement('canvas'); c.width = 300; c.height = 40;
            document.getElementById('t').appendChild(c);
        }, 500)"""
    )
    started = time.monotonic()
    state = wait_rendered(page, timeout_ms=10_000)
    assert time.monotonic() - started >= 0.4
    assert (state["tables"], state["laid_out"]) == (1, 1)


def test_the_first_screen_wait_needs_only_the_charts_on_the_screen(page: Page) -> None:
    """screen=True: every announced chart is on the page and those in the viewport are drawn; a chart far below
    that is never drawn holds the whole-page wait, not the first screen's."""
    below = "<div class='callscope-plot' id='b' style='position: absolute; top: 5000px; height: 300px'></div>"
    page.set_content(f"<div class='callscope-plot' id='a'></div>{below}{FOOTER.format(n=2)}")
    page.add_script_tag(path=str(PLOTLY))
    page.evaluate("() => setTimeout(() => Plotly.newPlot('a', [{x: [1, 2], y: [3, 4]}]), 400)")
    started = time.monotonic()
    state = wait_rendered(page, timeout_ms=10_000, screen=True)
    assert time.monotonic() - started >= 0.3
    assert (state["expected"], state["mounted"], state["plots"], state["drawn"]) == (2, 2, 1, 1)
    with pytest.raises(RenderTimeout, match="not rendered"):
        wait_rendered(page, timeout_ms=1_000)
    # a chart the app announced but that is not on the page at all holds the first screen too
    page.set_content(f"<div class='callscope-plot' id='a'></div>{FOOTER.format(n=2)}")
    page.add_script_tag(path=str(PLOTLY))
    page.evaluate("() => Plotly.newPlot('a', [{x: [1, 2], y: [3, 4]}])")
    with pytest.raises(RenderTimeout, match="not rendered"):
        wait_rendered(page, timeout_ms=1_000, screen=True)


def test_charts_on_the_screen_are_drawn_first_and_the_rest_without_scrolling(page: Page) -> None:
    """dashboard/plotly_loader.js's callscopeDrawSoon: a chart asked for first but below the screen is drawn after
    the one on the screen, and still drawn without scrolling (when the page is idle)."""
    page.set_content(
        "<div id='below' style='position: absolute; top: 4000px; width: 400px; height: 300px'></div>"
        "<div id='top' style='width: 400px; height: 300px'></div>"
    )
    page.add_script_tag(path=str(PLOTLY))
    page.add_script_tag(path=str(ROOT / "dashboard" / "plotly_loader.js"))
    order = page.evaluate(
        """() => new Promise((resolve) => {
            const order = [];
            const draw = (id) => () => Plotly.newPlot(id, [{x: [1, 2], y: [1, 2]}]).then(() => {
                order.push(id);
                if (order.length === 2) resolve(order);
            });
            window.callscopeDrawSoon(document.getElementById('below'), draw('below'));
            window.callscopeDrawSoon(document.getElementById('top'), draw('top'));
        })"""
    )
    assert order == ["top", "below"]
    assert page.evaluate("() => window.scrollY") == 0
    assert page.locator("#below .main-svg g.trace").count() == 1
