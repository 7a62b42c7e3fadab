"""Drift and anomaly detection in a real `callscope serve`: its scheduler runs the jobs over a store of generated
traffic (the scripted release happened ~22 hours ago), and the read API serves verdicts, distributions, release
markers (from service.version sent by the real OpenTelemetry SDK, and added by a person) and anomalies with the
calls of their hour; read keys and unknown parameters are refused as on every route."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from core.store import connect
from sample_data.bulk import write_calls
from sample_data.script import script_for
from tests.helpers import ServerProcess

KEY = "drift-read-key"
WRITE_KEY = "drift-write-key"  # an editor's key: adding a release marker is a change
DAYS = 3  # the release (at 70%) is 0.9 days before the end: inside the default 24-hour current window


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, datetime]]:
    data = Path(tmp_path_factory.mktemp("drift"))
    end = datetime.now(UTC).replace(microsecond=0)
    db = connect(data / "callscope.duckdb")
    write_calls(db, n_calls=120_000, days=DAYS, end=end, seed=3, progress=False)
    db.execute("CHECKPOINT")
    db.close()
    env = {
        "CALLSCOPE_READ_KEYS": KEY,
        "CALLSCOPE_WRITE_KEYS": WRITE_KEY,
        "CALLSCOPE_ROLLUP_INTERVAL_SECONDS": "1",  # also the release markers' interval
        "CALLSCOPE_ROLLUP_LAG_SECONDS": "0",
        "CALLSCOPE_DRIFT_BASELINES": "summarizer=never-released",  # unknown: logged, the job carries on
    }
    proc = ServerProcess(data, env=env).start()
    yield proc, end
    proc.stop()


def get(proc: ServerProcess, path: str, key: str | None = KEY, **params: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    # params=None keeps a query string already in `path` (httpx replaces it with any params given)
    return httpx.get(f"{proc.http_url}/api/v1{path}", params=params or None, headers=headers, timeout=60)


def ok(proc: ServerProcess, path: str, **params: Any) -> Any:
    response = get(proc, path, **params)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(check, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("timed out")


def test_the_jobs_run_in_serve_and_the_release_drift_is_served(server) -> None:
    proc, end = server
    runs = wait_for(lambda: ok(proc, "/drift/runs")["runs"])
    assert runs[0]["current_to"] == end.replace(minute=0, second=0).isoformat().replace("+00:00", "Z")
    body = ok(proc, "/drift", service="support-bot", metric="input_tokens")
    assert body["meta"]["run"]["run_id"] == runs[0]["run_id"]
    rows = [r for r in body["data"] if r["status"] != "not_enough_data"]
    assert rows and all(r["drifted"] and r["score"] > 0.3 for r in rows), rows
    assert {r["service"] for r in body["data"]} == {"support-bot"} and {r["metric"] for r in body["data"]} == {
        "input_tokens"
    }
    log = proc.log()
    assert "drift: run 1:" in log and "never-released" in log  # the unknown pinned release was logged
    only = ok(proc, "/drift", drifted="true")["data"]
    assert only and all(r["drifted"] for r in only)


def test_a_distribution_matches_the_raw_calls(server) -> None:
    proc, _ = server
    run = wait_for(lambda: ok(proc, "/drift/runs")["runs"])[0]
    cell = next(
        r
        for r in ok(proc, "/drift", service="support-bot", model="gpt-4o-mini", metric="input_tokens")["data"]
        if r["status"] == "drifted"
    )
    dist = ok(
        proc,
        "/drift/distribution",
        service="support-bot",
        model="gpt-4o-mini",
        metric="input_tokens",
        run_id=run["run_id"],
    )
    assert (dist["n_reference"], dist["n_current"]) == (cell["n_reference"], cell["n_current"])
    assert dist["test"] == cell["test"] and dist["score"] == pytest.approx(cell["score"])
    # the current window's calls, fetched independently through /export, give the same histogram and median
    export = httpx.get(
        f"{proc.http_url}/api/v1/export",
        params={
            "from": cell["current_from"],
            "to": cell["current_to"],
            "service": "support-bot",
            "request_model": "gpt-4o-mini",
            "status": "ok",
            "format": "jsonl",
        },
        headers={"authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    values = np.array([orjson.loads(line)["input_tokens"] for line in export.text.splitlines()], float)
    current = dist["distribution"]["current"]
    assert current["n"] == len(values)
    edges = dist["distribution"]["edges"]
    np.testing.assert_allclose(current["shares"], np.histogram(values, edges)[0] / len(values))
    assert current["median"] == pytest.approx(float(np.median(values)))
    assert current["ecdf"]["x"][50] == pytest.approx(float(np.quantile(values, 0.5)))


def test_release_markers_from_the_sdk_and_from_a_person(server) -> None:
    proc, end = server
    assert {"2.13.4", "2.14.0"} <= {m["release"] for m in ok(proc, "/releases", service="support-bot")["releases"]}
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-app", "service.version": "3.1.0"}))
    exporter = OTLPSpanExporter(endpoint=f"{proc.http_url}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 5,
    }
    with provider.get_tracer("t").start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=attrs):
        pass
    assert provider.force_flush(30_000)
    provider.shutdown()
    marker = wait_for(lambda: ok(proc, "/releases", service="otel-app")["releases"])[0]
    assert (marker["release"], marker["source"]) == ("3.1.0", "service.version")
    call = ok(proc, "/calls", service="otel-app", last="1h")["data"][0]
    assert call["service_version"] == "3.1.0"

    at = (end - timedelta(hours=30)).isoformat()
    posted = httpx.post(
        f"{proc.http_url}/api/v1/releases",
        json={"service": "summarizer", "release": "prompt-v4", "released_at": at, "note": "few-shot examples"},
        headers={"authorization": f"Bearer {WRITE_KEY}"},
        timeout=30,
    )
    assert posted.status_code == 200, posted.text
    listed = ok(proc, "/releases", service="summarizer")["releases"]
    assert [(m["release"], m["source"], m["note"]) for m in listed] == [("prompt-v4", "user", "few-shot examples")]
    read_only = httpx.post(
        f"{proc.http_url}/api/v1/releases", json={"service": "x", "release": "1"}, headers={"x-api-key": KEY}
    )
    assert read_only.status_code == 403  # a read key changes nothing
    bad = httpx.post(f"{proc.http_url}/api/v1/releases", json={"service": "x"}, headers={"x-api-key": WRITE_KEY})
    assert bad.status_code == 400 and "release is required" in bad.json()["error"]
    assert httpx.post(f"{proc.http_url}/api/v1/releases", json={"service": "x", "release": "1"}).status_code == 401


def test_drift_since_a_release_is_one_request(server) -> None:
    proc, _ = server
    body = ok(proc, "/drift/compare", service="support-bot", release="2.14.0")
    assert body["meta"]["baseline"] == "before release 2.14.0"
    prompts = [r for r in body["data"] if r["metric"] == "input_tokens" and r["status"] != "not_enough_data"]
    assert prompts and all(r["drifted"] for r in prompts)
    assert {r["service"] for r in body["data"]} == {"support-bot"}
    marker = next(m for m in ok(proc, "/releases", service="support-bot")["releases"] if m["release"] == "2.14.0")
    assert {r["reference_to"] for r in body["data"]} == {marker["released_at"].replace("Z", "+00:00")}
    assert {r["current_from"] for r in body["data"]} == {marker["released_at"].replace("Z", "+00:00")}
    missing = get(proc, "/drift/compare", service="support-bot", release="9.9.9")
    assert missing.status_code == 400 and "no release '9.9.9'" in missing.json()["error"]


def test_anomalies_link_to_the_calls_of_their_hour(server) -> None:
    proc, end = server
    script = script_for(end, DAYS)
    first_hour = script.rate_limit_storm.start.replace(minute=0, second=0, microsecond=0)
    storm_hours = {h.isoformat().replace("+00:00", "Z") for h in (first_hour, first_hour + timedelta(hours=1))}

    def storm() -> list[dict]:  # the 45-minute storm lies in one or two hours
        body = ok(proc, "/anomalies", last="4d", scope="model", metric="rate_limited_share", model="gpt-4o-mini")
        return [a for a in body["anomalies"] if a["hour"] in storm_hours]

    found = max(wait_for(storm), key=lambda a: a["value"])
    assert found["value"] > 0.05 and found["score"] >= 5 and found["unit"] == "ratio"  # base share ~0.5%
    calls = ok(proc, found["calls_path"] + "&limit=1")  # the calls of that hour and model
    assert calls["meta"]["total"] == found["calls"]
    stats = ok(proc, "/stats", metrics="rate_limited_share", **found["calls_filter"])["data"][0]
    assert stats["rate_limited_share"] == pytest.approx(found["value"])
    series = ok(proc, "/anomalies/series", last="4d", scope="model", model="gpt-4o-mini", metric="rate_limited_share")
    hours = [r["hour"] for r in series["data"]]
    assert hours == sorted(hours) and len(hours) > 24


def test_keys_and_unknown_parameters_are_refused(server) -> None:
    proc, _ = server
    for path in ("/drift", "/drift/runs", "/drift/history", "/releases", "/anomalies", "/anomalies/series"):
        assert get(proc, path, key=None).status_code == 401, path
        assert get(proc, path, key="wrong-read-key").status_code == 401, path
        typo = get(proc, path, servce="x")
        assert typo.status_code == 400 and "unknown parameter(s): servce" in typo.json()["error"], path
    for path, params, reason in (
        ("/drift", {"metric": "prompt"}, "unknown drift metric"),
        ("/anomalies", {"scope": "user"}, "scope='user'"),
        ("/anomalies", {"metric": "tokens"}, "unknown anomaly metric"),
        ("/drift/distribution", {"metric": "latency", "run_id": 999}, "no drift run 999"),
        ("/drift/compare", {"release": "2.14.0"}, "needs the service"),
        ("/drift/compare", {"reference_from": "2026-01-01T00:00:00Z"}, "together"),
    ):
        response = get(proc, path, **params)
        assert response.status_code == 400 and reason in response.json()["error"], (path, response.text)
