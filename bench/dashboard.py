"""How long each dashboard page takes to render in a real browser with 10 million calls in the store.

Method: a store of N calls (default 10,000,000) spread over the 30 days before now is built once in
bench/out/dashboard-<N>/ (reused by later runs). Each run starts `callscope up` over it (server + dashboard, as a
user runs it: the first visitor of the run meets a fresh dashboard process) and waits until the hourly rollups have
folded the store. Then Debian's Chromium (Playwright) opens every page with the default view (last 24 hours):

- cold: each page in a new browser context (an empty HTTP cache: Streamlit's scripts and plotly.js are fetched
  and compiled, as on a first visit); it is also that page's first visit since the start (every number is asked
  from the API);
- warm: a returning visitor: after one visit of every page in a context (its HTTP cache filled, and the margins
  each chart needed remembered in its local storage), each page again in a new tab of it (a new Streamlit
  session; the dashboard's 30 s result cache answers).

A visit is timed from navigation start until bench.stack.wait_rendered sees the page complete: the footer app.py
draws last, no script running, as many plotly plots as the run drew charts (the footer says how many) with every
visible trace drawn, and every table's grid laid out ("whole page", without scrolling: charts below the first
screen are drawn when the page is idle). The same visit also records when the first screen was complete: every
chart of the run on the page, those in the 1440 x 1000 viewport drawn, its tables laid out.
Targets: cold <= 2.5 s (median <= 2 s), warm <= 2 s.
Prints each run, then per page the median and worst over the runs, with the load average; not pass/fail.

    .venv/bin/python bench/dashboard.py [--calls 10000000] [--days 30] [--range 24h] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import PAGES as STACK_PAGES  # noqa: E402
from bench.stack import UpProcess, launch, wait_rendered  # noqa: E402
from core.store import connect  # noqa: E402

# (provider, model, USD per input token, USD per output token); one model is unpriced, as in real stores.
MODELS = [
    ("openai", "gpt-4o-mini", 0.15e-6, 0.6e-6),
    ("openai", "gpt-4.1", 2e-6, 8e-6),
    ("openai", "gpt-4.1-mini", 0.4e-6, 1.6e-6),
    ("openai", "o4-mini", 1.1e-6, 4.4e-6),
    ("anthropic", "claude-sonnet-4", 3e-6, 15e-6),
    ("anthropic", "claude-haiku-3.5", 0.8e-6, 4e-6),
    ("google", "gemini-2.5-flash", 0.3e-6, 2.5e-6),
    ("google", "gemini-2.5-pro", 1.25e-6, 10e-6),
    ("mistral", "mistral-large", 2e-6, 6e-6),
    ("acme", "acme-large", None, None),
]


def build_store(data_dir: Path, n_calls: int, days: int) -> None:
    """Generate the calls. Uses sample_data.bulk (the demo generator) when it is installed, else one INSERT."""
    end = datetime.now(UTC)
    db = connect(data_dir / "callscope.duckdb")
    try:
        try:
            from sample_data.bulk import write_calls  # type: ignore[import-not-found]
        except ImportError:
            write_calls = None
        if write_calls is not None:
            write_calls(db, n_calls=n_calls, days=days, end=end, seed=0)
        else:
            _insert_generated(db, n_calls, days, end)
        db.execute("CHECKPOINT")
    finally:
        db.close()


def _insert_generated(db, n_calls: int, days: int, end: datetime) -> None:
    values = ", ".join(
        f"({i}, '{p}', '{m}', {'NULL' if a is None else a}, {'NULL' if b is None else b})"
        for i, (p, m, a, b) in enumerate(MODELS)
    )
    db.execute("CREATE TEMP TABLE models(mid INT, provider VARCHAR, model VARCHAR, pin DOUBLE, pout DOUBLE)")
    db.execute(f"INSERT INTO models VALUES {values}")
    db.execute("SELECT setseed(0.42)")
    end_us = int(end.timestamp() * 1_000_000)
    span_us = days * 86_400 * 1_000_000
    sql = f"""
    INSERT INTO calls
    WITH base AS (
        SELECT i,
               {end_us} - CAST(random() * {span_us} AS BIGINT) AS t_us,
               CAST(floor(random() * {len(MODELS)}) AS INT) AS mi,
               exp(6.5 + 0.6 * sqrt(-2 * ln(greatest(random(), 1e-12))) * cos(2 * pi() * random())) AS dur,
               random() < 0.5 AS streaming,
               random() AS r_err, random() AS r_429, random() AS r_ttft,
               CAST(10 + floor(random() * 4000) AS BIGINT) AS inp,
               CAST(1 + floor(random() * 800) AS BIGINT) AS outp,
               CAST(floor(pow(random(), 3) * 5000) AS INT) AS user_n,
               CAST(floor(random() * 8) AS INT) AS svc,
               random() < 0.8 AS prod, random() < 0.3 AS beta
        FROM range({n_calls}) r(i)
    )
    SELECT unhex(md5(i::VARCHAR)), unhex(substr(md5('s' || i::VARCHAR), 1, 16)), NULL, 'default',
           'service-' || svc, CASE WHEN prod THEN 'prod' ELSE 'staging' END,
           make_timestamptz(t_us), make_timestamptz(t_us + CAST(dur * 1000 AS BIGINT)), round(dur, 3),
           CASE WHEN streaming THEN round(dur * (0.05 + 0.35 * r_ttft), 3) END,
           m.provider, 'chat', m.model, m.model,
           inp, CASE WHEN r_err < 0.03 THEN 0 ELSE outp END, 0, 0, 0,
           CASE WHEN m.pin IS NULL THEN NULL
                ELSE inp * m.pin + (CASE WHEN r_err < 0.03 THEN 0 ELSE outp END) * m.pout END,
           CASE WHEN m.pin IS NULL THEN 'unpriced' ELSE 'priced' END,
           CASE WHEN m.pin IS NULL THEN NULL ELSE 'bench' END, NULL, streaming,
           CASE WHEN r_err < 0.03 THEN 'error' ELSE 'ok' END,
           CASE WHEN r_err < 0.03 THEN (CASE WHEN r_429 < 0.5 THEN 'RateLimitError' ELSE 'InternalServerError' END) END,
           CASE WHEN r_err < 0.03 THEN (CASE WHEN r_429 < 0.5 THEN 429 ELSE 500 END) END,
           CASE WHEN r_err < 0.03 THEN NULL ELSE 'stop' END,
           'user-' || user_n, 'session-' || (i // 5),
           CASE WHEN beta THEN ['beta'] ELSE [] END, MAP {{'team': 'search'}}, 'otel_genai',
           'chat ' || m.model, NULL, NULL, now(),
           CASE WHEN r_err < 0.03 THEN 'Error code: ' || (CASE WHEN r_429 < 0.5 THEN 429 ELSE 500 END) END
    FROM base JOIN models m ON m.mid = base.mi
    """
    db.execute(sql)


def wait_for_rollups(api: str, timeout_s: float = 1800) -> float:
    """Seconds until the rollups have folded (almost) everything; the server folds on start."""
    t0 = time.monotonic()
    target = datetime.now(UTC) - timedelta(hours=2)
    while time.monotonic() - t0 < timeout_s:
        folded = httpx.get(api + "/meta", timeout=600).json().get("rollups_folded_through")
        if folded is None and "rollups_folded_through" not in httpx.get(api + "/meta", timeout=600).json():
            return 0.0  # this build has no rollups
        if folded and datetime.fromisoformat(folded) >= target:
            return time.monotonic() - t0
        time.sleep(2)
    raise TimeoutError("the rollups did not catch up")


PAGES = {**STACK_PAGES, "alerts": "alerts", "drift": "drift", "budgets": "budgets", "prices": "prices"}


def visit(context, url: str) -> tuple[float, float, dict]:
    """Seconds from navigation start to the first screen complete and to the whole page rendered
    (bench.stack.wait_rendered with and without `screen`) in a new tab of `context`, without scrolling."""
    page = context.new_page()  # a new tab is a new Streamlit session
    try:
        t0 = time.monotonic()
        page.goto(url)
        wait_rendered(page, timeout_ms=120_000, screen=True)
        first_screen = time.monotonic() - t0
        state = wait_rendered(page, timeout_ms=120_000)
        return first_screen, time.monotonic() - t0, state
    finally:
        page.close()


def time_pages(up: UpProcess, range_: str, browser) -> dict[str, dict[str, float]]:
    """One run over a freshly started `up`: each page cold (a new browser context: an empty HTTP cache, so
    Streamlit's scripts and plotly.js are fetched and compiled), then each page warm (a new tab of one context that
    has loaded the app once)."""
    query = "" if range_ == "24h" else f"?range={range_}"
    results: dict[str, dict[str, float]] = {name: {} for name in PAGES}
    for name, path in PAGES.items():
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        try:
            results[name]["cold_screen"], results[name]["cold"], state = visit(
                context, f"{up.dashboard_url}/{path}{query}"
            )
        finally:
            context.close()
        results[name]["charts"] = state["plots"]
        results[name]["tables"] = state["tables"]
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    try:
        # A returning visitor: every page visited once before in this browser (its HTTP cache holds every page's
        # scripts; its local storage the margins each chart needed, dashboard/plotly_loader.js).
        for path in PAGES.values():
            visit(context, f"{up.dashboard_url}/{path}{query}")
        for name, path in PAGES.items():
            results[name]["warm_screen"], results[name]["warm"], _ = visit(context, f"{up.dashboard_url}/{path}{query}")
    finally:
        context.close()
    return results


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--range", default="24h", help="time range preset the pages show (default 24h)")
    parser.add_argument("--runs", type=int, default=3, help="runs, each over a freshly started `up` (default 3)")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    data_dir = ROOT / "bench" / "out" / f"dashboard-{args.calls}"
    if not (data_dir / "callscope.duckdb").exists():
        t0 = time.monotonic()
        data_dir.mkdir(parents=True, exist_ok=True)
        build_store(data_dir, args.calls, args.days)
        print(f"built a store of {args.calls:,} calls in {time.monotonic() - t0:.0f} s at {data_dir}", flush=True)
    runs: list[dict[str, dict[str, float]]] = []
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            for run in range(args.runs):
                up = UpProcess(data_dir).start(timeout=600)
                try:
                    if run == 0:
                        params = {"metrics": "calls", "last": "156w"}
                        calls = httpx.get(up.api_url + "/stats", params=params, timeout=600)
                        print(f"store: {calls.json()['data'][0]['calls']:,} calls", flush=True)
                    print(f"run {run + 1}: rollups caught up after {wait_for_rollups(up.api_url):.0f} s", flush=True)
                    before = load_average()
                    runs.append(time_pages(up, args.range, browser))
                    print(f"run {run + 1}: load average {before} before, {load_average()} after", flush=True)
                    for name, r in runs[-1].items():
                        print(
                            f"  {name:<9} cold {r['cold']:5.2f} s (first screen {r['cold_screen']:5.2f} s)  "
                            f"warm {r['warm']:5.2f} s (first screen {r['warm_screen']:5.2f} s)",
                            flush=True,
                        )
                finally:
                    up.stop(timeout=300)
        finally:
            browser.close()
    print(f"\npage render time in Chromium, range {args.range}, {args.calls:,} calls, {len(runs)} runs")
    print("(cold: empty browser cache; warm: a new tab, cache warm; targets cold <= 2.5 s, median <= 2 s; warm <= 2 s)")
    print("(whole page: every chart and table drawn, without scrolling; first screen: the viewport complete)")
    print(f"{'':<17} {'cold median / worst':>21} {'warm median / worst':>21}")
    for name in PAGES:
        charts, tables = runs[-1][name]["charts"], runs[-1][name]["tables"]
        for what, suffix in (("whole page", ""), ("first screen", "_screen")):
            cold = [r[name]["cold" + suffix] for r in runs]
            warm = [r[name]["warm" + suffix] for r in runs]
            label = f"{name} ({charts} charts, {tables} tables)" if not suffix else ""
            print(
                f"{label:<34} {what:<12} {statistics.median(cold):5.2f} / {max(cold):5.2f} s"
                f"   {statistics.median(warm):5.2f} / {max(warm):5.2f} s"
            )
    print(f"load average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
