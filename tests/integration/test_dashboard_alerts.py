"""The dashboard's Alerts page (and the Overview's Firing alerts tile) through streamlit's AppTest against a real
`callscope serve`: calls written into its store, a rule created through the API firing over them, a rules file,
and an e-mail receiver whose SMTP server is down. Values on the page are checked against numpy over the same rows;
changes made on the page (a silence, a rule) are read back from the API.

The calls: 2,000 background calls from 3 days to 4 hours ago, and a burst in the last 45 minutes that the rule's 3-hour
window sees alone: support-bot fails 20 of 40 calls, summarizer 4 of 40, search-rerank none of 40.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import fmt
from tests.alert_calls import call
from tests.calls_factory import make_calls, store_rows
from tests.helpers import ROOT, ServerProcess, free_port

APP = ROOT / "dashboard" / "app.py"
PAGE = "views/alerts.py"
WINDOW = timedelta(hours=3)
RULE = {
    "name": "BurstErrors",
    "metric": "error_rate",
    "group_by": ["service"],
    "window": "3h",
    "op": ">",
    "warning": 0.05,
    "critical": 0.25,
    "interval": "10s",
}
FILE_RULES = """\
rules:
  - name: FileLatency
    metric: latency_p95
    window: 1h
    op: ">"
    warning: 600000
    interval: 10s
"""
CONFIG = """
smtp_security = "none"
smtp_from = "callscope@example.org"
smtp_timeout_seconds = 2
notify_interval_seconds = 0.5
notify_retry_seconds = 1
notify_retry_max_seconds = 2

[alerts.route]
receiver = "oncall"
group_by = ["alertname", "service"]
group_wait = "1s"
group_interval = "5m"

[[alerts.receivers]]
name = "oncall"
email_configs = [{ to = ["oncall@example.com"] }]
"""
BURST = {"support-bot": (40, 20), "summarizer": (40, 4), "search-rerank": (40, 0)}


def burst(now: datetime) -> list[dict[str, Any]]:
    rows = []
    for service, (n, errors) in BURST.items():
        start = now - timedelta(minutes=45)
        rows += [
            call(start + timedelta(seconds=60 * i), service=service, error=i < errors, duration_ms=300.0 + i)
            for i in range(n)
        ]
    return rows


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, list[dict[str, Any]]]]:
    data = Path(tmp_path_factory.mktemp("alerts_page"))
    now = datetime.now(UTC)
    rows = make_calls(2000, now - timedelta(days=3), now - timedelta(hours=4), seed=11) + burst(now)
    store_rows(data, rows)
    (data / "alerts.yaml").write_text(FILE_RULES)
    (data / "callscope.toml").write_text(CONFIG)
    smtp_down = free_port()  # nothing listens there: every delivery attempt is refused
    env = {"CALLSCOPE_SMTP_HOST": "127.0.0.1", "CALLSCOPE_SMTP_PORT": str(smtp_down)}
    proc = ServerProcess(data, env=env).start()
    created = httpx.post(f"{proc.http_url}/api/v1/alerts/rules", json=RULE, timeout=30)
    assert created.status_code == 201, created.text
    wait_until(lambda: len(firing(proc)) == 3, "the rule's three instances firing")
    yield proc, rows
    assert proc.stop() == 0, proc.log()


@pytest.fixture
def api(server: tuple[ServerProcess, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CALLSCOPE_API_URL", server[0].http_url + "/api/v1")
    monkeypatch.delenv("CALLSCOPE_API_KEY", raising=False)
    st.cache_data.clear()  # answers cached by an earlier test would hide what the API says now
    return server[0].http_url + "/api/v1"


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)
    return result


def get(api_or_proc: str | ServerProcess, path: str, **params: Any) -> Any:
    base = api_or_proc if isinstance(api_or_proc, str) else api_or_proc.http_url + "/api/v1"
    response = httpx.get(base + path, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def firing(proc: ServerProcess) -> list[dict[str, Any]]:
    return [i for i in get(proc, "/alerts/instances")["instances"] if i["firing"]]


def error_rate_at(rows: list[dict[str, Any]], service: str, start: datetime, end: datetime) -> float | None:
    picked = [r for r in rows if r["service"] == service and start <= r["start_time"] < end]
    return float(np.mean([r["status"] == "error" for r in picked])) if picked else None


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def alerts_page(query: dict[str, Any] | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.query_params.update(query or {})
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


TABLES = {  # a column only that table of the page has (AppTest knows read-only tables by their columns alone)
    "active_alerts": "fingerprint",
    "alert_rules": "last_value",
    "silences_table": "matchers",
    "undelivered": "last_error",  # the first of the two delivery tables
}


def table(at: AppTest, name: str) -> Any:
    """A table of the page, as a pandas frame."""
    for frame in at.dataframe:
        if TABLES[name] in frame.value.columns:
            return frame.value
    raise AssertionError(f"no table {name}")


def tiles(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def figures(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(json.loads(c.proto.json)["figure"]) for c in at.get("bidi_component")]


def test_the_page_shows_the_firing_rule_with_the_values_of_its_calls(api: str, server) -> None:
    proc, rows = server
    instances = get(api, "/alerts/instances")["instances"]
    burst_instances = [i for i in instances if i["rule"] == "BurstErrors"]
    # The server's numbers are those of the rows (numpy), at the instant it evaluated.
    expected: dict[tuple[str, str], float] = {}
    for inst in burst_instances:
        end = instant(inst["last_eval_at"])
        service = inst["labels"]["service"]
        rate = error_rate_at(rows, service, end - WINDOW, end)
        assert inst["value"] == pytest.approx(rate, abs=1e-12)
        expected[(service, inst["labels"]["severity"])] = rate
    assert expected[("support-bot", "critical")] == 0.5 and expected[("summarizer", "warning")] == 0.1
    want_firing = sorted(k for k, v in expected.items() if v > RULE[k[1]])
    assert want_firing == [("summarizer", "warning"), ("support-bot", "critical"), ("support-bot", "warning")]

    at = alerts_page()
    shown = tiles(at)
    assert (shown["Critical firing"], shown["Warning firing"], shown["Rules"]) == ("1", "2", "2")
    active = table(at, "active_alerts")
    assert list(zip(active["severity"], active["group"], active["value"], active["threshold"], strict=True)) == [
        ("critical", "service=support-bot", fmt.pct(0.5), fmt.pct(0.25)),
        ("warning", "service=support-bot", fmt.pct(0.5), fmt.pct(0.05)),
        ("warning", "service=summarizer", fmt.pct(0.1), fmt.pct(0.05)),
    ]
    assert set(active["state"]) == {"firing"} and set(active["rule"]) == {"BurstErrors"}

    rules = table(at, "alert_rules").set_index("rule")
    assert rules.loc["BurstErrors", "state"] == "firing" and rules.loc["BurstErrors", "firing"] == 3
    assert rules.loc["BurstErrors", "last_value"] == fmt.pct(0.5)  # of its most urgent instance
    assert rules.loc["BurstErrors", "source"] == "API (editable)"
    assert rules.loc["FileLatency", "source"] == f"file {proc.data_dir / 'alerts.yaml'}:2 (read-only)"
    assert rules.loc["FileLatency", "state"] == "normal"
    p95 = np.percentile([r["duration_ms"] for r in rows if r["start_time"] >= datetime.now(UTC) - WINDOW / 3], 95)
    assert rules.loc["FileLatency", "last_value"] == fmt.ms(p95)  # the last hour is the burst: stable

    # History: one firing bar per firing instance, starting when the API says it changed to firing.
    history = get(api, "/alerts/history", rule="BurstErrors")["history"]
    timeline = next(f for f in figures(at) if f["layout"]["title"]["text"].startswith("Alert states"))
    [bars] = [t for t in timeline["data"] if t["name"] == "firing"]
    started = {
        f"BurstErrors · service={h['labels']['service']} · {h['labels']['severity']}": instant(h["changed_at"])
        for h in history
        if h["to_state"] == "firing"
    }
    assert dict(zip(bars["y"], (instant(b) for b in bars["base"]), strict=True)) == started


def test_an_alert_links_to_its_breaching_calls(api: str, server) -> None:
    _, rows = server
    at = alerts_page()
    active = table(at, "active_alerts")
    link = active.loc[(active["severity"] == "critical"), "calls"].iloc[0]
    query = parse_qs(urlsplit(link).query)
    assert urlsplit(link).path.endswith("calls") and query["service"] == ["support-bot"]
    assert query["status"] == ["error"]
    start, end = instant(query["from"][0]), instant(query["to"][0])
    assert end - start == WINDOW
    # The link opens the Calls page on exactly the support-bot calls that failed in the evaluated window.
    calls = AppTest.from_file(str(APP), default_timeout=90)
    calls.query_params.update({k: v if len(v) > 1 else v[0] for k, v in query.items()})
    calls.run()
    calls.switch_page("views/calls.py").run()
    assert not calls.exception, [e.value for e in calls.exception]
    want = [
        r for r in rows if r["service"] == "support-bot" and r["status"] == "error" and start <= r["start_time"] < end
    ]
    assert len(want) == 20
    caption = next(c.value for c in calls.caption if "Select a row" in c.value)
    assert f"of {len(want):,} in the" in caption


def test_the_overview_tile_counts_firing_alerts(api: str, server) -> None:
    want = {"critical": 0, "warning": 0}
    for inst in firing(server[0]):
        want[inst["labels"]["severity"]] += 1
    assert want == {"critical": 1, "warning": 2}
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = tiles(at)
    assert (shown["Critical firing"], shown["Warning firing"]) == ("1", "2")
    assert "Firing alerts" in [h.value for h in at.subheader]


def test_a_silence_created_on_the_page_is_in_the_api_and_expires_from_it(api: str) -> None:
    at = alerts_page()
    warning = next(
        i
        for i in firing_instances(api)
        if i["labels"]["severity"] == "warning" and i["labels"]["service"] == "support-bot"
    )
    at.selectbox(key="silence_from").set_value(warning["fingerprint"]).run()
    assert at.text_area(key="silence_matchers").value.splitlines() == [
        f'{k}="{v}"' for k, v in warning["labels"].items()
    ]
    at.text_input(key="silence_duration").input("90m")
    at.text_input(key="silence_comment").input("deploying the fix")
    at.button(key="FormSubmitter:silence_form-Create silence").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]

    [silence] = get(api, "/alerts/silences")["silences"]
    assert sorted(m["text"] for m in silence["matchers"]) == sorted(f'{k}="{v}"' for k, v in warning["labels"].items())
    assert instant(silence["ends_at"]) - instant(silence["starts_at"]) == timedelta(minutes=90)
    assert (silence["created_by"], silence["comment"], silence["state"]) == ("dashboard", "deploying the fix", "active")
    assert silence["ends_at"] in at.success[0].value
    assert tiles(at)["Active silences"] == "1"
    listed = table(at, "silences_table")
    assert list(listed["id"]) == [silence["id"]] and list(listed["state"]) == ["active"]

    at.selectbox(key="silence_expire").set_value(silence["id"])
    at.button(key="silence_expire_button").click().run()
    assert get(api, "/alerts/silences", state="expired")["silences"][0]["id"] == silence["id"]
    assert list(table(at, "silences_table")["state"]) == ["expired"] and tiles(at)["Active silences"] == "0"

    # A silence the server refuses: its reason, naming the field, under the form; nothing is created.
    at.text_area(key="silence_matchers").input('severity=~".*"')
    at.button(key="FormSubmitter:silence_form-Create silence").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "matchers: at least one matcher must not match the empty string (it would mute everything)"
    ]
    assert len(get(api, "/alerts/silences")["silences"]) == 1


def firing_instances(api: str) -> list[dict[str, Any]]:
    return [i for i in get(api, "/alerts/instances")["instances"] if i["firing"]]


def fill_rule(at: AppTest, **fields: str) -> None:
    for name, value in fields.items():
        widget = (
            at.text_area(key=f"rule_{name}") if name in ("filters", "labels") else at.text_input(key=f"rule_{name}")
        )
        widget.input(value)


def test_an_invalid_rule_shows_the_field_the_server_names(api: str) -> None:
    at = alerts_page()
    fill_rule(at, name="TooWide", window="90d", warning="0.1")
    at.button(key="FormSubmitter:rule_form-Save rule").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["rule 'TooWide': field 'window': must be between 1m and 31d, got 90d"]
    assert httpx.get(f"{api}/alerts/rules/TooWide", timeout=30).status_code == 404

    fill_rule(at, window="1h", warning="a lot")
    at.button(key="FormSubmitter:rule_form-Preview").click().run()
    assert [e.value for e in at.error] == ["rule 'TooWide': field 'warning': must be a number, got 'a lot'"]
    assert not figures_titled(at, "error_rate over")  # no preview drawn for a refused rule

    fill_rule(at, warning="0.1", filters="colour=red")
    at.button(key="FormSubmitter:rule_form-Save rule").click().run()
    [message] = [e.value for e in at.error]
    assert message.startswith("rule 'TooWide': field 'filters.colour': unknown dimension 'colour'")

    fill_rule(at, filters="service support-bot")  # not even name=value: the form says so, the server is not asked
    at.button(key="FormSubmitter:rule_form-Save rule").click().run()
    assert [e.value for e in at.error] == ["**filters**: line 1 ('service support-bot') is not name=value"]
    assert httpx.get(f"{api}/alerts/rules/TooWide", timeout=30).status_code == 404


def figures_titled(at: AppTest, prefix: str) -> list[dict[str, Any]]:
    return [f for f in figures(at) if f["layout"].get("title", {}).get("text", "").startswith(prefix)]


def breach_runs(points: list[tuple[datetime, float | None]], threshold: float) -> int:
    """Firing episodes of a rule with for = keep_firing_for = 0: maximal runs of steps above the threshold."""
    runs, inside = 0, False
    for _, value in points:
        above = value is not None and value > threshold
        runs += above and not inside
        inside = above
    return runs


def test_the_editor_previews_a_rule_then_saves_edits_and_deletes_it(api: str, server) -> None:
    _, rows = server
    at = alerts_page()
    fill_rule(at, name="SupportErrors", window="3h", warning="0.05", critical="0.25", interval="10m")
    fill_rule(at, filters="service=support-bot")
    at.selectbox(key="rule_preview_last").set_value("1d")
    at.button(key="FormSubmitter:rule_form-Preview").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]

    [figure] = figures_titled(at, "error_rate over the last 1d, every 10m")
    [line] = [t for t in figure["data"] if t["type"] == "scatter"]
    points = [(instant(x), y) for x, y in zip(line["x"], line["y"], strict=True)]
    assert len(points) >= 140  # every 10 minutes of a day
    for t, value in points:  # each point is the error rate of support-bot's calls in the 3 hours before it
        want = error_rate_at(rows, "support-bot", t - WINDOW, t)
        assert value == (pytest.approx(want, abs=1e-12) if want is not None else None), t
    # The burst (half of support-bot's calls failed) breaches critical; the exact value, checked above against the
    # rows, depends on which background calls the last window also holds.
    assert points[-1][1] is not None and points[-1][1] > 0.25
    lines = [s for s in figure["layout"]["shapes"] if s["type"] == "line"]
    assert sorted(s["y0"] for s in lines) == [0.05, 0.25]
    shaded = [s for s in figure["layout"]["shapes"] if s["type"] == "rect"]
    critical = [s for s in shaded if s["fillcolor"] == "#E45756"]
    assert len(critical) == breach_runs(points, 0.25) >= 1
    for t, value in points:
        inside = [s for s in shaded if instant(s["x0"]) <= t < instant(s["x1"])]
        assert bool(inside) == (value is not None and value > 0.05), t  # shaded exactly where it would fire
    fired = breach_runs(points, 0.05) + breach_runs(points, 0.25)
    summary = next(m.value for m in at.markdown if m.value.startswith("Over the last 1d"))
    assert f"would have fired **{fired}** times ({breach_runs(points, 0.25)} critical" in summary

    at.button(key="FormSubmitter:rule_form-Save rule").click().run()
    assert not at.error, [e.value for e in at.error]
    assert at.success[0].value.startswith("Rule **SupportErrors** created")
    saved = get(api, "/alerts/rules/SupportErrors")
    assert saved["source"] == "api"
    assert {k: saved["spec"][k] for k in ("metric", "filters", "window", "op", "warning", "critical", "interval")} == {
        "metric": "error_rate",
        "filters": {"service": "support-bot"},
        "window": "3h",
        "op": ">",
        "warning": 0.05,
        "critical": 0.25,
        "interval": "10m",
    }

    # Now the editor edits it (PUT): the name is fixed, a changed threshold is saved.
    assert at.selectbox(key="rule_pick").value == "SupportErrors" and at.text_input(key="rule_name").disabled
    fill_rule(at, warning="0.1")
    at.button(key="FormSubmitter:rule_form-Save rule").click().run()
    assert at.success[0].value == "Rule **SupportErrors** saved."
    assert get(api, "/alerts/rules/SupportErrors")["spec"]["warning"] == 0.1

    # Picking it afresh loads what the server has; deleting it removes it.
    at.selectbox(key="rule_pick").set_value("(new rule)").run()
    assert at.text_input(key="rule_name").value == ""
    at.selectbox(key="rule_pick").set_value("SupportErrors").run()
    assert at.text_input(key="rule_warning").value == "0.1" and at.text_area(key="rule_filters").value == (
        "service=support-bot"
    )
    at.button(key="rule_delete").click().run()
    assert httpx.get(f"{api}/alerts/rules/SupportErrors", timeout=30).status_code == 404
    assert at.selectbox(key="rule_pick").value == "(new rule)"


def test_undelivered_notifications_show_their_reason(api: str) -> None:
    def undelivered() -> list[dict[str, Any]]:
        notes = get(api, "/alerts/notifications")["notifications"]
        return [n for n in notes if n["status"] == "retrying" and n["last_error"]]

    failing = wait_until(undelivered, "a delivery attempt to fail")
    reason = failing[0]["last_error"]
    assert "refused" in reason.lower()  # nothing listens on the SMTP port
    at = alerts_page()
    [banner] = [w.value for w in at.warning if "not delivered" in w.value]
    latest = undelivered()[0]
    assert f"Latest reason: {latest['last_error']}" in banner and "oncall@example.com" in banner
    shown = table(at, "undelivered")
    assert set(shown["status"]) <= {"retrying", "failed"} and reason in set(shown["last_error"])
    counts = get(api, "/alerts/notifications")["counts"]
    assert tiles(at)["Undelivered"] == f"{counts.get('retrying', 0) + counts.get('failed', 0):,}"
