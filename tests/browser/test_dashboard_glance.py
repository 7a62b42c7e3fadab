"""What a person checks at a glance, in a real Chromium over `callscope up --demo` (issue 17).

Every page: no "None" anywhere, every chart has data or says why it has none, no request leaves the machine (the
dashboard needs no network beyond the API). The model list holds one name per model (no requested alias beside
the dated snapshot that answered it), the busiest model is on the per-model latency chart, and each of the six
incidents the demo script plants (sample_data/script.py) is visible without touching a filter, on the page of its
kind. Assertions read the charts' data (the plotly figures in the page), never pixels.

The range is the default one (the last 24 hours): the demo's incidents all lie in its last day
(sample_data.script.demo_script), after three ordinary days.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.stack import EXCEPTION_BOX, UpProcess, launch
from sample_data import dataset
from sample_data.script import Script, Window
from tests.browser import require_chromium

require_chromium()

from playwright.sync_api import Page, sync_playwright  # noqa: E402

pytestmark = pytest.mark.slow

RANGE = ""  # the default view: the last 24 hours
DEMO_CALLS = dataset.CALLS

# Until the run is over and every chart is drawn: as many charts as the footer says the run drew, each with its
# traces in the DOM (or, when it has no data, its message), and no skeleton or "Running" indicator is left.
RENDERED = """() => {
  if (!document.querySelector('.st-key-rendered')) return false;
  if (document.querySelector('[data-testid="stStatusWidget"]')) return false;
  if (document.querySelectorAll('[data-testid="stSkeleton"]').length) return false;
  const expected = document.querySelector('.callscope-expect[data-charts]');  // how many charts the run drew
  const plots = document.querySelectorAll('.callscope-plot');
  if (!expected || plots.length < Number(expected.dataset.charts)) return false;
  for (const p of plots) {
    if (!p.data || !p.layout || !p.querySelector('.main-svg')) return false;
    const drawable = p.data.some(t => (t.y || t.x || []).some(v => v !== null));
    if (drawable && !p.querySelector('.scatterlayer .trace, .barlayer .trace')) return false;
  }
  for (const t of document.querySelectorAll('[data-testid="stDataFrame"]')) {
    if (!t.querySelector('canvas')) return false;
  }
  return true;
}"""
# Every chart of the page as data: title, subplot titles and messages (annotations), traces.
FIGURES = """() => [...document.querySelectorAll('.callscope-plot')].map(p => ({
  title: (p.layout.title && p.layout.title.text) || '',
  notes: (p.layout.annotations || []).map(a => a.text || ''),
  traces: p.data.map(t => ({name: t.name || '', type: t.type, x: t.x || [], y: t.y || [],
                            group: (t.customdata || [])[0] ?? null})),
}))"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    up = UpProcess(Path(tmp_path_factory.mktemp("glance")), ["--demo"]).start(timeout=180)
    deadline = time.monotonic() + 180
    while calls(up, last="30d") < DEMO_CALLS:
        assert time.monotonic() < deadline, up.log()
        time.sleep(0.5)
    yield up
    assert up.stop() == 0, up.log()


@pytest.fixture(scope="module")
def browser_page(stack: UpProcess) -> Iterator[tuple[Page, list[str]]]:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        tab = browser.new_page(viewport={"width": 1440, "height": 1400})
        requested: list[str] = []
        tab.on("request", lambda r: requested.append(r.url))
        yield tab, requested
        browser.close()


@pytest.fixture(scope="module")
def script(stack: UpProcess) -> Script:
    """The demo's incidents where `up --demo` put them: the shipped script moved by the load's shift (the
    earliest call of the store against the earliest of the shipped file; the live trickle only adds later calls)."""
    shipped = dataset.load(now=dataset.END)
    first = api(stack, "/calls", last="30d", order_by="start_time", desc="false", limit=1)["data"][0]
    stored_first = datetime.fromisoformat(first["start_time"].replace("Z", "+00:00"))
    shipped_first = min(shipped.table.column("start_time").to_pylist())
    return shipped.script.shifted(stored_first - shipped_first)


def api(up: UpProcess, path: str, **params: Any) -> dict[str, Any]:
    response = httpx.get(up.api_url + path, params=params, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def calls(up: UpProcess, **params: Any) -> int:
    return api(up, "/stats", metrics="calls", **params)["data"][0]["calls"]


def open_page(page: Page, url: str) -> list[dict[str, Any]]:
    """The page's charts as data, read in the same moment the page is seen complete (a chart redrawn later, e.g.
    below the screen, cannot be caught half-way)."""
    page.goto(url)
    figures = figures_when(page)
    assert page.locator(EXCEPTION_BOX).count() == 0, url
    return figures


def figures_when(page: Page, condition: str = "true") -> list[dict[str, Any]]:
    """The page's charts as data once it is complete and `condition` (over `figures`) holds."""
    wait = (
        f"() => {{ if (!({RENDERED})()) return false; const figures = ({FIGURES})(); "
        f"return ({condition}) && figures; }}"
    )
    return page.wait_for_function(wait, timeout=60_000, polling=100).json_value()


def chart(figures: list[dict[str, Any]], title: str) -> dict[str, Any]:
    found = [f for f in figures if f["title"].startswith(title)]
    assert len(found) == 1, (title, [f["title"] for f in figures])
    return found[0]


def series(fig: dict[str, Any], group: Any, name: str | None = None) -> list[tuple[datetime, float]]:
    """(bucket start, value) of one panel (`group`) and line (`name`) of a chart, nulls left out."""
    traces = [t for t in fig["traces"] if t["group"] == group and (name is None or t["name"] == name)]
    assert len(traces) == 1, (group, name, [(t["group"], t["name"]) for t in fig["traces"]])
    t = traces[0]
    return [(_at(x), y) for x, y in zip(t["x"], t["y"], strict=True) if y is not None]


def _at(x: str) -> datetime:
    return datetime.fromisoformat(x.replace(" ", "T")).replace(tzinfo=UTC)  # drawn as UTC wall time


def peak_in(points: list[tuple[datetime, float]], window: Window, bucket: timedelta = timedelta(hours=1)) -> None:
    """The highest point of the line is a bucket overlapping the incident's window."""
    at, top = max(points, key=lambda p: p[1])
    assert window.start - bucket < at < window.end, (at, top, window)
    others = [v for t, v in points if not window.start - bucket < t < window.end]
    assert top > max(others), (top, max(others))


def mean(points: list[tuple[datetime, float]], lo: datetime, hi: datetime) -> float:
    values = [v for t, v in points if lo <= t < hi]
    assert values, (lo, hi)
    return sum(values) / len(values)


PAGES = ("", "latency", "cost", "errors", "calls", "drift", "alerts")


@pytest.mark.parametrize("path", PAGES)
def test_every_page_reads_well(stack: UpProcess, browser_page: tuple[Page, list[str]], path: str) -> None:
    page, requested = browser_page
    requested.clear()
    figures = open_page(page, f"{stack.dashboard_url}/{path}?{RANGE}")
    text = page.locator("[data-testid='stMain']").inner_text()
    assert " None" not in text and "None " not in text, path
    assert "spans over" not in text or "1 spans" not in text
    for fig in figures:
        has_data = any(v is not None for t in fig["traces"] for v in (t["y"] or t["x"]))
        assert has_data or any(n.startswith("No ") for n in fig["notes"]), (path, fig["title"])
    for title in [f["title"] for f in figures]:
        assert title, path
    # no two ticks of a value axis read the same (a panel of cheap calls once read "$0.0002" twice)
    repeated = page.evaluate(
        """() => [...document.querySelectorAll('.callscope-plot')].flatMap(p => {
            const byAxis = {};
            for (const t of p.querySelectorAll('g[class^="y"][class$="tick"] > text')) {
              const axis = t.parentNode.getAttribute('class');
              (byAxis[axis] = byAxis[axis] || []).push(t.textContent);
            }
            return Object.entries(byAxis).filter(([, texts]) => new Set(texts).size < texts.length)
              .map(([axis, texts]) => [(p.layout.title && p.layout.title.text) || '', axis, texts]);
          })"""
    )
    assert repeated == [], (path, repeated)
    # KPI titles fit their tile (no "Time to first t..."): the label's text is not wider than its box
    cut = page.evaluate(
        """() => [...document.querySelectorAll('[data-testid="stMetricLabel"] p')]
            .filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.innerText)"""
    )
    assert cut == [], (path, cut)
    foreign = [u for u in requested if not u.startswith((stack.dashboard_url, "data:", "blob:", "about:"))]
    assert foreign == [], foreign
    # the page knows where the server is: no /cost/_stcore/health (a 404) before /_stcore/health
    guessed = [u for u in requested if "/_stcore/" in u and not u.startswith(f"{stack.dashboard_url}/_stcore/")]
    assert guessed == [], guessed


def test_the_call_page_names_the_model_as_the_list_does(stack: UpProcess, browser_page: tuple[Page, list[str]]) -> None:
    page, requested = browser_page
    failed = api(stack, "/calls", last="30d", status="error", limit=1)["data"][0]
    requested.clear()
    open_page(page, f"{stack.dashboard_url}/call?trace={failed['trace_id']}&span={failed['span_id']}")
    text = page.locator("[data-testid='stMain']").inner_text()
    assert " None" not in text and "None " not in text
    assert f"{failed['model']}" in page.locator("[data-testid='stMarkdownContainer'] strong").first.inner_text()
    assert [u for u in requested if not u.startswith((stack.dashboard_url, "data:", "blob:", "about:"))] == []


def test_one_name_per_model_in_the_model_list(stack: UpProcess, browser_page: tuple[Page, list[str]]) -> None:
    page, _ = browser_page
    open_page(page, f"{stack.dashboard_url}/?{RANGE}")
    page.locator("[data-testid='stSidebar'] [data-testid='stMultiSelect']", has_text="Model").click()
    options = page.locator("[role='option']")
    options.first.wait_for()
    shown: set[str] = set()
    for _ in range(40):  # the list is virtual: scroll it through, collecting what it shows
        shown |= set(options.all_inner_texts())
        more = page.evaluate(
            """() => { const l = document.querySelector('[role="listbox"]'); const s = l.scrollTop;
                       l.scrollTop = s + l.clientHeight / 2; return l.scrollTop > s; }"""
        )
        page.wait_for_timeout(50)
        if not more:
            shown |= set(options.all_inner_texts())
            break
    shown.discard("Select all")
    pairs = api(stack, "/stats", last="30d", metrics="calls", group_by=["request_model", "response_model"])["data"]
    for pair in pairs:
        asked, answered = pair["request_model"], pair["response_model"]
        if asked and answered and asked != answered:
            assert not (asked in shown and answered in shown), (asked, answered)
    # a failed call (no answer) is its requested model's, not a model of its own
    names = {r["model"] for r in api(stack, "/stats", last="30d", metrics="calls", group_by="model")["data"]}
    assert shown == names
    ok_models = {
        r["model"] for r in api(stack, "/stats", last="30d", status="ok", metrics="calls", group_by="model")["data"]
    }
    assert names == ok_models, names - ok_models
    page.keyboard.press("Escape")


def test_the_busiest_model_is_on_the_per_model_latency_chart(
    stack: UpProcess, browser_page: tuple[Page, list[str]]
) -> None:
    page, _ = browser_page
    for query in ("range=7d", RANGE):  # the last 7 days and the default 24 hours
        busiest = api(
            stack,
            "/stats",
            **({"last": "7d"} if query else {"last": "24h"}),
            metrics="calls",
            group_by="model",
            order_by="calls",
            limit=1,
        )["data"][0]["model"]
        figures = open_page(page, f"{stack.dashboard_url}/latency?{query}")
        names = {t["name"] for t in chart(figures, "p95 latency of the")["traces"]}
        assert busiest in names, (busiest, names)


def test_rate_limit_storm_and_server_errors_on_the_errors_page(
    stack: UpProcess, browser_page: tuple[Page, list[str]], script: Script
) -> None:
    page, _ = browser_page
    figures = open_page(page, f"{stack.dashboard_url}/errors?{RANGE}")
    per_provider = chart(figures, "Failed calls per provider")
    peak_in(series(per_provider, "openai", "429 rate limited"), script.rate_limit_storm, timedelta(minutes=30))
    # a burst of a few 5xx at a quiet provider: its panel's tallest bar (30-minute bars: the burst may straddle two)
    burst = series(per_provider, "gcp.gemini", "5xx server errors")
    inside = [v for t, v in burst if script.server_errors.start - timedelta(minutes=30) < t < script.server_errors.end]
    outside = [
        v for t, v in burst if not script.server_errors.start - timedelta(minutes=30) < t < script.server_errors.end
    ]
    assert max(inside) >= 2 and max(inside) >= max(outside, default=0), (inside, max(outside, default=0))


def test_latency_spike_on_the_latency_page(
    stack: UpProcess, browser_page: tuple[Page, list[str]], script: Script
) -> None:
    page, _ = browser_page
    figures = open_page(page, f"{stack.dashboard_url}/latency?{RANGE}")
    peak_in(
        series(chart(figures, "Median latency per provider"), "anthropic", "p50 time to first token"),
        script.latency_spike,
    )


def test_cost_and_prompt_length_changes_on_the_cost_page(
    stack: UpProcess, browser_page: tuple[Page, list[str]], script: Script
) -> None:
    page, _ = browser_page
    figures = open_page(page, f"{stack.dashboard_url}/cost?{RANGE}")
    day = timedelta(days=1)
    # the summarizer's prompt change: its cost per call jumps (and stays up)
    per_call = series(chart(figures, "Cost per call by service"), "summarizer")
    before = mean(per_call, script.prompt_change - day, script.prompt_change)
    after = mean(per_call, script.prompt_change + timedelta(hours=1), script.prompt_change + day)
    assert after > 1.5 * before, (before, after)
    # the support-bot release: its prompts grow, on the tokens-per-call chart
    tokens = chart(figures, "Tokens per call by service")
    inputs = series(tokens, "support-bot", "input")
    before = mean(inputs, script.release - day, script.release)
    after = mean(inputs, script.release + timedelta(hours=1), script.release + day)
    assert after > 1.25 * before, (before, after)
    outputs = series(tokens, "support-bot", "output")
    assert mean(outputs, script.release + timedelta(hours=1), script.release + day) < 1.2 * mean(
        outputs, script.release - day, script.release
    )  # the prompt grew, not the answer
    # the model genai-prices does not price yet: the page says so at once; its calls are one click away, in a tab
    # drawn only when chosen (and named in the URL, so the tab can be linked)
    assert "of calls have no known price" in page.locator("[data-testid='stAlert']").inner_text()
    assert not [f for f in figures if f["title"].startswith("Unpriced calls")]
    page.get_by_role("tab", name="Unpriced calls").click()
    figures = figures_when(page, "figures.some(f => f.title.startsWith('Unpriced calls'))")
    assert "section=Unpriced+calls" in page.url or "section=Unpriced%20calls" in page.url, page.url
    unpriced = chart(figures, "Unpriced calls over time by model")
    points = series(unpriced, "deepseek-v4-preview")
    assert points and min(t for t, _ in points) >= script.unpriced_from - timedelta(hours=1)
    assert (
        sum(v for _, v in points)
        == api(stack, "/stats", last="7d", metrics="unpriced_calls", model="deepseek-v4-preview")["data"][0][
            "unpriced_calls"
        ]
    )


def test_overview_says_what_changed_and_links_to_its_page(
    stack: UpProcess, browser_page: tuple[Page, list[str]]
) -> None:
    page, _ = browser_page
    open_page(page, f"{stack.dashboard_url}/")  # the default 24 hours: the 24 hours before are the comparison
    callouts = page.locator("[class*='st-key-callout_']")
    assert callouts.count() >= 3
    spend = page.locator(".st-key-callout_spend").inner_text()
    by_service = api(stack, "/stats", last="24h", metrics="cost_usd", group_by="service", compare="true")["data"]
    top = max((r for r in by_service if r["cost_usd_prev"] is not None), key=lambda r: abs(r["cost_usd_delta"]))
    by_model = api(stack, "/stats", last="24h", metrics="cost_usd", group_by="model", compare="true")["data"]
    top_model = max((r for r in by_model if r["cost_usd_prev"] is not None), key=lambda r: abs(r["cost_usd_delta"]))
    assert top["service"] in spend or top_model["model"] in spend, spend
    page.locator(".st-key-callout_latency_p95 a").click()
    page.wait_for_url("**/latency**")
    page.wait_for_function(RENDERED, timeout=60_000, polling=100)
    assert page.locator("h1").first.inner_text().strip() == "Latency"
    # with no earlier data (the last 7 days hold the whole demo), the page says so instead of empty deltas
    open_page(page, f"{stack.dashboard_url}/?range=7d")
    assert page.get_by_text("No calls in the previous period of the same length").count() == 1
    assert page.locator("[data-testid='stMetricDelta']", has_text="no earlier data").count() >= 5
