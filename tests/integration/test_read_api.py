"""The read API on a live server fed over OTLP: traces as trees, read keys, late data and rollups, exports."""

from __future__ import annotations

import csv as csvlib
import io
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from tests.helpers import ROOT, ServerProcess, export_rows, post_otlp

TRACE = "0af7651916cd43dd8448eb211c80319c"


def attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": str(value)}}


def span(span_id: str, parent: str | None, name: str, start: datetime, ms: float, attrs: dict[str, Any]) -> dict:
    start_ns = (start - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
    return {
        "traceId": TRACE,
        "spanId": span_id,
        **({"parentSpanId": parent} if parent else {}),
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(start_ns + round(ms * 1_000_000)),
        "attributes": [attr(k, v) for k, v in attrs.items()],
        "status": {},
    }


def chat(span_id: str, parent: str | None, start: datetime, ms: float, model: str = "gpt-4o-mini") -> dict:
    return span(
        span_id,
        parent,
        f"chat {model}",
        start,
        ms,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": model,
            "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 300,
        },
    )


def otlp(spans: list[dict]) -> bytes:
    resource = {"attributes": [attr("service.name", "support-bot"), attr("deployment.environment.name", "prod")]}
    body = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}]}]}
    return json.dumps(body).encode()


def send(server: ServerProcess, spans: list[dict], headers: dict[str, str] | None = None) -> None:
    response = post_otlp(server.http_url, otlp(spans), "application/json", headers=headers)
    assert response.status_code == 200, response.text


def api_get(server: ServerProcess, path: str, headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
    return httpx.get(server.http_url + "/api/v1" + path, params=params, headers=headers or {}, timeout=30)


def test_trace_as_a_span_tree_and_one_call(server: ServerProcess) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    send(
        server,
        [
            span("a000000000000001", None, "handle ticket", t0, 2000, {"app.step": "root"}),
            chat("a000000000000002", "a000000000000001", t0 + timedelta(milliseconds=100), 800),
            span("a000000000000003", "a000000000000001", "lookup order", t0 + timedelta(milliseconds=950), 300, {}),
            chat("a000000000000004", "a000000000000003", t0 + timedelta(milliseconds=1000), 200, "gpt-4.1"),
        ],
    )
    trace = api_get(server, f"/traces/{TRACE}").json()
    got = [(s["name"], s["type"], s["depth"], s["offset_ms"], s["duration_ms"]) for s in trace["spans"]]
    assert got == [
        ("handle ticket", "span", 0, 0.0, 2000.0),
        ("chat gpt-4o-mini", "call", 1, 100.0, 800.0),
        ("lookup order", "span", 1, 950.0, 300.0),
        ("chat gpt-4.1", "call", 2, 1000.0, 200.0),
    ]
    assert trace["duration_ms"] == 2000.0 and trace["span_count"] == 4
    call = api_get(server, f"/calls/{TRACE}/a000000000000004").json()
    assert (
        call["request_model"] == "gpt-4.1"
        and call["input_tokens"] == 1200
        and call["parent_span_id"] == ("a000000000000003")
    )
    assert call["cost_usd"] > 0 and call["service"] == "support-bot"
    assert api_get(server, f"/calls/{TRACE}/ffffffffffffffff").status_code == 404
    assert api_get(server, "/traces/not-hex").status_code == 400


def test_late_data_is_counted_at_once_and_refolded_into_rollups(tmp_path: Path) -> None:
    env = {"CALLSCOPE_ROLLUP_LAG_SECONDS": "0", "CALLSCOPE_ROLLUP_INTERVAL_SECONDS": "0.5"}
    server = ServerProcess(tmp_path / "data", env=env).start()
    try:
        day = (datetime.now(UTC) - timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
        # 48 hours: long enough for the rollups to be used (shorter ranges read the raw calls)
        window = {"from": day.isoformat(), "to": (day + timedelta(hours=48)).isoformat(), "metrics": "calls"}
        send(server, [chat(f"b00000000000000{i}", None, day + timedelta(minutes=10 * i), 500) for i in range(1, 4)])
        assert api_get(server, "/stats", **window).json()["data"][0]["calls"] == 3
        sent_at = datetime.now(UTC)
        send(server, [chat("b000000000000009", None, day + timedelta(hours=1, minutes=5), 500)])  # late call
        assert api_get(server, "/stats", **window).json()["data"][0]["calls"] == 4  # counted before any fold
        deadline = time.monotonic() + 20
        while datetime.fromisoformat(api_get(server, "/meta").json()["rollups_folded_through"] or "1970-01-01Z") < (
            sent_at + timedelta(seconds=1)
        ):
            assert time.monotonic() < deadline, "the rollup job did not fold the late call"
            time.sleep(0.2)
        body = api_get(server, "/stats", **window, bucket="hour").json()
        assert body["meta"]["source"] == "rollups+raw"
        counts = [row["calls"] for row in body["data"]]
        assert counts[:4] == [3, 1, 0, 0] and sum(counts) == 4
        raw = api_get(server, "/stats", **window, bucket="hour", rollups="false").json()
        assert raw["data"] == body["data"]
    finally:
        assert server.stop() == 0


def test_read_keys_guard_the_api_not_ingest(tmp_path: Path) -> None:
    env = {"CALLSCOPE_READ_KEYS": "read-key-123456", "CALLSCOPE_API_KEYS": "ingest-key-123456=shop"}
    server = ServerProcess(tmp_path / "data", env=env).start()
    try:
        send(server, [chat("c000000000000001", None, datetime.now(UTC), 400)], {"x-api-key": "ingest-key-123456"})
        assert api_get(server, "/stats").status_code == 401
        assert "read key" in api_get(server, "/stats").json()["error"]
        assert api_get(server, "/stats", {"authorization": "Bearer ingest-key-123456"}).status_code == 401
        ok = api_get(server, "/stats", {"authorization": "Bearer read-key-123456"}, metrics="calls", project="shop")
        assert ok.status_code == 200 and ok.json()["data"][0]["calls"] == 1
        assert api_get(server, "/meta", {"x-api-key": "read-key-123456"}).status_code == 200
        assert "read-key-123456" not in server.log()
    finally:
        server.stop()


def test_non_loopback_without_read_keys_refuses_to_start(tmp_path: Path) -> None:
    env = {**os.environ, "CALLSCOPE_API_KEYS": "ingest-key-123456"}
    cmd = [sys.executable, "-m", "callscope.cli", "serve", "--data-dir", str(tmp_path), "--host", "0.0.0.0"]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "without read keys" in result.stderr


def test_exports_stream_filtered_calls_like_the_cli(server: ServerProcess, tmp_path: Path) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    send(server, [chat(f"d0000000000000{i:02d}", None, t0 + timedelta(seconds=i), 100 + i) for i in range(40)])
    send(server, [chat("e000000000000001", None, t0, 50, "gpt-4.1")])
    window = {"last": "1h", "model": "gpt-4o-mini"}
    csv = api_get(server, "/export", **window, format="csv")
    assert csv.status_code == 200 and csv.headers["content-disposition"].endswith('.csv"')
    assert len(csv.text.strip().splitlines()) == 41
    priced = [r for r in csvlib.DictReader(io.StringIO(csv.text)) if r["cost_usd"]]
    assert priced and all(len(r["cost_usd"].partition(".")[2]) <= 10 for r in priced)  # no 0.00057029999999
    parquet = pq.read_table(io.BytesIO(api_get(server, "/export", **window, format="parquet").content))
    assert parquet.num_rows == 40 and set(parquet.column("request_model").to_pylist()) == {"gpt-4o-mini"}

    out = tmp_path / "calls.jsonl"
    cmd = [sys.executable, "-m", "callscope.cli", "export", "--server", server.http_url, "--format", "jsonl"]
    subprocess.run([*cmd, "--output", str(out), "--filter", "model=gpt-4o-mini", "--last", "1h"], cwd=ROOT, check=True)
    from_server = [json.loads(line) for line in out.read_text().splitlines()]
    assert server.stop() == 0
    from_store = [r for r in export_rows(server.data_dir) if r["request_model"] == "gpt-4o-mini"]
    assert from_server == from_store
    by_span = {r["span_id"]: r for r in from_store}
    for r in priced:  # rounded for reading, not changed
        assert float(r["cost_usd"]) == pytest.approx(by_span[r["span_id"]]["cost_usd"], rel=1e-6)
