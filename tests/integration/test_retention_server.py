"""Retention and deletion by user on a live server: the dry run counts what the run then removes, deletion by user
leaves no row of the user in the API's answers or its export, storage sizes are on /metrics and /meta, and a
re-sent span is stored once although `calls` has no primary key any more."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from tests.calls_factory import make_calls, store_rows
from tests.helpers import ROOT, ServerProcess, post_otlp
from tests.integration.test_read_api import chat


def _wait_folded(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if httpx.get(url + "/api/v1/meta", timeout=10).json()["rollups_folded_through"]:
            return
        time.sleep(0.1)
    raise AssertionError("the rollup job never folded")


def test_retention_and_deletion_by_user_through_the_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime.now(UTC)
    rows = make_calls(800, now - timedelta(days=8), now - timedelta(hours=2), seed=11)
    for r in rows:
        r["received_at"] = r["start_time"] + timedelta(seconds=1)
    store_rows(tmp_path, rows)
    server = ServerProcess(
        tmp_path, env={"CALLSCOPE_RETENTION": "calls=3", "CALLSCOPE_RETENTION_INTERVAL_SECONDS": "86400"}
    ).start()
    url = server.http_url
    try:
        _wait_folded(url)
        total_before = httpx.get(url + "/api/v1/stats", params={"last": "10d", "metrics": "calls"}).json()
        assert total_before["data"][0]["calls"] == len(rows)

        dry = httpx.post(url + "/api/v1/retention/run", params={"dry_run": "true"}, timeout=60).json()
        done = httpx.post(url + "/api/v1/retention/run", timeout=60).json()
        removed = done["removed"]["calls"]
        assert removed == dry["removed"]["calls"] > 0
        info = httpx.get(url + "/api/v1/retention").json()
        cutoff = datetime.fromisoformat(info["raw_calls_removed_before"]["default"])
        assert removed == sum(r["start_time"] < cutoff for r in rows)
        assert [r["trigger"] for r in info["runs"]] == ["api", "api"]
        # The long range still counts every call (rollups), and says where raw calls end.
        after = httpx.get(url + "/api/v1/stats", params={"last": "10d", "metrics": "calls"}).json()
        assert after["data"][0]["calls"] == len(rows)
        assert after["meta"]["rollups_only_before"] == cutoff.isoformat()
        # The dashboard says so too (its sidebar, from /meta).
        monkeypatch.setenv("CALLSCOPE_API_URL", url + "/api/v1")
        monkeypatch.delenv("CALLSCOPE_API_KEY", raising=False)
        at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=90)
        at.query_params.update({"range": "7d"})
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        notes = [c.value for c in at.sidebar.caption if "removed by retention" in c.value]
        assert notes and cutoff.strftime("%Y-%m-%d %H:%M") in notes[0]

        victim = "user-2"
        kept = [r for r in rows if r["start_time"] >= cutoff]
        assert any(r["user_id"] == victim for r in kept)
        gone = httpx.delete(url + f"/api/v1/users/{victim}", timeout=60).json()
        assert gone["removed"]["calls"] == sum(r["user_id"] == victim for r in kept)
        window = {"from": (now - timedelta(days=9)).isoformat(), "to": now.isoformat()}
        export = httpx.get(url + "/api/v1/export", params={**window, "format": "jsonl"}, timeout=60).text
        exported = [json.loads(line) for line in export.splitlines() if line.strip()]
        assert len(exported) == len(kept) - gone["removed"]["calls"]
        assert all(e["user_id"] != victim for e in exported)
        users = httpx.get(url + "/api/v1/values/user", params={"last": "10d"}).json()["values"]
        assert victim not in [u["user"] for u in users]

        assert httpx.delete(url + "/api/v1/users/%20", timeout=10).status_code == 400
        assert httpx.post(url + "/api/v1/retention/run", params={"dry_run": "maybe"}).status_code == 400

        storage = httpx.get(url + "/api/v1/storage", timeout=60).json()
        assert storage["tables"]["calls"]["rows"] == len(rows) - removed - gone["removed"]["calls"]
        assert storage["tables"]["calls"]["bytes"] > 0 and storage["file_bytes"] > 0
        # /meta and /metrics answer the last measurement (refreshed in the background): wait until they have one.
        deadline = time.monotonic() + 30
        while httpx.get(url + "/api/v1/meta").json()["storage"] is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert httpx.get(url + "/api/v1/meta").json()["storage"]["tables"]["calls"]["bytes"] > 0
        assert server.metric("callscope_store_file_bytes") > 0
        assert 'callscope_store_table_bytes{table="calls"}' in httpx.get(url + "/metrics").text
    finally:
        assert server.stop() == 0


def test_a_resent_span_is_stored_once_without_a_primary_key(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    url = server.http_url
    start = datetime.now(UTC) - timedelta(minutes=5)
    body = json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
                    "scopeSpans": [{"spans": [chat("00f067aa0ba902b7", None, start, 120.0)]}],
                }
            ]
        }
    ).encode()
    try:
        for _ in range(3):
            assert post_otlp(url, body, "application/json").status_code == 200
        assert server.metric("callscope_calls_deduplicated_total") == 2
        calls = httpx.get(url + "/api/v1/stats", params={"last": "1h", "metrics": "calls"}).json()
        assert calls["data"][0]["calls"] == 1
    finally:
        assert server.stop() == 0
