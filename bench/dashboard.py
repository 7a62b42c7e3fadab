"""How long each dashboard page takes to render in a real browser with 10 million calls in the store.

Method: a store of N calls (default 10,000,000) spread over the 30 days before now is built once in
bench/out/dashboard-<N>/ (reused by later runs). `callscope up` serves it (server + dashboard, as a user runs it);
the benchmark waits until the hourly rollups have folded the store. Then Debian's Chromium (Playwright) opens each
page with the default view (last 24 hours) in a new tab (a new Streamlit session) of one browser profile whose
HTTP cache holds the app's scripts (one warm-up load first, as for a person who opened it before), and times
navigation start -> the page's last element (the footer app.py draws after the page) is on screen with every chart
drawn and no script running.

Each page is timed twice: "cold" is the first visit after the server started (the dashboard's result cache is
empty; every number is asked from the API), "warm" is a later visit within the cache TTL (30 s). Target: cold
<= 2 s per page. Prints one line per page; not pass/fail.

    .venv/bin/python bench/dashboard.py [--calls 10000000] [--days 30] [--range 24h]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import PAGES, UpProcess, launch, wait_rendered  # noqa: E402
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


def time_pages(up: UpProcess, range_: str) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    results: dict[str, list[float]] = {name: [] for name in PAGES}
    query = "" if range_ == "24h" else f"?range={range_}"
    with sync_playwright() as playwright:
        browser = launch(playwright)
        # One browser profile, as a person's: the app's scripts come from the HTTP cache after the first load.
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        warmup = context.new_page()
        warmup.goto(f"{up.dashboard_url}/call")  # asks the API nothing
        warmup.locator("h1", has_text="Call and trace").wait_for(timeout=120_000)
        warmup.close()
        for visit in ("cold", "warm"):
            for name, path in PAGES.items():
                page = context.new_page()  # a new tab is a new Streamlit session
                t0 = time.monotonic()
                page.goto(f"{up.dashboard_url}/{path}{query}")
                wait_rendered(page, timeout_ms=120_000)
                results[name].append(time.monotonic() - t0)
                if visit == "cold":
                    page.screenshot(path=str(up.data_dir.parent / f"bench-{name}.png"))
                page.close()
        browser.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--range", default="24h", help="time range preset the pages show (default 24h)")
    args = parser.parse_args()

    data_dir = ROOT / "bench" / "out" / f"dashboard-{args.calls}"
    if not (data_dir / "callscope.duckdb").exists():
        t0 = time.monotonic()
        data_dir.mkdir(parents=True, exist_ok=True)
        build_store(data_dir, args.calls, args.days)
        print(f"built a store of {args.calls:,} calls in {time.monotonic() - t0:.0f} s at {data_dir}", flush=True)
    up = UpProcess(data_dir).start(timeout=600)
    try:
        calls = httpx.get(up.api_url + "/stats", params={"metrics": "calls", "last": "156w"}, timeout=600)
        print(f"store: {calls.json()['data'][0]['calls']:,} calls", flush=True)
        print(f"rollups caught up after {wait_for_rollups(up.api_url):.0f} s", flush=True)
        results = time_pages(up, args.range)
    finally:
        up.stop(timeout=300)
    print(f"\npage render time in Chromium, range {args.range}, {args.calls:,} calls (target <= 2 s):")
    print(f"{'page':<10} {'cold s':>7} {'warm s':>7}")
    for name, (cold, warm) in results.items():
        print(f"{name:<10} {cold:7.2f} {warm:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
