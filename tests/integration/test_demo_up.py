"""`callscope up --demo` end to end (a real process, real OTLP, a real DuckDB file read after it stopped), and a
round trip of generated calls through a running collector, compared row by row with what was generated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pytest

from sample_data import dataset
from sample_data.otlp import rows_of
from sample_data.script import script_for
from sample_data.send import send_table
from sample_data.traffic import World, generate
from tests.helpers import DEMO_CONVENTIONS, ROOT, ServerProcess, export_rows, free_port

pytestmark = pytest.mark.slow


def _start_up(data_dir: Path, log: Path) -> tuple[subprocess.Popen, int]:
    http_port = free_port()
    cmd = [sys.executable, "-m", "callscope.cli", "up", "--demo", "--data-dir", str(data_dir)]
    cmd += ["--otlp-http-port", str(http_port), "--otlp-grpc-port", str(free_port())]
    env = {**os.environ, "CALLSCOPE_LOG_LEVEL": "info"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    return proc, http_port


def _wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not seen (exit {proc.poll()}):\n{log.read_text(errors='replace')}")


def test_up_demo_loads_the_dataset_through_the_collector_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "up.log"
    started = datetime.now(UTC)
    proc, http_port = _start_up(data_dir, log)
    try:
        _wait_for(log, "demo: loaded 40000 calls", proc, timeout=120)
        text = log.read_text()
        assert f"export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:{http_port}" in text
        assert "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in text
        assert "export OTEL_SERVICE_NAME=" in text  # the three variables the README says `up` prints
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "stopped cleanly" in log.read_text()

    db = duckdb.connect(str(data_dir / "callscope.duckdb"), read_only=True)
    try:
        n, last_end = db.execute("SELECT count(*), epoch(max(end_time)) FROM calls").fetchone()
        conventions = {r[0] for r in db.execute("SELECT DISTINCT convention FROM calls").fetchall()}
        spans = dict(db.execute("SELECT name, count(*) FROM spans GROUP BY name").fetchall())
        received = db.execute("SELECT epoch(min(received_at)) FROM calls").fetchone()[0]
    finally:
        db.close()
    assert n >= dataset.CALLS  # the dataset, plus any live call of the trickle
    assert conventions == DEMO_CONVENTIONS
    assert spans["ai.toolCall"] > 0 and spans["rag-search"] > 0  # trace structure went through too
    # the data was shifted to end "now" and written by the collector (received during this test)
    assert abs(last_end - started.timestamp()) < 120
    assert received >= started.timestamp() - 1


def test_up_demo_on_a_filled_store_does_not_load_again(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "up.log"
    server = ServerProcess(data_dir).start()
    world = World.make(script_for(datetime.now(UTC), 1), n_users=50)
    send_table(server.http_url, generate(world, np.random.default_rng(1), 300))
    assert server.stop() == 0
    proc, _ = _start_up(data_dir, log)
    try:
        _wait_for(log, "demo: live traffic", proc, timeout=60)
        assert "not loading the demo dataset" in log.read_text()
        proc.send_signal(signal.SIGINT)  # Ctrl-C stops as cleanly as SIGTERM (the test above)
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "stopped cleanly" in log.read_text()
    assert "demo: sending" not in log.read_text()
    assert 300 <= len(export_rows(data_dir)) < 400


def test_generated_calls_survive_the_collector_row_by_row(server: ServerProcess) -> None:
    """Every convention's spans, normalised by the collector, give back the generated rows."""
    world = World.make(script_for(datetime.now(UTC), 3), n_users=300)
    table = generate(world, np.random.default_rng(5), 6000)
    stats = send_table(server.http_url, table)
    assert stats.calls == 6000
    assert server.stop() == 0
    expected = {(r["trace_id"].hex(), r["span_id"].hex()): r for r in rows_of(table)}
    got = export_rows(server.data_dir)
    assert len(got) == 6000
    exact = [
        "service",
        "service_version",
        "environment",
        "provider",
        "operation",
        "request_model",
        "response_model",
        "model",
        "pricing",
        "price_source",
        "streaming",
        "status",
        "error_type",
        "http_status",
        "finish_reason",
        "user_id",
        "session_id",
        "tags",
        "convention",
    ]
    tokens = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
    seen = set()
    for row in got:
        exp = expected[(row["trace_id"], row["span_id"])]
        seen.add(exp["convention"])
        for col in exact:
            assert row[col] == exp[col], (exp["convention"], col, row[col], exp[col])
        for col in tokens:  # a convention without a cache/reasoning attribute leaves NULL where 0 was generated
            assert (row[col] or 0) == (exp[col] or 0), (exp["convention"], col)
        for col in ("cost_usd", "reported_cost_usd", "duration_ms", "ttft_ms"):
            a, b = row[col], exp[col]
            assert (a is None) == (b is None) and (a is None or abs(a - b) <= 1e-6 * max(1.0, abs(b))), (col, a, b)
        assert (row["metadata"] or {}) == dict(exp["metadata"] or [])
    assert seen == DEMO_CONVENTIONS
