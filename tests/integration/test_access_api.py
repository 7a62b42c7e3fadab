"""Access control on a live server: every route of the API answers anonymous requests with 401, a principal of
another project with 403 or a 404 that does not tell whether the object exists, a viewer cannot change anything,
an editor can change rules and markers of its project, an admin manages users and keys; and nothing of project A
reaches a user or key of project B. Calls arrive over OTLP from the OpenTelemetry SDK with each project's key.

Each test names the routes it covers (`covers`); test_every_route_has_a_case fails when the running server has a
route no test covers, so a route added later (budgets, prices, retention) cannot go untested.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.access import Role
from tests.access_parts import (
    PASSWORD,
    PEOPLE,
    READ_KEY_A,
    WRITE_KEY_A,
    Sent,
    seed_users,
    send_calls,
    server_env,
    sign_in,
)
from tests.helpers import ServerProcess

COVERED: set[str] = set()
PUBLIC = {"POST /auth/login"}


def covers(*routes: str):
    COVERED.update(routes)
    return lambda fn: fn


class Api:
    """The running server's API, asked as one principal or another."""

    def __init__(self, server: ServerProcess, tokens: dict[str, str], sent: dict[str, list[Sent]]) -> None:
        self.server = server
        self.url = server.http_url + "/api/v1"
        self.tokens = tokens
        self.sent = sent
        self.http = httpx.Client(base_url=self.url, timeout=60)

    def __call__(self, who: str | None, method: str, path: str, body: Any = None, **params: Any) -> httpx.Response:
        token = self.tokens.get(who, who) if who else None
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return self.http.request(method, path, params=params, json=body, headers=headers)

    def ok(self, who: str | None, method: str, path: str, body: Any = None, **params: Any) -> Any:
        answer = self(who, method, path, body, **params)
        assert answer.status_code in (200, 201, 202), (who, method, path, answer.status_code, answer.text)
        return answer.json()

    def audit(self, kind: str, object_id: str) -> list[dict[str, Any]]:
        rows = self.ok("root", "GET", "/audit", kind=kind)["entries"]
        return [r for r in rows if r["object_id"] == object_id]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("access") / "data"
    seed_users(data)
    server = ServerProcess(data, env=server_env()).start()
    try:
        sent = {
            "A": send_calls(server.http_url, "A", "shop-a", [120.0, 340.0, 560.0, 780.0, 900.0], "gpt-4o-mini"),
            "B": send_calls(server.http_url, "B", "bank-b", [50.0, 60.0, 70.0], "gpt-4.1"),
        }
        tokens = {name: sign_in(server.http_url + "/api/v1", name) for name in PEOPLE}
        tokens |= {"read_key_a": READ_KEY_A, "write_key_a": WRITE_KEY_A}
        client = Api(server, tokens, sent)
        yield client
        client.http.close()
        log = server.log()
        for secret in [PASSWORD, READ_KEY_A, WRITE_KEY_A, *tokens.values()]:
            assert secret not in log, "a secret reached the server log"
    finally:
        assert server.stop() == 0


def _openapi_routes(api: Api) -> dict[str, dict[str, Any]]:
    spec = httpx.get(api.url + "/openapi.json", timeout=30).json()
    return {f"{m.upper()} {p}": op for p, ops in spec["paths"].items() for m, op in ops.items()}


def _example_path(path: str) -> str:
    fill = {"trace_id": "0" * 32, "span_id": "0" * 16, "notification_id": "1"}
    return re.sub(r"\{(\w+)\}", lambda m: fill.get(m.group(1), "x"), path)


# -- every route -----------------------------------------------------------------------------------------------


def test_every_route_has_a_case(api: Api) -> None:
    served = set(_openapi_routes(api))
    assert served - COVERED == set(), "routes without an access test"
    assert COVERED - served == set(), "tests of routes that no longer exist"


def test_anonymous_requests_are_401_on_every_route(api: Api) -> None:
    for route in _openapi_routes(api):
        if route in PUBLIC:
            continue
        method, path = route.split(" ", 1)
        answer = api(None, method, _example_path(path), body={})
        assert answer.status_code == 401, route
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["error"].startswith("signed out")
        bad = api("not-a-token-of-anyone", method, _example_path(path), body={})
        assert bad.status_code == 401, route


def test_a_viewer_changes_nothing_anywhere(api: Api) -> None:
    """Every changing route refuses viewers and read keys (403, or 404 for what they cannot see), before any
    change: the audit log is as long afterwards as before."""
    before = len(api.ok("root", "GET", "/audit", limit=100000)["entries"])
    changing = [r for r in _openapi_routes(api) if not r.startswith("GET ") and r not in PUBLIC]
    changing = [r for r in changing if r not in ("POST /alerts/preview", "POST /auth/logout")]
    assert len(changing) >= 10
    for route in changing:
        method, path = route.split(" ", 1)
        for who in ("viewer_a", "viewer_b", "read_key_a"):
            body = {"project": "A", "service": "s", "release": "r", "name": "n", "role": "viewer"}
            answer = api(who, method, _example_path(path), body=body)
            assert answer.status_code in (403, 404), (who, route, answer.status_code, answer.text)
    assert len(api.ok("root", "GET", "/audit", limit=100000)["entries"]) == before


# -- calls, statistics, values, exports, traces ------------------------------------------------------------------


@covers("GET /stats", "GET /meta")
def test_statistics_are_cut_to_the_askers_projects(api: Api) -> None:
    a, b = len(api.sent["A"]), len(api.sent["B"])
    calls = lambda who, **f: api.ok(who, "GET", "/stats", metrics="calls", last="1h", **f)["data"][0]["calls"]  # noqa: E731
    assert calls("root") == a + b
    assert calls("viewer_a") == a and calls("read_key_a") == a and calls("editor_a") == a
    assert calls("viewer_b") == b
    assert calls("viewer_b", project="A") == 0  # asking for A gives nothing, not A's numbers
    grouped = api.ok("viewer_b", "GET", "/stats", metrics="calls", group_by="project", last="1h")["data"]
    assert grouped == [{"project": "B", "calls": b}]
    assert "metrics" in api.ok("viewer_b", "GET", "/meta")


@covers("GET /values/{dimension}", "GET /changes", "GET /histogram")
def test_values_lists_changes_and_histograms_hold_no_other_project(api: Api) -> None:
    values = api.ok("viewer_b", "GET", "/values/service", last="1h")["values"]
    assert values == [{"service": "bank-b", "calls": 3}]
    assert [v["project"] for v in api.ok("root", "GET", "/values/project", last="1h")["values"]] == ["A", "B"]
    assert [v["project"] for v in api.ok("viewer_a", "GET", "/values/project", last="1h")["values"]] == ["A"]
    changes = api.ok("viewer_b", "GET", "/changes", metric="calls", dims="service", last="1h")
    assert changes["now"] == 3 and {c["service"] for c in changes["contributors"]} == {"bank-b"}
    hist = api.ok("viewer_a", "GET", "/histogram", last="1h", scale="linear", bins=5)
    assert sum(row["calls"] for row in hist["data"]) == len(api.sent["A"])


@covers("GET /calls", "GET /calls/{trace_id}/{span_id}", "GET /traces/{trace_id}", "GET /export")
def test_calls_traces_and_exports_of_another_project_are_not_found(api: Api) -> None:
    listed = api.ok("viewer_b", "GET", "/calls", last="1h", limit=100)
    assert {row["trace_id"] for row in listed["data"]} == {s.trace_id for s in api.sent["B"]}
    assert listed["meta"]["total"] == 3
    mine, theirs = api.sent["B"][0], api.sent["A"][0]
    assert api.ok("viewer_b", "GET", f"/calls/{mine.trace_id}/{mine.span_id}")["duration_ms"] == pytest.approx(50.0)
    hidden = api("viewer_b", "GET", f"/calls/{theirs.trace_id}/{theirs.span_id}")
    missing = api("viewer_b", "GET", f"/calls/{'1' * 32}/{'1' * 16}")
    assert hidden.status_code == missing.status_code == 404  # the same answer as a call that does not exist
    assert api("viewer_b", "GET", f"/traces/{theirs.trace_id}").status_code == 404
    assert api.ok("viewer_a", "GET", f"/traces/{theirs.trace_id}")["spans"][0]["span_id"] == theirs.span_id
    exported = list(csv.DictReader(io.StringIO(api("viewer_b", "GET", "/export", format="csv", last="1h").text)))
    assert sorted(r["trace_id"] for r in exported) == sorted(s.trace_id for s in api.sent["B"])
    assert {r["project"] for r in exported} == {"B"}
    lines = api("read_key_a", "GET", "/export", format="jsonl", last="1h").text.splitlines()
    assert sorted(json.loads(x)["trace_id"] for x in lines) == sorted(s.trace_id for s in api.sent["A"])


# -- drift, anomalies, releases ------------------------------------------------------------------------------------


@covers("GET /drift", "GET /drift/runs", "GET /drift/history", "GET /drift/compare", "GET /drift/distribution")
def test_drift_reads_only_the_askers_projects(api: Api) -> None:
    now = datetime.now(UTC)
    iso = lambda hours: (now + timedelta(hours=hours)).isoformat()  # noqa: E731
    windows = {"reference_from": iso(-3), "reference_to": iso(-1), "current_from": iso(-1), "current_to": iso(0.1)}
    everyone = api.ok("root", "GET", "/drift/compare", format="json", **windows)["data"]
    assert {r["project"] for r in everyone} == {"A", "B"}
    for who, project in (("viewer_b", "B"), ("viewer_a", "A")):
        rows = api.ok(who, "GET", "/drift/compare", format="json", **windows)["data"]
        assert rows and {r["project"] for r in rows} == {project}
        assert {r["project"] for r in api.ok(who, "GET", "/drift", format="json")["data"]} <= {project}
        assert {r["project"] for r in api.ok(who, "GET", "/drift/history", format="json")["data"]} <= {project}
        runs = api.ok(who, "GET", "/drift/runs")["runs"]  # the server's first run counts cells of every project
        assert runs and all("cells" not in r and "drifted_cells" not in r for r in runs)
    assert all("cells" in r for r in api.ok("root", "GET", "/drift/runs")["runs"])
    dist = {"metric": "latency", "service": "shop-a", "model": "gpt-4o-mini", "project": "A"}
    assert api("viewer_b", "GET", "/drift/distribution", **dist, **windows).status_code == 404
    assert api("viewer_b", "GET", "/drift/distribution", **(dist | {"project": "Z"}), **windows).status_code == 404
    assert api.ok("viewer_a", "GET", "/drift/distribution", **dist, **windows)["n_current"] == len(api.sent["A"])


@covers("GET /anomalies", "GET /anomalies/series")
def test_anomalies_answer_viewers_of_any_project(api: Api) -> None:
    # Scores need weeks of history (the job's own tests cover them); here: the routes are viewers', cut by project
    # (tests/unit/test_access_filters.py checks the cut on stored scores of two projects).
    assert api.ok("viewer_b", "GET", "/anomalies")["anomalies"] == []
    assert api.ok("viewer_b", "GET", "/anomalies/series", format="json")["data"] == []


@covers("GET /releases", "POST /releases")
def test_release_markers_are_changed_by_editors_of_their_project(api: Api) -> None:
    marker = {"service": "shop-a", "release": "prompt-v9", "project": "A"}
    assert api("viewer_a", "POST", "/releases", marker).status_code == 403
    assert api("editor_b", "POST", "/releases", marker).status_code == 404  # B's editor does not learn A exists
    assert api.ok("editor_a", "POST", "/releases", marker)["release"]["project"] == "A"
    assert api.ok("write_key_a", "POST", "/releases", marker | {"release": "prompt-v10"})["release"]["release"]
    assert api.ok("editor_b", "POST", "/releases", marker | {"project": "B", "service": "bank-b"})
    seen = lambda who: {(m["project"], m["release"]) for m in api.ok(who, "GET", "/releases")["releases"]}  # noqa: E731
    assert ("A", "prompt-v9") in seen("viewer_a") and all(p == "A" for p, _ in seen("viewer_a"))
    assert seen("viewer_b") == {("B", "prompt-v9")}


# -- alert rules, instances, history, preview ----------------------------------------------------------------------

RULE_A = {"name": "a-calls", "metric": "calls", "window": "1h", "op": ">", "critical": 0, "interval": "10s",
          "filters": {"project": "A"}}  # fmt: skip
RULE_ALL = {"name": "all-calls", "metric": "calls", "window": "1h", "op": ">", "critical": 0, "interval": "10s"}


@covers("POST /alerts/rules", "PUT /alerts/rules/{name}", "DELETE /alerts/rules/{name}", "GET /alerts/rules",
        "GET /alerts/rules/{name}", "GET /alerts/file")  # fmt: skip
def test_rules_are_seen_and_changed_per_project_and_audited_once(api: Api) -> None:
    assert api("viewer_a", "POST", "/alerts/rules", RULE_A).status_code == 403
    assert api("editor_b", "POST", "/alerts/rules", RULE_A).status_code == 403
    assert api("editor_a", "POST", "/alerts/rules", RULE_ALL).status_code == 403  # a rule over every project
    assert api.ok("editor_a", "POST", "/alerts/rules", RULE_A)["name"] == "a-calls"
    assert api.ok("root", "POST", "/alerts/rules", RULE_ALL)["name"] == "all-calls"
    names = lambda who: {r["name"] for r in api.ok(who, "GET", "/alerts/rules")["rules"]}  # noqa: E731
    assert names("root") >= {"a-calls", "all-calls"}
    assert names("viewer_a") == {"a-calls"} and names("viewer_b") == set()
    assert api("viewer_b", "GET", "/alerts/rules/a-calls").status_code == 404
    assert api.ok("viewer_a", "GET", "/alerts/rules/a-calls")["spec"]["filters"] == {"project": "A"}
    assert api("viewer_a", "GET", "/alerts/rules/all-calls").status_code == 404
    assert api("editor_b", "PUT", "/alerts/rules/a-calls", RULE_A | {"critical": 5}).status_code == 404
    assert api("editor_a", "PUT", "/alerts/rules/a-calls", RULE_A | {"filters": {"project": "B"}}).status_code == 403
    assert api.ok("editor_a", "PUT", "/alerts/rules/a-calls", RULE_A | {"critical": 2})["spec"]["critical"] == 2
    assert api("editor_a", "DELETE", "/alerts/rules/all-calls").status_code == 404
    assert "rules" not in api.ok("viewer_a", "GET", "/alerts/file") or True
    assert set(api.ok("viewer_a", "GET", "/alerts/file")) <= set(api.ok("root", "GET", "/alerts/file"))

    rows = api.audit("rule", "a-calls")
    assert Counter(r["action"] for r in rows) == Counter({"create": 1, "update": 1})
    update = next(r for r in rows if r["action"] == "update")
    assert update["actor"] == "editor_a" and update["project"] == "A"
    assert update["before"]["critical"] == 0 and update["after"]["critical"] == 2
    create = next(r for r in rows if r["action"] == "create")
    assert create["before"] is None and create["after"]["filters"] == {"project": "A"}


@covers("GET /alerts/instances", "GET /alerts/history", "POST /alerts/preview")
def test_alert_instances_history_and_previews_of_another_project_are_hidden(api: Api) -> None:
    if not any(r["name"] == "all-calls" for r in api.ok("root", "GET", "/alerts/rules")["rules"]):
        api.ok("root", "POST", "/alerts/rules", RULE_ALL)
    if not any(r["name"] == "a-calls" for r in api.ok("root", "GET", "/alerts/rules")["rules"]):
        api.ok("editor_a", "POST", "/alerts/rules", RULE_A)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the evaluation ticks every 10 s: wait until both rules have instances
        rules = {i["rule"] for i in api.ok("root", "GET", "/alerts/instances")["instances"]}
        if {"a-calls", "all-calls"} <= rules:
            break
        time.sleep(0.5)
    assert {"a-calls", "all-calls"} <= rules
    assert {i["rule"] for i in api.ok("viewer_a", "GET", "/alerts/instances")["instances"]} == {"a-calls"}
    assert api.ok("viewer_b", "GET", "/alerts/instances")["instances"] == []
    assert {h["rule_id"] for h in api.ok("viewer_a", "GET", "/alerts/history")["history"]} == {"a-calls"}
    assert api.ok("viewer_b", "GET", "/alerts/history", rule="all-calls")["history"] == []
    assert api.ok("root", "GET", "/alerts/history", rule="all-calls")["history"]

    spec = {"metric": "calls", "window": "1h", "op": ">", "critical": 0, "interval": "1m"}
    peak = lambda who: max(v for s in api.ok(who, "POST", "/alerts/preview", spec, last="1h")["series"]  # noqa: E731
                           for _, v in s["points"] if v is not None)  # fmt: skip
    assert peak("root") == len(api.sent["A"]) + len(api.sent["B"])
    assert peak("viewer_b") == len(api.sent["B"])  # a preview without a project reads only the asker's
    assert api("viewer_b", "POST", "/alerts/preview", spec | {"filters": {"project": "A"}}).status_code == 404


# -- server-wide objects: silences, notifications, digests, receivers ------------------------------------------------


@covers("GET /alerts/silences", "POST /alerts/silences", "DELETE /alerts/silences/{silence_id}",
        "GET /alerts/notifications", "GET /alerts/notifications/{notification_id}", "GET /alerts/groups",
        "GET /alerts/receivers", "GET /digests", "POST /digests/{name}/send")  # fmt: skip
def test_server_wide_objects_need_the_role_on_every_project(api: Api) -> None:
    for path in ("/alerts/silences", "/alerts/notifications", "/alerts/groups", "/alerts/receivers", "/digests"):
        assert api("viewer_a", "GET", path).status_code == 403, path
        assert api("admin_a", "GET", path).status_code == 403, path
        api.ok("root", "GET", path)
    assert api("viewer_a", "GET", "/alerts/notifications/1").status_code == 403
    assert api("root", "GET", "/alerts/notifications/999999").status_code == 404
    assert api("editor_a", "POST", "/digests/weekly/send").status_code == 403
    assert api("root", "POST", "/digests/weekly/send").status_code == 404  # past the check: no such digest

    silence = {
        "matchers": [{"name": "alertname", "value": "a-calls"}],
        "duration": "1h",
        "created_by": "ops",
        "comment": "deploy",
    }
    assert api("editor_a", "POST", "/alerts/silences", silence).status_code == 403
    made = api.ok("root", "POST", "/alerts/silences", silence)
    assert api("editor_a", "DELETE", f"/alerts/silences/{made['id']}").status_code == 403
    expired = api.ok("root", "DELETE", f"/alerts/silences/{made['id']}")
    assert expired["state"] == "expired"
    rows = api.audit("silence", made["id"])
    assert Counter(r["action"] for r in rows) == Counter({"create": 1, "expire": 1})
    expire = next(r for r in rows if r["action"] == "expire")
    assert expire["before"]["state"] == "active" and expire["after"]["state"] == "expired"
    assert expire["actor"] == "root"


# -- sign-in, users, keys, audit -----------------------------------------------------------------------------------


@covers("POST /auth/login", "POST /auth/logout", "GET /auth/me")
def test_sign_in_and_out(api: Api) -> None:
    assert api(None, "POST", "/auth/login", {"name": "viewer_a", "password": "wrong password"}).status_code == 401
    assert api(None, "POST", "/auth/login", {"name": "nobody", "password": PASSWORD}).status_code == 401
    assert api(None, "POST", "/auth/login", {"name": "viewer_a"}).status_code == 400
    token = sign_in(api.url, "viewer_a")
    assert api.ok(token, "GET", "/auth/me") == {
        "name": "viewer_a",
        "kind": "user",
        "local_mode": False,
        "grants": {"A": "viewer"},
    }
    assert api.ok(token, "POST", "/auth/logout") == {"signed_out": True}
    assert api(token, "GET", "/auth/me").status_code == 401
    assert api(token, "GET", "/stats").status_code == 401
    assert api.ok("read_key_a", "GET", "/auth/me")["grants"] == {"A": "viewer"}
    assert api.ok("write_key_a", "GET", "/auth/me")["grants"] == {"A": "editor"}


def test_guessing_a_password_is_slowed_down(api: Api) -> None:
    """After 5 wrong passwords for a name, further attempts are 429 with Retry-After, the right password too
    (guessing gains nothing by trying), until the delay passes; then the right password signs in."""
    wrong = {"name": "editor_b", "password": "not the password"}
    assert [api(None, "POST", "/auth/login", wrong).status_code for _ in range(5)] == [401] * 5
    refused = api(None, "POST", "/auth/login", {"name": "editor_b", "password": PASSWORD})
    assert refused.status_code == 429, refused.text
    wait = int(refused.headers["retry-after"])
    assert wait >= 1 and "too many failed sign-ins" in refused.json()["error"]
    assert api(None, "POST", "/auth/login", {"name": "viewer_a", "password": PASSWORD}).status_code == 200
    time.sleep(wait + 0.1)
    assert api(None, "POST", "/auth/login", {"name": "editor_b", "password": PASSWORD}).status_code == 200
    assert api(None, "POST", "/auth/login", wrong).status_code == 401  # the success cleared the count


@covers("GET /access/users", "POST /access/users", "PUT /access/users/{name}/grants/{project}",
        "DELETE /access/users/{name}")  # fmt: skip
def test_admins_manage_the_users_of_their_projects(api: Api) -> None:
    new = {"name": "carol", "password": "carol-password-1", "grants": {"A": "viewer"}}
    assert api("editor_a", "POST", "/access/users", new).status_code == 403
    assert api("admin_a", "POST", "/access/users", new | {"grants": {"B": "viewer"}}).status_code == 404
    assert api("admin_a", "POST", "/access/users", new | {"grants": {"*": "viewer"}}).status_code == 403
    assert api("admin_a", "POST", "/access/users", new | {"password": "short"}).status_code == 400
    assert api.ok("admin_a", "POST", "/access/users", new)["grants"] == {"A": "viewer"}
    assert api("admin_a", "POST", "/access/users", new).status_code == 409
    carol = sign_in(api.url, "carol", "carol-password-1")
    assert api("carol", "GET", "/stats").status_code == 401 and api.ok(carol, "GET", "/stats", metrics="calls")

    listed = {u["name"]: u["grants"] for u in api.ok("admin_a", "GET", "/access/users")["users"]}
    assert set(listed) == {"root", "viewer_a", "editor_a", "admin_a", "carol"}  # those with a grant on A
    assert listed["root"] == {"*": "admin"} and listed["admin_a"] == {"A": "admin"}
    assert api("editor_a", "GET", "/access/users").status_code == 403

    assert api("admin_a", "PUT", "/access/users/viewer_b/grants/A", {"role": "viewer"}).status_code == 404
    assert api("admin_a", "PUT", "/access/users/carol/grants/B", {"role": "viewer"}).status_code == 404
    assert api.ok("admin_a", "PUT", "/access/users/carol/grants/A", {"role": "editor"})["grants"] == {"A": "editor"}
    assert api.ok(carol, "GET", "/auth/me")["grants"] == {"A": "editor"}  # the role counts from the next request
    assert api("admin_a", "DELETE", "/access/users/viewer_b").status_code == 404
    assert api.ok("admin_a", "DELETE", "/access/users/carol") == {"removed": "carol"}
    assert api(carol, "GET", "/stats").status_code == 401  # removing a user ends their sessions

    rows = api.audit("user", "carol")
    assert Counter(r["action"] for r in rows) == Counter({"create": 1, "update": 1, "delete": 1})
    update = next(r for r in rows if r["action"] == "update")
    assert update["before"]["grants"] == {"A": "viewer"} and update["after"]["grants"] == {"A": "editor"}
    assert all(r["actor"] == "admin_a" for r in rows)
    assert all("hash" not in json.dumps(r) and "carol-password-1" not in json.dumps(r) for r in rows)


@covers("GET /access/keys", "POST /access/keys", "DELETE /access/keys/{key_id}")
def test_admins_make_keys_scoped_to_one_project(api: Api) -> None:
    assert api("editor_a", "POST", "/access/keys", {"project": "A", "role": "viewer"}).status_code == 403
    assert api("admin_a", "POST", "/access/keys", {"project": "B", "role": "viewer"}).status_code == 404
    made = api.ok("admin_a", "POST", "/access/keys", {"project": "A", "role": "viewer", "note": "grafana"})
    key = made.pop("key")
    assert key.startswith("cs_") and made["project"] == "A" and made["role"] == "viewer"
    calls = api.ok(key, "GET", "/stats", metrics="calls", last="1h")["data"][0]["calls"]
    assert calls == len(api.sent["A"])
    assert api(key, "POST", "/releases", {"service": "s", "release": "r", "project": "A"}).status_code == 403
    assert [k["id"] for k in api.ok("admin_a", "GET", "/access/keys")["keys"]] == [made["id"]]
    assert key not in json.dumps(api.ok("root", "GET", "/access/keys"))
    assert api("root", "DELETE", "/access/keys/nope").status_code == 404
    assert api.ok("admin_a", "DELETE", f"/access/keys/{made['id']}") == {"revoked": made["id"]}
    assert api(key, "GET", "/stats").status_code == 401
    rows = api.audit("key", made["id"])
    assert Counter(r["action"] for r in rows) == Counter({"create": 1, "delete": 1})
    assert key not in json.dumps(rows)


@covers("GET /audit")
def test_the_audit_log_is_for_admins_of_the_project_and_exports(api: Api) -> None:
    api.ok("editor_a", "POST", "/releases", {"service": "shop-a", "release": "audit-probe", "project": "A"})
    assert api("editor_a", "GET", "/audit").status_code == 403
    mine = api.ok("admin_a", "GET", "/audit")["entries"]
    assert mine and {r["project"] for r in mine} == {"A"}
    everything = api.ok("root", "GET", "/audit", limit=100000)["entries"]
    assert len(everything) > len(mine)
    exported = list(csv.DictReader(io.StringIO(api("root", "GET", "/audit", format="csv", limit=100000).text)))
    assert [int(r["id"]) for r in exported] == [r["id"] for r in everything]
    assert [json.loads(r["after"]) if r["after"] else None for r in exported] == [r["after"] for r in everything]
    lines = api("admin_a", "GET", "/audit", format="jsonl").text.splitlines()
    assert [json.loads(x)["id"] for x in lines] == [r["id"] for r in mine]
    assert api("root", "GET", "/audit", format="xml").status_code == 400


# -- requests a browser could be made to send --------------------------------------------------------------------


def test_cookies_and_cross_site_forms_carry_no_credential(api: Api) -> None:
    """The API reads credentials from headers only: a cookie holding a valid session token, or a form posted
    from another site, is anonymous; and no CORS header lets another origin read an answer."""
    token = api.tokens["root"]
    with httpx.Client(base_url=api.url, cookies={"session": token, "token": token}, timeout=30) as browser_like:
        assert browser_like.get("/stats").status_code == 401
    form = api.http.post(
        "/alerts/rules", content=b"name=x", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert form.status_code == 401
    preflight = api.http.options(
        "/alerts/rules", headers={"origin": "https://evil.example", "access-control-request-method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert api.http.get("/stats", params={"token": token, "key": token}).status_code in (400, 401)


def test_sessions_expire(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seed_users(data, {"brief": {"A": Role.viewer}})
    server = ServerProcess(data, env=server_env() | {"CALLSCOPE_SESSION_HOURS": "0.001"}).start()  # 3.6 s
    try:
        url = server.http_url + "/api/v1"
        answer = httpx.post(url + "/auth/login", json={"name": "brief", "password": PASSWORD}, timeout=30).json()
        headers = {"authorization": f"Bearer {answer['token']}"}
        assert httpx.get(url + "/auth/me", headers=headers, timeout=30).status_code == 200
        expires = datetime.fromisoformat(answer["expires_at"])
        assert 3 <= (expires - datetime.now(UTC)).total_seconds() <= 3.7
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and datetime.now(UTC) <= expires:
            time.sleep(0.2)
        assert httpx.get(url + "/auth/me", headers=headers, timeout=30).status_code == 401
    finally:
        assert server.stop() == 0


# -- budgets and the price book ------------------------------------------------------------------------------------


@covers("GET /budgets", "GET /budgets/{name}", "POST /budgets", "PUT /budgets/{name}", "DELETE /budgets/{name}")
def test_budgets_are_seen_and_changed_per_project_and_audited_once(api: Api) -> None:
    """A budget belongs to the projects of its `project` filter (none: every project): seen by whoever views all
    of them, changed by whoever edits all of them, and another project's budget is not found (not forbidden)."""
    a_budget = {"name": "a-monthly", "amount_usd": 10, "filters": {"project": "A"}}
    assert api("viewer_a", "POST", "/budgets", a_budget).status_code == 403
    assert api("editor_b", "POST", "/budgets", a_budget).status_code == 404
    api.ok("editor_a", "POST", "/budgets", a_budget)
    wide = {"name": "all-monthly", "amount_usd": 100}
    assert api("editor_a", "POST", "/budgets", wide).status_code == 403
    api.ok("root", "POST", "/budgets", wide)

    def names(who: str) -> list[str]:
        return sorted(b["budget"]["name"] for b in api.ok(who, "GET", "/budgets")["budgets"])

    assert names("viewer_a") == ["a-monthly"] and names("read_key_a") == ["a-monthly"]
    assert names("viewer_b") == [] and names("root") == ["a-monthly", "all-monthly"]
    assert api("viewer_b", "GET", "/budgets/a-monthly").status_code == 404
    assert api("viewer_a", "GET", "/budgets/all-monthly").status_code == 404
    assert api.ok("viewer_a", "GET", "/budgets/a-monthly")["budget"]["name"] == "a-monthly"

    raised = {**a_budget, "amount_usd": 20}
    assert api("editor_b", "PUT", "/budgets/a-monthly", raised).status_code == 404
    assert api("viewer_a", "PUT", "/budgets/a-monthly", raised).status_code == 403
    api.ok("editor_a", "PUT", "/budgets/a-monthly", raised)
    assert api("editor_b", "DELETE", "/budgets/a-monthly").status_code == 404
    api.ok("editor_a", "DELETE", "/budgets/a-monthly")
    api.ok("root", "DELETE", "/budgets/all-monthly")
    rows = api.audit("budget", "a-monthly")
    assert Counter(r["action"] for r in rows) == Counter({"create": 1, "update": 1, "delete": 1})
    update = next(r for r in rows if r["action"] == "update")
    assert (update["before"]["amount_usd"], update["after"]["amount_usd"]) == (10, 20)
    assert {r["actor"] for r in rows} == {"editor_a"} and {r["project"] for r in rows} == {"A"}


@covers("GET /prices/entries", "GET /prices/audit", "POST /prices/entries", "PUT /prices/entries/{entry_id}",
        "DELETE /prices/entries/{entry_id}", "POST /prices/reprice", "GET /prices/reprice/{run_id}",
        "GET /prices/coverage", "GET /prices/whatif")  # fmt: skip
def test_the_price_book_is_changed_with_the_role_on_every_project_and_reads_are_cut(api: Api) -> None:
    """A price applies to every project's calls: changing the book or re-pricing needs the editor role on every
    project; coverage and what-if count only the asker's calls."""
    entry = {"provider": "openai", "model": "acl-probe-model", "input_mtok": 1.0, "output_mtok": 2.0}
    assert api("editor_a", "POST", "/prices/entries", entry).status_code == 403
    made = api.ok("root", "POST", "/prices/entries", entry)
    path = f"/prices/entries/{made['entry_id']}"
    assert any(e["model"] == "acl-probe-model" for e in api.ok("viewer_b", "GET", "/prices/entries")["entries"])
    assert api("editor_a", "PUT", path, {**entry, "output_mtok": 3.0}).status_code == 403
    api.ok("root", "PUT", path, {**entry, "output_mtok": 3.0})
    assert api("editor_a", "DELETE", path).status_code == 403
    api.ok("root", "DELETE", path)
    rows = api.audit("price", str(made["entry_id"]))
    assert Counter(r["action"] for r in rows) == Counter({"create": 1, "update": 1, "delete": 1})
    assert {r["actor"] for r in rows} == {"root"}
    book = [c for c in api.ok("viewer_a", "GET", "/prices/audit")["changes"] if c["entry_id"] == made["entry_id"]]
    assert len(book) == 3

    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert api("editor_a", "POST", "/prices/reprice", None, **{"from": since}).status_code == 403
    started = api("root", "POST", "/prices/reprice", None, **{"from": since})
    assert started.status_code == 202, started.text
    assert (
        api.ok("viewer_a", "GET", f"/prices/reprice/{started.json()['run_id']}")["run_id"] == started.json()["run_id"]
    )

    for who, project in (("viewer_a", "A"), ("viewer_b", "B")):
        coverage = api.ok(who, "GET", "/prices/coverage", last="1h")
        assert coverage["meta"]["calls"] == len(api.sent[project]), who
        other = api.sent["B" if project == "A" else "A"][0].model
        pairs = api.ok(who, "GET", "/prices/whatif", last="1h", other=other)["rows"]
        assert [(r["model"], r["calls"]) for r in pairs] == [(api.sent[project][0].model, len(api.sent[project]))]


# -- retention and deletion by user ----------------------------------------------------------------------------------


@covers("GET /retention", "GET /storage", "POST /retention/run", "DELETE /users/{user_id}")
def test_retention_runs_and_deletions_by_user_are_for_admins(api: Api) -> None:
    assert set(api.ok("viewer_b", "GET", "/retention")["raw_calls_removed_before"]) <= {"B"}
    assert api("viewer_a", "GET", "/storage").status_code == 403  # every project's tables
    assert api.ok("root", "GET", "/storage")
    assert api("admin_a", "POST", "/retention/run", None, dry_run="true").status_code == 403
    assert api.ok("root", "POST", "/retention/run", None, dry_run="true")["dry_run"] is True
    assert api("editor_a", "DELETE", "/users/probe-user", None, project="A").status_code == 403
    assert api("admin_a", "DELETE", "/users/probe-user", None, project="B").status_code == 404
    assert api("admin_a", "DELETE", "/users/probe-user").status_code == 403  # every project: admins of all
    assert api.ok("admin_a", "DELETE", "/users/probe-user", None, project="A")["user_id"] == "probe-user"
    rows = api.ok("root", "GET", "/audit", kind="user_data")["entries"]
    assert [(r["actor"], r["action"], r["project"]) for r in rows] == [("admin_a", "delete", "A")]
    assert "probe-user" not in json.dumps(rows)  # the log does not keep what was asked to be forgotten
