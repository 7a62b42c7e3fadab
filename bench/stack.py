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


def wait_rendered(page, *, timeout_ms: float = 30_000) -> None:
    """Until the script run is over and its output is on screen: the footer app.py draws last is there, no
    'Running' indicator, every chart drawn."""
    page.wait_for_selector(".st-key-rendered", timeout=timeout_ms)
    page.wait_for_function(
        """(sel) => {
            if (document.querySelector(sel)) return false;
            const plots = document.querySelectorAll('[data-testid="stBidiComponent"]');
            for (const p of plots) { if (!p.querySelector('.main-svg')) return false; }
            return document.querySelectorAll('[data-testid="stSkeleton"]').length === 0;
        }""",
        arg=RUNNING,
        timeout=timeout_ms,
        polling=50,
    )
