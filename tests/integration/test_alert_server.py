"""Alerting in a real `callscope serve`: rules through the API (and read-only file rules), bad input, live
evaluation of calls sent over OTLP (same number as the read API), the preview, and reloading the rules file on
change and on SIGHUP, keeping the last good rules (also across a restart)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import ServerProcess, post_otlp

FILE_RULES = """\
rules:
  - name: FileErrors
    metric: error_rate
    window: 1m
    op: ">"
    critical: 0.25
    interval: 10s
  - name: FileSlow
    metric: latency_p95
    group_by: [model]
    window: 5m
    op: ">"
    warning: 5000
"""
API_RULE = {
    "name": "ApiSpend",
    "metric": "cost_usd",
    "filters": {"service": "support-bot"},
    "window": "1h",
    "op": ">",
    "warning": 10,
    "critical": 50,
    "labels": {"team": "finance"},
}


def api(server: ServerProcess, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{server.http_url}/api/v1/alerts{path}", timeout=60, **kwargs)


def wait_until(check: Callable[[], Any], timeout: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def start(tmp_path: Path, rules: str | None = FILE_RULES) -> ServerProcess:
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    if rules is not None:
        (data / "alerts.yaml").write_text(rules)
    return ServerProcess(data).start()


def test_rules_through_the_api_with_file_rules_read_only(tmp_path: Path):
    server = start(tmp_path)
    listed = api(server, "GET", "/rules").json()
    by_name = {r["name"]: r for r in listed["rules"]}
    assert set(by_name) == {"FileErrors", "FileSlow"}
    assert by_name["FileSlow"]["read_only"] and by_name["FileSlow"]["source"] == "file"
    assert by_name["FileSlow"]["file"] == str(server.data_dir / "alerts.yaml") and by_name["FileSlow"]["line"] == 8
    assert listed["file"]["ok"] and listed["file"]["rules"] == 2

    created = api(server, "POST", "/rules", json=API_RULE)
    assert created.status_code == 201, created.text
    assert created.json()["source"] == "api" and not created.json()["read_only"]
    assert created.json()["spec"]["filters"] == {"service": "support-bot"}
    assert api(server, "POST", "/rules", json=API_RULE).status_code == 409
    taken = api(server, "POST", "/rules", json=API_RULE | {"name": "FileSlow"})
    assert taken.status_code == 409 and "alerts.yaml" in taken.json()["error"]

    for body, field in [
        (API_RULE | {"name": "B1", "window": "45d"}, "window"),
        (API_RULE | {"name": "B2", "metric": "nope"}, "metric"),
        (API_RULE | {"name": "B3", "filters": {"servce": "x"}}, "filters.servce"),
        (API_RULE | {"name": "B4", "critical": 1}, "critical"),
        (API_RULE | {"name": "B5", "treshold": 1}, "treshold"),
        ([1, 2], "rule"),
    ]:
        bad = api(server, "POST", "/rules", json=body)
        assert bad.status_code == 400 and bad.json()["field"] == field, (field, bad.text)
    broken = api(server, "POST", "/rules", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "error" in broken.json()
    assert api(server, "GET", "/rules", params={"rule": "x"}).status_code == 400  # unknown parameter
    assert "unknown parameter" in api(server, "GET", "/instances", params={"stat": "firing"}).json()["error"]

    changed = api(server, "PUT", "/rules/ApiSpend", json=API_RULE | {"warning": 20})
    assert changed.status_code == 200 and changed.json()["spec"]["warning"] == 20
    renamed = api(server, "PUT", "/rules/ApiSpend", json=API_RULE | {"name": "Other"})
    assert renamed.status_code == 400 and renamed.json()["field"] == "name"
    assert api(server, "PUT", "/rules/FileSlow", json=API_RULE | {"name": "FileSlow"}).status_code == 409
    assert api(server, "DELETE", "/rules/FileSlow").status_code == 409
    assert api(server, "PUT", "/rules/Nope", json=API_RULE | {"name": "Nope"}).status_code == 404
    assert api(server, "GET", "/rules/ApiSpend").json()["spec"]["warning"] == 20

    # The API rule survives a restart (it lives in the store); deleting it is final.
    server.stop()
    server = ServerProcess(server.data_dir, http_port=server.http_port, grpc_port=server.grpc_port).start()
    assert api(server, "GET", "/rules/ApiSpend").json()["spec"]["warning"] == 20
    assert api(server, "DELETE", "/rules/ApiSpend").json() == {"deleted": "ApiSpend"}
    assert api(server, "DELETE", "/rules/ApiSpend").status_code == 404
    assert {r["name"] for r in api(server, "GET", "/rules").json()["rules"]} == {"FileErrors", "FileSlow"}
    server.stop()


def otlp_calls(start: datetime, errors: list[bool]) -> bytes:
    import json

    def attr(key: str, value: Any) -> dict:
        kind = "intValue" if isinstance(value, int) else "stringValue"
        return {"key": key, "value": {kind: str(value)}}

    spans = []
    for i, error in enumerate(errors):
        t_ns = int((start + timedelta(seconds=i)).timestamp() * 1e9)
        spans.append(
            {
                "traceId": f"{i + 1:032x}",
                "spanId": f"{i + 1:016x}",
                "name": "chat gpt-4o-mini",
                "kind": 3,
                "startTimeUnixNano": str(t_ns),
                "endTimeUnixNano": str(t_ns + 800_000_000),
                "attributes": [
                    attr("gen_ai.operation.name", "chat"),
                    attr("gen_ai.provider.name", "openai"),
                    attr("gen_ai.request.model", "gpt-4o-mini"),
                    attr("gen_ai.usage.input_tokens", 100),
                    attr("gen_ai.usage.output_tokens", 20),
                ],
                "status": {"code": 2, "message": "boom"} if error else {},
            }
        )
    resource = {"attributes": [attr("service.name", "support-bot")]}
    body = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]}]}
    return json.dumps(body).encode()


def test_live_evaluation_of_calls_sent_over_otlp_matches_the_read_api(tmp_path: Path):
    server = start(tmp_path)
    errors = [True, False, False, True, False, False, True, False]
    now = datetime.now(UTC)
    response = post_otlp(server.http_url, otlp_calls(now - timedelta(seconds=len(errors)), errors), "application/json")
    assert response.status_code == 200, response.text

    def firing() -> dict | None:
        found = api(server, "GET", "/instances", params={"rule": "FileErrors", "state": "firing"}).json()
        return found["instances"][0] if found["instances"] else None

    inst = wait_until(firing)
    assert inst["value"] == 3 / 8 and inst["threshold"] == 0.25
    assert inst["labels"] == {"alertname": "FileErrors", "severity": "critical"}
    assert inst["annotations"]["summary"].startswith("FileErrors (critical): error_rate 37.50% > 25.00% over 1m")
    assert "/errors?from=" in inst["annotations"]["dashboard_url"]
    # The value is the read API's number for the same window.
    end = datetime.fromisoformat(inst["last_eval_at"])
    stats = httpx.get(
        f"{server.http_url}/api/v1/stats",
        params={"from": (end - timedelta(minutes=1)).isoformat(), "to": end.isoformat(), "metrics": "error_rate"},
        timeout=30,
    ).json()
    assert stats["data"][0]["error_rate"] == inst["value"]
    history = api(server, "GET", "/history", params={"rule": "FileErrors"}).json()["history"]
    changes = [(h["from_state"], h["to_state"]) for h in reversed(history)]
    # Evaluated before the calls arrived, error_rate had no value (no calls): nodata, then firing.
    assert changes in ([("normal", "firing")], [("normal", "nodata"), ("nodata", "firing")])
    health = {r["name"]: r["health"] for r in api(server, "GET", "/rules").json()["rules"]}
    assert health["FileErrors"]["health"] == "ok"

    # The preview replays a rule (not saved) over the past hour: the metric at each step, and its firings.
    preview = api(
        server,
        "POST",
        "/preview",
        params={"last": "1h", "to": (now + timedelta(minutes=2)).isoformat()},
        json={"name": "P", "metric": "calls", "window": "5m", "op": ">", "critical": 4, "interval": "1m"},
    ).json()
    assert preview["exact"] and preview["step_seconds"] == 60 and preview["thresholds"] == {"critical": 4}
    (series,) = preview["series"]
    values = [v for _, v in series["points"]]
    assert len(values) in (60, 61) and max(values) == 8 and values.count(8) >= 1
    assert len(preview["firings"]) == 1 and preview["notifications"] in (1, 2)
    assert api(server, "GET", "/rules/P").status_code == 404  # nothing saved
    bad = api(server, "POST", "/preview", json={"name": "P", "metric": "calls", "window": "1s", "op": ">"})
    assert bad.status_code == 400 and bad.json()["field"] == "window"
    server.stop()


BAD_RULES = FILE_RULES.replace("window: 5m", "window: 45d")
THREE_RULES = (
    FILE_RULES
    + """\
  - name: FileSpend
    metric: cost_usd
    window: 1d
    op: ">"
    critical: 100
"""
)


def file_status(server: ServerProcess) -> dict:
    return api(server, "GET", "/file").json()


def rule_names(server: ServerProcess) -> set[str]:
    return {r["name"] for r in api(server, "GET", "/rules").json()["rules"]}


def test_reload_on_sighup_and_on_change_keeps_the_last_good_rules(tmp_path: Path):
    server = start(tmp_path)
    path = server.data_dir / "alerts.yaml"
    assert rule_names(server) == {"FileErrors", "FileSlow"}
    # An invalid file: the problem is reported with line and field; the rules stay.
    path.write_text(BAD_RULES)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGHUP)
    status = wait_until(lambda: (s := file_status(server))["problems"] and s)
    (problem,) = status["problems"]
    assert (problem["line"], problem["rule"], problem["field"]) == (11, "FileSlow", "window")
    assert not status["ok"] and status["rules"] == 2
    assert rule_names(server) == {"FileErrors", "FileSlow"}
    assert f"{path}:11: rule 'FileSlow': field 'window'" in server.log()
    # A valid file is picked up when it changes, no signal needed.
    path.write_text(THREE_RULES)
    wait_until(lambda: rule_names(server) == {"FileErrors", "FileSlow", "FileSpend"})
    assert file_status(server)["ok"]
    server.stop()
    # Restarted with an invalid file, the server runs the last good copy it kept, and says so.
    path.write_text(BAD_RULES)
    server = ServerProcess(server.data_dir).start()
    assert rule_names(server) == {"FileErrors", "FileSlow", "FileSpend"}
    status = file_status(server)
    assert not status["ok"] and "last good copy" in status["note"] and status["problems"][0]["line"] == 11
    server.stop()
