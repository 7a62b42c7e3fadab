"""A real stack driven from outside, for benchmarks and tests alike: processes on free ports, waiting for their
URLs, and `callscope up` (server + dashboard) seen through Debian's Chromium driven by Playwright.

Playwright never downloads a browser here: it drives /usr/bin/chromium (`apt-get install chromium`, done by
.ci/run when missing). Used by bench/ and tests/ (bench never imports tests).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGES = {"overview": "", "cost": "cost", "latency": "latency", "errors": "errors", "calls": "calls"}
# A chart drawn by dashboard/plot.py (plotly.js inside a Streamlit component).
CHART = ".callscope-plot"
EXCEPTION_BOX = "[data-testid='stException']"
RUNNING = "[data-testid='stStatusWidget']"


def wait_for_url(proc: subprocess.Popen, url: str, deadline: float, log: Callable[[], str]) -> None:
    """Until `url` answers 200; fails with the process's log if it exits or the deadline passes."""
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the process exited with {proc.returncode} before {url} answered:\n{log()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer:\n{log()}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def callscope_argv(command: str, data_dir: Path, http_port: int, grpc_port: int, *extra: str) -> list[str]:
    """`callscope <command>` over `data_dir` on the given ports, run by this interpreter."""
    argv = [sys.executable, "-m", "callscope.cli", command, "--data-dir", str(data_dir)]
    return [*argv, "--otlp-http-port", str(http_port), "--otlp-grpc-port", str(grpc_port), *extra]


@dataclass
class UpProcess:
    """`callscope up` on free ports over `data_dir`; `extra_args` e.g. ["--demo"] once that flag exists."""

    data_dir: Path
    extra_args: list[str] = field(default_factory=list)
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/api/v1"

    def start(self, timeout: float = 60.0) -> UpProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "up.log").open("ab")
        cmd = callscope_argv(
            "up", self.data_dir, self.http_port, self.grpc_port, "--dashboard-port", str(self.dashboard_port)
        )
        cmd += self.extra_args
        env = {k: v for k, v in os.environ.items() if k not in ("CALLSCOPE_API_URL", "CALLSCOPE_API_KEY")}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        for url in (f"http://127.0.0.1:{self.http_port}/healthz", f"{self.dashboard_url}/_stcore/health"):
            wait_for_url(self.proc, url, deadline, self.log)
        return self

    def log(self) -> str:
        path = self.data_dir / "up.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def launch(playwright):  # -> playwright Browser
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# What the wait looks at. The app's footer (dashboard/app.py) carries how many charts the run drew, so the wait
# knows how many to expect; each must be a plotly plot with every visible trace drawn. Every table (Streamlit's
# data grid) must have its canvas laid out with a size. With `screen`, only what lies on the first screen (the
# viewport) must be drawn: the page's charts below it are drawn after it (dashboard/plotly_loader.js).
EXPECTED = ".callscope-expect[data-charts]"
PLOTLY = ".js-plotly-plot"
TABLE = "[data-testid='stDataFrame']"
_RENDERED_JS = """({running, expected, plotly, chart, table, screen}) => {
    const onScreen = (e) => {  // an undrawn chart may have no height yet: it counts where it starts
        const box = e.getBoundingClientRect();
        return box.width > 0 && box.bottom >= 0 && box.top < window.innerHeight;
    };
    const counted = (e) => (screen ? onScreen(e) : e.getClientRects().length > 0);
    const state = {running: !!document.querySelector(running),
                   skeletons: [...document.querySelectorAll('[data-testid="stSkeleton"]')].filter(
                       (e) => !screen || onScreen(e)).length,
                   marks: document.querySelectorAll(expected).length, expected: null,
                   plots: 0, drawn: 0, tables: 0, laid_out: 0, mounted: document.querySelectorAll(chart).length};
    if (state.marks === 1) state.expected = Number(document.querySelector(expected).dataset.charts);
    const drawn = (p) => {
        if (!p._fullData || !p._fullLayout) return false;
        const visible = p._fullData.filter((t) => t.visible === true).length;
        return p.querySelectorAll('.main-svg g.trace').length >= visible;
    };
    if (screen) {  // every chart the run drew is on the page; those on the screen are drawn
        const shown = [...document.querySelectorAll(chart)].filter(onScreen);
        state.plots = shown.length;
        state.drawn = shown.filter((c) => drawn(c.closest(plotly) || c)).length;
    } else {
        const plots = document.querySelectorAll(plotly);
        state.plots = plots.length;
        state.drawn = [...plots].filter(drawn).length;
    }
    // A table in a hidden tab (display: none) is laid out when shown: only the tables on screen count.
    const tables = [...document.querySelectorAll(table)].filter(counted);
    state.tables = tables.length;
    for (const t of tables) {
        const canvas = t.querySelector('canvas');
        const box = t.getBoundingClientRect();
        if (canvas && canvas.width > 0 && canvas.height > 0 && box.height > 0) state.laid_out += 1;
    }
    const charts = screen ? state.mounted >= state.expected : state.plots >= state.expected;
    state.done = !state.running && state.skeletons === 0 && state.marks === 1
        && charts && state.drawn === state.plots && state.laid_out === state.tables;
    return state;
}"""


class RenderTimeout(AssertionError):
    """The page did not finish rendering; the message says what was missing (e.g. a selector that found nothing)."""


def render_state(page, *, screen: bool = False) -> dict:
    """What the page shows now: charts expected by the app, plotly plots found and drawn, tables laid out (with
    `screen`, those on the first screen)."""
    return page.evaluate(_RENDERED_JS, _args(screen))


def _args(screen: bool) -> dict:
    return {
        "running": RUNNING,
        "expected": EXPECTED,
        "plotly": PLOTLY,
        "chart": CHART,
        "table": TABLE,
        "screen": screen,
    }


def wait_rendered(page, *, timeout_ms: float = 30_000, screen: bool = False) -> dict:
    """Until the script run is over and its output is on screen: the footer app.py draws last is there, no
    'Running' indicator or skeleton, as many plotly plots as the run drew charts, each with all its visible traces
    drawn, and every table on screen (not in a hidden tab) laid out. With `screen`, until the first screen is
    complete: every chart the run drew is on the page, and those in the viewport (and its tables and skeletons)
    are drawn. Fails loudly, naming what was missing, when that does not happen in `timeout_ms` (e.g. the app drew
    charts but the plotly selector finds none). Returns the final state."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    deadline = time.monotonic() + timeout_ms / 1000
    try:
        page.wait_for_selector(".st-key-rendered", timeout=timeout_ms)
        left = max(1.0, (deadline - time.monotonic()) * 1000)
        page.wait_for_function(f"(a) => ({_RENDERED_JS})(a).done", arg=_args(screen), timeout=left, polling=25)
    except PlaywrightTimeout as exc:
        state = render_state(page, screen=screen)
        raise RenderTimeout(
            f"{page.url} not rendered after {timeout_ms / 1000:.0f} s: {_what_is_missing(state, screen)}"
        ) from exc
    return render_state(page, screen=screen)


def _what_is_missing(state: dict, screen: bool = False) -> str:
    if state["marks"] != 1:
        return f"the footer's chart count {EXPECTED!r} found {state['marks']} elements (need 1); state {state}"
    if state["expected"] and (state["mounted"] if screen else state["plots"]) == 0:
        return (
            f"the app drew {state['expected']} charts but {CHART if screen else PLOTLY!r} finds nothing; state {state}"
        )
    return f"state {state}"
