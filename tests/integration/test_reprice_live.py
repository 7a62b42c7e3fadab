"""Re-pricing through the API while real OpenTelemetry SDK exporters keep sending: no call lost, none counted
twice, every cost equal to genai-prices' own (or the new entry's rates, written out here), the hourly rollups
re-folded, the previous costs kept, and a second run changes nothing. Also `callscope reprice --server`."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
from genai_prices import Usage, calc_price
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from tests.helpers import ROOT, ServerProcess, export_rows

MODELS = ("gpt-4o-mini", "gpt-4.1")


def emit(url: str, n: int, sent: list[dict], offset: int, pause_every: int = 0) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "reprice-client"}))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=url + "/v1/traces"), max_export_batch_size=20, schedule_delay_millis=50
        )
    )
    tracer = provider.get_tracer("test.reprice")
    for j in range(n):
        i = offset + j
        model = MODELS[i % 2]
        inp, out, reasoning = 200 + 7 * i, 30 + (i % 50), (i % 5) * 3
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": model,
            "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": inp,
            "gen_ai.usage.output_tokens": out,
            "gen_ai.usage.reasoning.output_tokens": reasoning,
        }
        with tracer.start_as_current_span(f"chat {model}", kind=SpanKind.CLIENT, attributes=attrs) as span:
            pass
        ctx = span.get_span_context()
        sent.append(
            {
                "key": (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"),
                "model": model,
                "inp": inp,
                "out": out,
                "reasoning": reasoning,
            }
        )
        if pause_every and j % pause_every == 0:
            time.sleep(0.02)
    assert provider.force_flush(60_000)
    provider.shutdown()


def expected_cost(call: dict, entry_from: datetime | None, start: datetime) -> float:
    if call["model"] == "gpt-4o-mini" and entry_from is not None and start >= entry_from:
        r = min(call["reasoning"], call["out"])
        return (call["inp"] * 0.5 + (call["out"] - r) * 2.0 + r * 3.0) / 1e6  # the entry below, written out
    usage = Usage(input_tokens=call["inp"], output_tokens=call["out"])
    return float(calc_price(usage, call["model"], provider_id="openai", genai_request_timestamp=start).total_price)


def wait_run(api: str, run_id: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = httpx.get(f"{api}/prices/reprice/{run_id}", timeout=10).json()
        if run["status"] != "running":
            return run
        time.sleep(0.1)
    raise AssertionError(f"re-pricing run {run_id} did not finish")


def test_repricing_while_ingest_runs_loses_nothing_and_counts_nothing_twice(tmp_path):
    server = ServerProcess(
        tmp_path / "data", env={"CALLSCOPE_ROLLUP_INTERVAL_SECONDS": "0.5", "CALLSCOPE_ROLLUP_LAG_SECONDS": "0"}
    ).start()
    api = server.http_url + "/api/v1"
    sent: list[dict] = []
    emit(server.http_url, 300, sent, 0)  # priced by genai-prices at ingest
    entry_from = datetime.now(UTC) - timedelta(hours=2)
    live: list[dict] = []
    sender = threading.Thread(target=emit, args=(server.http_url, 900, live, 300, 10))
    sender.start()
    while len(live) < 100:  # the exporter is sending
        time.sleep(0.01)
    created = httpx.post(
        api + "/prices/entries",
        json={
            "provider": "openai",
            "model": "gpt-4o-mini",
            "input_mtok": 0.5,
            "output_mtok": 2.0,
            "reasoning_mtok": 3.0,
            "valid_from": entry_from.isoformat(),
        },
        timeout=10,
    )
    assert created.status_code == 201, created.text
    started = httpx.post(api + "/prices/reprice", params={"from": entry_from.isoformat()}, timeout=30)
    assert started.status_code == 202, started.text
    first = wait_run(api, started.json()["run_id"])
    assert first["status"] == "done", first
    ingest_during_run = len(live)
    sender.join(120)
    assert not sender.is_alive()
    sent += live
    assert ingest_during_run > 100  # the run really overlapped with ingest
    # a second run over the same range changes nothing
    again = httpx.post(api + "/prices/reprice", params={"from": entry_from.isoformat()}, timeout=30)
    second = wait_run(api, again.json()["run_id"])
    assert second["status"] == "done" and second["changed"] == 0 and second["scanned"] == len(sent), second

    # every call once, every cost right, the rollup path agrees (3 days: answered from hourly rollups)
    def stats() -> dict:
        body = httpx.get(api + "/stats", params={"last": "3d", "metrics": "calls,cost_usd"}, timeout=30).json()
        return body["data"][0] | {"source": body["meta"]["source"]}

    deadline = time.monotonic() + 30
    while (s := stats())["calls"] != len(sent) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.stop() == 0
    rows = {(r["trace_id"], r["span_id"]): r for r in export_rows(server.data_dir)}
    assert len(rows) == len(sent) == s["calls"]
    total = 0.0
    for call in sent:
        row = rows[call["key"]]
        start = datetime.fromisoformat(row["start_time"].replace("Z", "+00:00"))
        want = expected_cost(call, entry_from, start)
        assert math.isclose(row["cost_usd"], want, rel_tol=1e-9), (call, row["cost_usd"], want)
        assert row["pricing"] == ("book" if call["model"] == "gpt-4o-mini" else "priced")
        total += want
    assert s["source"] != "raw" and math.isclose(s["cost_usd"], total, rel_tol=1e-9)


def test_callscope_reprice_cli_against_a_server(tmp_path):
    server = ServerProcess(tmp_path / "data").start()
    api = server.http_url + "/api/v1"
    sent: list[dict] = []
    emit(server.http_url, 40, sent, 0)
    httpx.post(
        api + "/prices/entries",
        json={"provider": "openai", "model": "gpt-4.1", "input_mtok": 1, "output_mtok": 1},
        timeout=10,
    ).raise_for_status()
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "callscope.cli",
            "reprice",
            "--server",
            server.http_url,
            "--from",
            since,
            "--filter",
            "model=gpt-4.1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "100.0%" in out.stderr and "20 calls scanned, 20 changed" in out.stderr
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "callscope.cli",
            "reprice",
            "--server",
            server.http_url,
            "--from",
            since,
            "--filter",
            "modle=gpt-4.1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "unknown parameter(s): modle" in bad.stderr
    assert server.stop() == 0
    priced = [r for r in export_rows(server.data_dir) if r["request_model"] == "gpt-4.1"]
    assert len(priced) == 20 and all(r["pricing"] == "book" for r in priced)


def test_bad_input_through_the_api_is_a_clear_400_and_changes_nothing(server) -> None:
    api = server.http_url + "/api/v1"
    first = {"provider": "openai", "model": "gpt-4.1", "input_mtok": 1, "output_mtok": 2, "valid_to": "2026-06-01"}
    assert httpx.post(api + "/prices/entries", json=first, timeout=10).status_code == 201
    httpx.post(api + "/budgets", json={"name": "kept", "amount_usd": 10}, timeout=10).raise_for_status()

    def state() -> tuple:
        return (
            httpx.get(api + "/prices/entries", timeout=10).json(),
            httpx.get(api + "/prices/audit", timeout=10).json(),
            [b["budget"] for b in httpx.get(api + "/budgets", timeout=30).json()["budgets"]],
        )

    before = state()
    cases = [
        (
            "post",
            "/prices/entries",
            {"json": first | {"valid_from": "2026-05-01", "valid_to": None}},
            "overlaps price book #1",
        ),
        ("post", "/prices/entries", {"json": first | {"model": "o3", "input_mtok": -2}}, "input_mtok: -2 must be"),
        ("put", "/prices/entries/1", {"json": first | {"output_mtok": -1}}, "output_mtok: -1 must be"),
        ("post", "/prices/reprice", {"params": {"from": "2026-01-01", "servce": "a"}}, "unknown parameter(s): servce"),
        ("post", "/prices/reprice", {"params": {"to": "2026-01-01"}}, "from is required"),
        ("post", "/budgets", {"json": {"name": "zero", "amount_usd": 0}}, "amount_usd must be more than 0"),
        (
            "post",
            "/budgets",
            {"json": {"name": "f", "amount_usd": 5, "filters": {"modle": "x"}}},
            "unknown dimension 'modle'",
        ),
        ("post", "/budgets", {"json": {"name": "kept", "amount_usd": 5}}, "exists already"),
    ]
    for method, path, kwargs, reason in cases:
        response = getattr(httpx, method)(api + path, timeout=10, **kwargs)
        assert response.status_code == 400, (path, response.text)
        assert reason in response.json()["error"], (path, response.json())
    assert state() == before
    assert httpx.get(api + "/prices/reprice/1", timeout=10).status_code == 404  # no run was started
    assert httpx.delete(api + "/prices/entries/99", timeout=10).status_code == 404
