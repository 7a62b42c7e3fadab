"""The dashboard in a real browser (Debian's Chromium via Playwright) on a real `callscope up`.

Every page must render without a Streamlit exception box (the Alerts page also with a rule firing, its timeline
and a preview), and one drill-down must work end to end by clicking:
a bar of "Calls over time" -> the calls of that bucket -> a call -> its trace. Screenshots go to
tests/artifacts/browser/ (ignored by git) for a person to look at.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from bench.stack import CHART, EXCEPTION_BOX, PAGES, UpProcess, launch, wait_rendered
from tests.browser import require_chromium
from tests.dashboard_seed import AGENT_TRACE, CHILD_SPANS, seed
from tests.helpers import ROOT

# A real `callscope up --demo` on an empty store: the pages show the shipped demo traffic once it has arrived.
# (Without --demo the store is seeded with tests/dashboard_seed.py instead.)
UP_ARGS: list[str] = ["--demo"]
DEMO_CALLS = 40_000
ARTIFACTS = ROOT / "tests" / "artifacts" / "browser"
TITLES = {"overview": "Overview", "cost": "Cost", "latency": "Latency", "errors": "Errors", "calls": "Calls"}

require_chromium()

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    data = Path(tmp_path_factory.mktemp("browser"))
    now = datetime.now(UTC)
    if "--demo" not in UP_ARGS:
        seed(data, now - timedelta(days=2), now, n=3000, trace_at=now - timedelta(hours=1))
    up = UpProcess(data, UP_ARGS).start(timeout=180)
    if "--demo" in UP_ARGS:
        wait_for_demo(up)
    yield up
    assert up.stop() == 0, up.log()


def wait_for_demo(up: UpProcess, timeout: float = 120.0) -> None:
    """Until the demo dataset has gone through the collector (it loads in ~7 s on 2 cores)."""
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(up.api_url + "/stats", params={"last": "30d", "metrics": "calls"}, timeout=30).json()
        if body["data"][0]["calls"] >= DEMO_CALLS:
            return
        assert time.monotonic() < deadline, f"the demo loaded only {body['data'][0]['calls']} calls:\n{up.log()}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def page(stack: UpProcess) -> Iterator[Page]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        tab = browser.new_page(viewport={"width": 1440, "height": 1600})
        yield tab
        browser.close()


def shot(page: Page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def test_every_page_renders(stack: UpProcess, page: Page) -> None:
    for name, path in PAGES.items():
        page.goto(f"{stack.dashboard_url}/{path}")
        wait_rendered(page)
        assert page.locator(EXCEPTION_BOX).count() == 0, name
        assert page.locator("h1").first.inner_text().strip() == TITLES[name]
        assert page.locator("[data-testid='stAlertContentError']").count() == 0, name
        if name != "calls":
            assert page.locator(f"{CHART} .main-svg").count() >= 2, name
        assert shot(page, name).stat().st_size > 10_000


def test_drill_down_chart_to_calls_to_call_to_trace(stack: UpProcess, page: Page) -> None:
    page.goto(stack.dashboard_url)
    wait_rendered(page)
    calls_chart = page.locator(CHART).nth(1)
    bars = calls_chart.locator(".barlayer .point path")
    assert bars.count() > 10
    box = bars.nth(bars.count() - 2).bounding_box()  # a recent bucket
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] - 2)

    page.wait_for_url("**/calls?**")
    page.locator("h1", has_text="Calls").wait_for()
    wait_rendered(page)
    query = parse_qs(urlparse(page.url).query)
    start, end = (datetime.fromisoformat(query[k][0].replace("Z", "+00:00")) for k in ("from", "to"))
    assert timedelta(0) < end - start <= timedelta(hours=1)  # one bucket of the 24 h chart
    caption = page.locator("[data-testid='stCaptionContainer']", has_text="Select a row").inner_text()
    assert " of " in caption and "Calls 1 to" in caption
    shot(page, "drill_1_calls")

    grid = page.locator("[data-testid='stDataFrame']").first.bounding_box()
    assert grid is not None
    page.mouse.click(grid["x"] + 18, grid["y"] + 35 + 17)  # the first row's selection cell
    page.wait_for_url("**/call?**")
    page.locator("h1", has_text="Call and trace").wait_for()
    wait_rendered(page)
    assert page.locator(EXCEPTION_BOX).count() == 0
    call_query = parse_qs(urlparse(page.url).query)
    assert len(call_query["trace"][0]) == 32 and len(call_query["span"][0]) == 16
    assert page.get_by_text("Trace timeline").count() == 1
    assert page.locator(f"{CHART} .barlayer .point").count() >= 1
    shot(page, "drill_2_call")

    if "--demo" in UP_ARGS:
        # A multi-span trace of the demo: a research-agent run (a root span, model calls, tool calls), from the
        # loaded dataset: a trace of the live trickle may still be arriving span by span.
        settled = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
        params = {"last": "30d", "to": settled, "service": "research-agent", "limit": 1}
        call = httpx.get(stack.api_url + "/calls", params=params, timeout=30).json()["data"][0]
        trace = httpx.get(stack.api_url + f"/traces/{call['trace_id']}", timeout=30).json()
        assert trace["span_count"] >= 3
        page.goto(f"{stack.dashboard_url}/call?trace={call['trace_id']}&span={call['span_id']}")
        wait_rendered(page)
        assert page.locator(f"{CHART} .barlayer .point").count() == trace["span_count"]
        assert page.get_by_text(f"{trace['span_count']} spans over").count() == 1
        shot(page, "drill_3_trace")
        return
    # A multi-span trace: the agent run and its two model calls, drawn as a waterfall.
    page.goto(f"{stack.dashboard_url}/call?trace={AGENT_TRACE.hex()}&span={CHILD_SPANS[0].hex()}")
    wait_rendered(page)
    assert page.locator(f"{CHART} .barlayer .point").count() == 3
    assert page.get_by_text("3 spans over").count() == 1
    shot(page, "drill_3_trace")


def chart_surface(page: Page) -> dict[str, float]:
    """Where the page's first chart takes the mouse (its drag surface), scrolled into view."""
    surface = page.locator(f"{CHART} .nsewdrag").first
    surface.scroll_into_view_if_needed()
    box = surface.bounding_box()
    assert box is not None
    return box


def drag_across(page: Page) -> None:
    """Drag across the middle of the page's first chart, from 55% to 80% of its width."""
    box = chart_surface(page)
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.55, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, y, steps=8)
    page.mouse.move(box["x"] + box["width"] * 0.8, y, steps=8)
    page.mouse.up()


def boxes_drawn(page: Page) -> int:
    """The selection boxes drawn on the page's first chart (plotly keeps them in its layout)."""
    return page.evaluate("() => (document.querySelector('.callscope-plot').layout.selections || []).length")


def choose(page: Page, widget: str, label: str, option: str) -> None:
    """Choose `option` in the select box labelled `label` (a combobox: it filters its options as one types)."""
    page.locator(widget, has_text=label).locator("input").click()
    page.keyboard.type(option)
    page.locator("[role='option']", has_text=option).wait_for()
    page.keyboard.press("Enter")


def test_box_selection_on_latency_shows_what_changed(stack: UpProcess, page: Page) -> None:
    """Dragging across the percentile chart picks a window; the page compares it with the window before it."""
    page.goto(f"{stack.dashboard_url}/latency")
    wait_rendered(page)
    heading = page.get_by_text("What changed in the selected window")
    # A drag made while the page re-runs (its time axis follows the clock in whole minutes, so a run can redraw
    # the chart under the mouse) is lost with the redraw, as it would be for a person: drag again, at most 3 times.
    for _ in range(3):
        drag_across(page)
        try:
            heading.wait_for(timeout=15_000)
            break
        except PlaywrightTimeout:
            wait_rendered(page)
    heading.wait_for(timeout=15_000)
    wait_rendered(page)
    assert page.locator(EXCEPTION_BOX).count() == 0
    caption = page.locator(
        "[data-testid='stCaptionContainer']", has_text="against the same length of time"
    ).inner_text()
    start, end = caption.split(" against")[0].split(" to ")
    assert datetime.fromisoformat(start.strip()) < datetime.fromisoformat(end.strip())
    shot(page, "latency_what_changed")

    # The picked window outlives a rerun that redraws the chart on a new time axis (the axis follows the clock in
    # whole minutes): once the minute has turned, attribute the change in another metric. A redraw used to drop
    # the box, and plotly's deselect made the app forget the window.
    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    time.sleep(max(0.0, (minute + timedelta(minutes=1, seconds=1) - datetime.now(UTC)).total_seconds()))
    choose(page, "[data-testid='stSelectbox']", "Attribute the change in", "error_rate")
    page.locator("[data-testid='stMarkdownContainer'] strong", has_text="error_rate").wait_for(timeout=15_000)
    wait_rendered(page)
    assert page.locator(EXCEPTION_BOX).count() == 0
    assert heading.count() == 1
    after = page.locator("[data-testid='stCaptionContainer']", has_text="against the same length of time")
    assert after.inner_text() == caption
    assert boxes_drawn(page) == 1

    # A double-click clears the window and the box (its two clicks pick no bucket).
    plot = chart_surface(page)  # (choosing the metric scrolled the page down to its picker)
    page.mouse.dblclick(plot["x"] + plot["width"] * 0.3, plot["y"] + plot["height"] / 2)
    expect(heading).to_have_count(0, timeout=15_000)
    wait_rendered(page)
    page.wait_for_timeout(1_000)  # (a click counted late would come back by now)
    wait_rendered(page)
    assert heading.count() == 0
    assert boxes_drawn(page) == 0
    drag_across(page)
    heading.wait_for(timeout=15_000)

    # Other filters are another view: the window picked in the last one is dropped, box and all.
    choose(page, "[data-testid='stSidebar'] [data-testid='stSelectbox']", "Time range", "Last 7 days")
    page.wait_for_url("**/latency?range=7d")
    expect(heading).to_have_count(0, timeout=15_000)  # (the URL changes as the new run starts)
    wait_rendered(page)
    assert page.locator(EXCEPTION_BOX).count() == 0
    assert boxes_drawn(page) == 0


def test_alerts_page_with_a_firing_rule_its_timeline_and_a_preview(stack: UpProcess, page: Page) -> None:
    """The Alerts page without rules, then with a rule firing over the stored calls: the counts are the API's, the
    History tab's timeline is drawn at its full width once shown (it was drawn while hidden), and the editor's
    preview draws the metric with its threshold, without an exception box anywhere."""
    page.goto(f"{stack.dashboard_url}/alerts")
    wait_rendered(page)
    assert page.locator(EXCEPTION_BOX).count() == 0
    assert page.locator("h1").first.inner_text().strip() == "Alerts"
    assert page.get_by_text("No alert rules yet").count() == 1

    rule = {"name": "AnyErrors", "metric": "error_rate", "window": "31d", "op": ">", "warning": 0.0001}
    rule |= {"group_by": ["model"], "interval": "10s"}
    created = httpx.post(stack.api_url + "/alerts/rules", json=rule, timeout=30)
    assert created.status_code == 201, created.text
    try:
        deadline = time.monotonic() + 60
        while not (firing := [i for i in alert_instances(stack) if i["firing"]]):
            assert time.monotonic() < deadline, "the rule did not fire"
            time.sleep(0.5)
        time.sleep(1)  # one more evaluation: every model's instance is there
        firing = [i for i in alert_instances(stack) if i["firing"]]
        page.get_by_role("button", name="Refresh now").click()  # alert answers are cached for a few seconds
        page.get_by_text("No alert rules yet").wait_for(state="detached")
        wait_rendered(page)
        assert page.locator(EXCEPTION_BOX).count() == 0
        tile = page.locator("[data-testid='stMetric']", has_text="Warning firing")
        assert tile.locator("[data-testid='stMetricValue']").inner_text().strip() == f"{len(firing):,}"
        shot(page, "alerts_firing")

        # Selecting an alert opens its breaching calls: the failed calls of its model in the evaluated window.
        grid = page.locator("[data-testid='stDataFrame']").first.bounding_box()
        assert grid is not None
        page.mouse.click(grid["x"] + 18, grid["y"] + 35 + 17)  # the first row's selection cell
        page.wait_for_url("**/calls?**")
        page.locator("h1", has_text="Calls").wait_for()
        wait_rendered(page)
        query = parse_qs(urlparse(page.url).query)
        assert query["status"] == ["error"] and len(query["model"]) == 1
        start, end = (datetime.fromisoformat(query[k][0].replace("Z", "+00:00")) for k in ("from", "to"))
        assert end - start == timedelta(days=31)
        params = {k: v[0] for k, v in query.items() if k in ("from", "to", "model", "status")}
        total = httpx.get(stack.api_url + "/calls", params={**params, "limit": 1}, timeout=30).json()["meta"]["total"]
        caption = page.locator("[data-testid='stCaptionContainer']", has_text="Select a row").inner_text()
        assert total > 0 and f" of {total:,} in the" in caption
        shot(page, "alerts_breaching_calls")

        page.goto(f"{stack.dashboard_url}/alerts")
        wait_rendered(page)
        page.get_by_role("tab", name="History").click()
        timeline = page.locator(f"{CHART}").filter(has_text="Alert states").first
        timeline.wait_for()
        # Redrawn at the tab's width, not plotly's default 700 px: the chart's own SVG, once plotly has redrawn it.
        page.wait_for_function(
            "(el) => { const svg = el.querySelector('.main-svg');"
            " return !!svg && svg.getBoundingClientRect().width > 800; }",
            arg=timeline.element_handle(),
            timeout=15_000,
        )
        assert timeline.locator(".barlayer .point").count() == len(firing)
        shot(page, "alerts_history")

        page.get_by_role("tab", name="Rule editor").click()
        page.get_by_role("textbox", name="Name", exact=True).fill("PreviewErrors")
        page.get_by_role("textbox", name="Window").fill("1d")
        page.get_by_role("textbox", name="Warning threshold").fill("0.02")
        page.get_by_role("button", name="Preview").click()
        preview = page.locator(CHART).filter(has_text="warning 2.00%")
        preview.wait_for(timeout=60_000)
        wait_rendered(page)
        assert page.locator(EXCEPTION_BOX).count() == 0
        assert preview.locator(".scatterlayer .trace").count() >= 1
        assert page.get_by_text("this rule would have fired").count() == 1
        shot(page, "alerts_preview")
    finally:
        httpx.delete(stack.api_url + "/alerts/rules/AnyErrors", timeout=30)


def alert_instances(stack: UpProcess) -> list[dict]:
    return httpx.get(stack.api_url + "/alerts/instances", timeout=30).json()["instances"]
