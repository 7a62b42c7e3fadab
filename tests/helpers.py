"""Test helpers: a real `callscope serve` subprocess on free ports with a real DuckDB file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.stack import callscope_argv, free_port, wait_for_url

ROOT = Path(__file__).resolve().parent.parent
# The conventions the demo traffic speaks (sample_data/catalog.py): every one must arrive through the collector.
DEMO_CONVENTIONS = frozenset(
    {
        "otel_genai",
        "otel_genai_deprecated",
        "openllmetry",
        "openinference",
        "vercel_ai",
        "langfuse",
        "openlit",
        "logfire",
    }
)
FIXTURES = Path(__file__).resolve().parent / "fixtures"


RUNNING: list[ServerProcess] = []  # every server a test started; conftest kills those a failed test left running


@dataclass
class ServerProcess:
    data_dir: Path
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.log_path = self.data_dir / "server.log"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # One ingest worker unless a test asks for more: the worker path is exercised, at the cost of one process.
        env = {**os.environ, "CALLSCOPE_LOG_LEVEL": "info", "CALLSCOPE_INGEST_WORKERS": "1", **self.env}
        cmd = callscope_argv("serve", self.data_dir, self.http_port, self.grpc_port, *self.extra_args)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        RUNNING.append(self)
        wait_for_url(self.proc, self.http_url + "/healthz", time.monotonic() + timeout, self.log)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait: the server commits what is queued and exits 0."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def metric(self, name: str) -> float:
        total = 0.0
        for line in httpx.get(self.http_url + "/metrics", timeout=5).text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total


def export_rows(data_dir: Path, fmt: str = "jsonl") -> list[dict]:
    """Run the real `callscope export` on a stopped store and parse its JSON Lines output."""
    out = subprocess.run(
        [sys.executable, "-m", "callscope.cli", "export", "--data-dir", str(data_dir), "--format", fmt],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=120,
    )
    if fmt != "jsonl":
        return [{"raw": out.stdout}]
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def post_otlp(
    url: str,
    body: bytes,
    content_type: str = "application/x-protobuf",
    signal_name: str = "traces",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/{signal_name}", content=body, headers={"content-type": content_type, **(headers or {})}, timeout=30
    )
