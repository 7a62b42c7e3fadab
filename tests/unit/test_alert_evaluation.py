"""Alert evaluation over a real store file with a controlled clock: every state, group-by instances, min_calls,
the no-data modes, keep_firing_for, relative conditions and query errors. Values are checked against numpy over
the same rows; the state, its history and the hand-over row are checked together."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from alerts.evaluate import KEEP_RESOLVED, retire
from alerts.model import alerts_for_notification, fingerprint
from alerts.rules import parse_rule
from dashboard.filters import ViewFilters
from tests.alert_calls import DASHBOARD, Store, call, error_rate, minute_of_calls, rows_in

T0 = datetime(2026, 4, 6, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def errors_rule(**extra):
    spec = {
        "name": "ErrorsHigh",
        "metric": "error_rate",
        "window": "1m",
        "op": ">",
        "critical": 0.5,
        "for": "2m",
        "keep_firing_for": "2m",
        "labels": {"team": "search"},
    }
    return parse_rule(spec | extra)


def test_every_state_in_time_with_history_and_hand_over_row(tmp_path: Path):
    errors_per_minute = [0, 4, 4, 4, 0, 0, 0, 4, 0, 0, 4, 4, 4, 0, 4, 0, 0, 0]
    rows = [c for m, e in enumerate(errors_per_minute) for c in minute_of_calls(T0 + m * MIN, 4, e)]
    store = Store(tmp_path, rows)
    rule = errors_rule()
    expected = [
        "normal", "pending", "pending", "firing", "recovering", "recovering", "normal", "pending", "normal",
        "normal", "pending", "pending", "firing", "recovering", "firing", "recovering", "recovering", "normal",
    ]  # fmt: skip
    seen = []
    for k in range(1, len(errors_per_minute) + 1):
        at = T0 + k * MIN
        store.evaluator.evaluate([rule], at)
        (inst,) = store.states.instances("ErrorsHigh")
        seen.append(inst.state.value)
        assert inst.value == error_rate(rows_in(rows, at - MIN, at)), k  # numpy over the same minute
        assert inst.last_eval_at == at
    assert seen == expected
    # The hand-over row: labels, annotations, the last episode (fired at k=13, resolved at k=18).
    assert inst.labels == {"alertname": "ErrorsHigh", "severity": "critical", "team": "search"}
    assert inst.fingerprint == fingerprint(inst.labels)
    assert inst.starts_at == T0 + 13 * MIN and inst.ends_at == T0 + 18 * MIN
    notes = inst.annotations or {}
    assert notes["summary"] == "ErrorsHigh (critical): error_rate 0.00% > 50.00% over 1m, all calls"
    link = urlparse(notes["dashboard_url"])
    assert f"{link.scheme}://{link.netloc}" == DASHBOARD and link.path == "/errors"
    view = ViewFilters.from_query(parse_qs(link.query))  # the dashboard reads the link as a custom range
    assert view.window() == (T0 + 17 * MIN, T0 + 18 * MIN)
    # History: exactly the state changes, in order, each with the value that caused it.
    history = list(reversed(store.states.history("ErrorsHigh", None, None, 100)))
    changes = [(a, b) for a, b in zip(["normal", *expected], expected, strict=False) if a != b]
    assert [(h["from_state"], h["to_state"]) for h in history] == changes
    fired = [h for h in history if h["to_state"] == "firing" and h["from_state"] == "pending"]
    assert [h["changed_at"] for h in fired] == [T0 + 4 * MIN, T0 + 13 * MIN]
    assert all(h["value"] == 1.0 and h["threshold"] == 0.5 for h in fired)
    # Notification's view: the first episode resolved at k=7, the second at k=18; one row per instance.
    with store.db.cursor() as cur:
        (alert,) = alerts_for_notification(cur, T0)
    assert alert.starts_at == T0 + 13 * MIN and alert.ends_at == T0 + 18 * MIN and not alert.firing
    health = store.states.health()["ErrorsHigh"]
    assert health["health"] == "ok" and health["evaluated_at"] == T0 + 18 * MIN
    store.close()


def test_group_by_gives_an_instance_per_group_and_severity(tmp_path: Path):
    rng = np.random.default_rng(5)
    rows = []
    for model, scale in (("gpt-4.1", 400.0), ("claude-sonnet-4", 1500.0), ("gemini-2.5-flash", 900.0)):
        for _ in range(60):
            t = T0 + timedelta(seconds=float(rng.uniform(0, 300)))
            rows.append(call(t, model=model, duration_ms=round(float(rng.lognormal(np.log(scale), 0.4)), 3)))
    # Later only gpt-4.1 keeps calling: the other groups vanish.
    rows += [call(T0 + 5 * MIN + timedelta(seconds=i), model="gpt-4.1", duration_ms=3000.0) for i in range(10)]
    store = Store(tmp_path, rows)
    rule = parse_rule(
        {
            "name": "SlowModel",
            "metric": "latency_p95",
            "group_by": ["model"],
            "window": "5m",
            "op": ">",
            "warning": 1000,
            "critical": 2000,
            "min_calls": 5,
        }
    )
    store.evaluator.evaluate([rule], T0 + 5 * MIN)
    instances = store.states.instances("SlowModel")
    assert len(instances) == 6  # 3 models x 2 severities
    for inst in instances:
        model = inst.labels["model"]
        durations = [r["duration_ms"] for r in rows_in(rows, T0, T0 + 5 * MIN, response_model=model)]
        expected = np.percentile(durations, 95, method="linear")
        assert inst.value == pytest.approx(expected, rel=1e-12), model
        severity = inst.labels["severity"]
        breached = expected > (1000 if severity == "warning" else 2000)
        assert inst.state.value == ("firing" if breached else "normal"), (model, severity)
        assert inst.threshold == (1000 if severity == "warning" else 2000)
        if inst.firing:
            assert f"model={model}" in inst.annotations["dashboard_url"]
        else:
            assert inst.annotations is None  # rendered only for instances that are not normal
    claude_firing = {i.labels["severity"] for i in instances if i.labels["model"] == "claude-sonnet-4" and i.firing}
    assert claude_firing  # at least the warning of the slow model fires
    # Five minutes later only gpt-4.1 has calls (all slow: both severities fire); the vanished groups' firing
    # instances resolve; those that never fired are forgotten.
    store.evaluator.evaluate([rule], T0 + 10 * MIN)
    now = {(i.labels["model"], i.labels["severity"]): i for i in store.states.instances("SlowModel")}
    assert now[("gpt-4.1", "critical")].state.value == "firing"
    for severity in claude_firing:
        gone = now[("claude-sonnet-4", severity)]
        assert gone.state.value == "normal" and gone.ends_at == T0 + 10 * MIN
    assert ("gemini-2.5-flash", "critical") not in now  # never fired, series gone: forgotten
    # A day later no model has calls: gpt-4.1's alerts resolve (kept, for the resolve message), the groups
    # resolved a day ago are forgotten, and one instance without a model says the rule has no data.
    later = T0 + 10 * MIN + KEEP_RESOLVED + MIN
    store.evaluator.evaluate([rule], later)
    now = {(i.labels.get("model"), i.labels["severity"]): i for i in store.states.instances("SlowModel")}
    assert set(now) == {("gpt-4.1", "warning"), ("gpt-4.1", "critical"), (None, "critical")}
    assert now[("gpt-4.1", "critical")].ends_at == later and now[(None, "critical")].state.value == "nodata"
    store.close()


def test_a_grouped_rule_with_no_group_at_all_has_no_data(tmp_path: Path):
    store = Store(tmp_path, [call(T0 - timedelta(hours=1))])
    rule = parse_rule({"name": "G", "metric": "calls", "group_by": ["model"], "window": "5m", "op": "<", "critical": 1})
    store.evaluator.evaluate([rule], T0)
    (inst,) = store.states.instances("G")
    assert inst.state.value == "nodata" and inst.labels == {"alertname": "G", "severity": "critical"}
    store.close()


@pytest.mark.parametrize(
    ("mode", "expected", "episodes"),
    [
        ("ok", ["firing", "normal", "normal", "normal", "firing"], [1, 5]),
        ("alerting", ["firing", "firing", "firing", "firing", "firing"], [1]),
        ("keep_last", ["firing", "firing", "firing", "firing", "firing"], [1]),
        ("nodata", ["firing", "nodata", "nodata", "nodata", "firing"], [1, 5]),
    ],
)
def test_no_data_modes(tmp_path: Path, mode: str, expected: list[str], episodes: list[int]):
    rows = minute_of_calls(T0, 4, 4) + minute_of_calls(T0 + 4 * MIN, 4, 4)  # minutes 1-3 have no calls
    store = Store(tmp_path, rows)
    rule = errors_rule(no_data=mode, **{"for": "0s", "keep_firing_for": "0s"})
    seen, starts = [], set()
    for k in range(1, 6):
        store.evaluator.evaluate([rule], T0 + k * MIN)
        (inst,) = store.states.instances("ErrorsHigh")
        seen.append(inst.state.value)
        if inst.starts_at:
            starts.add(inst.starts_at)
        if k in (2, 3) and mode != "keep_last":
            assert inst.value is None  # no calls: error_rate is undefined
    assert seen == expected
    assert sorted(starts) == [T0 + k * MIN for k in episodes]
    store.close()


def test_no_data_alerting_goes_through_pending_on_the_most_severe_instance(tmp_path: Path):
    store = Store(tmp_path, [])
    rule = errors_rule(no_data="alerting", warning=0.2)
    for k in range(3):
        store.evaluator.evaluate([rule], T0 + k * MIN)
        got = {i.labels["severity"]: i.state.value for i in store.states.instances("ErrorsHigh")}
        assert got == {"critical": ["pending", "pending", "firing"][k], "warning": "normal"}
    store.close()


def test_min_calls(tmp_path: Path):
    rows = minute_of_calls(T0, 3, 3) + minute_of_calls(T0 + MIN, 6, 6)
    store = Store(tmp_path, rows)
    rule = errors_rule(min_calls=5, **{"for": "0s"})
    store.evaluator.evaluate([rule], T0 + MIN)
    (inst,) = store.states.instances("ErrorsHigh")
    assert inst.value == 1.0 and inst.state.value == "normal"  # 3 calls, all failed: too few to fire
    store.evaluator.evaluate([rule], T0 + 2 * MIN)
    (inst,) = store.states.instances("ErrorsHigh")
    assert inst.value == 1.0 and inst.state.value == "firing"
    store.close()


@pytest.mark.parametrize("relative_to", ["previous_window", "week_ago"])
def test_relative_condition_is_the_percent_change_against_the_baseline(tmp_path: Path, relative_to: str):
    rng = np.random.default_rng(11)
    window = timedelta(minutes=10)
    now = T0 + 2 * window
    base_start = now - window - (window if relative_to == "previous_window" else timedelta(days=7))
    rows = []
    for start, scale in ((base_start, 600.0), (now - window, 1400.0)):
        for _ in range(80):
            t = start + timedelta(seconds=float(rng.uniform(0, window.total_seconds())))
            rows.append(call(t, duration_ms=round(float(rng.lognormal(np.log(scale), 0.3)), 3)))
    store = Store(tmp_path, rows)
    rule = parse_rule(
        {
            "name": "P95Up",
            "metric": "latency_p95",
            "window": "10m",
            "op": ">",
            "warning": 50,
            "critical": 500,
            "relative_to": relative_to,
        }
    )
    store.evaluator.evaluate([rule], now)
    current = np.percentile([r["duration_ms"] for r in rows_in(rows, now - window, now)], 95)
    base = np.percentile([r["duration_ms"] for r in rows_in(rows, base_start, base_start + window)], 95)
    change = (current - base) / abs(base) * 100
    got = {i.labels["severity"]: i for i in store.states.instances("P95Up")}
    assert got["warning"].value == pytest.approx(change, rel=1e-12)
    assert 50 < change < 500
    assert got["warning"].state.value == "firing" and got["critical"].state.value == "normal"
    assert "vs " in got["warning"].annotations["description"]
    # Evaluated over the baseline's own window, the baseline has no calls: no value, the no-data mode (nodata).
    store.evaluator.evaluate([rule], base_start + window)
    got = {i.labels["severity"]: i for i in store.states.instances("P95Up")}
    assert got["warning"].value is None and got["warning"].state.value == "nodata" and not got["warning"].firing
    store.close()


def test_a_failing_query_is_an_error_state_that_keeps_the_alert(tmp_path: Path):
    rows = [c for m in range(4) for c in minute_of_calls(T0 + m * MIN, 4, 4)]
    store = Store(tmp_path, rows)
    rule = errors_rule(**{"for": "0s"})
    store.evaluator.evaluate([rule], T0 + MIN)
    (inst,) = store.states.instances("ErrorsHigh")
    assert inst.state.value == "firing"
    store.db.execute("ALTER TABLE calls RENAME TO calls_away")  # the query really fails
    store.evaluator.evaluate([rule], T0 + 2 * MIN)
    (inst,) = store.states.instances("ErrorsHigh")
    assert inst.state.value == "error" and "calls" in inst.error and inst.firing  # not resolved
    health = store.states.health()["ErrorsHigh"]
    assert health["health"] == "error" and "query failed" in health["error"]
    store.db.execute("ALTER TABLE calls_away RENAME TO calls")
    store.evaluator.evaluate([rule], T0 + 3 * MIN)
    (inst,) = store.states.instances("ErrorsHigh")
    assert inst.state.value == "firing" and inst.starts_at == T0 + MIN and inst.error is None  # the same alert
    history = [(h["from_state"], h["to_state"]) for h in reversed(store.states.history(None, None, None, 10))]
    assert history == [("normal", "firing"), ("firing", "error"), ("error", "firing")]
    store.close()


def test_a_deleted_rule_resolves_its_firing_alerts(tmp_path: Path):
    store = Store(tmp_path, minute_of_calls(T0, 4, 4))
    rule = errors_rule(**{"for": "0s"})
    store.evaluator.evaluate([rule], T0 + MIN)
    store.states.save(retire(store.states.orphans([]), T0 + 2 * MIN))
    (inst,) = store.states.instances("ErrorsHigh")
    assert inst.state.value == "normal" and inst.ends_at == T0 + 2 * MIN
    store.states.save(retire(store.states.orphans([]), T0 + 2 * MIN + KEEP_RESOLVED))
    assert store.states.instances("ErrorsHigh") == []
    store.close()


def test_rules_sharing_filters_and_window_share_one_query(tmp_path: Path):
    from alerts.queries import plan

    wanted = [
        ("latency_p95", []),
        ("latency_p99", []),
        ("error_rate", []),
        ("cost_usd", ["model"]),
        ("ttft_p50", ["model"]),
    ]
    rules = [
        parse_rule({"name": f"R{i}", "metric": m, "window": "5m", "op": ">", "critical": 1, "group_by": g})
        for i, (m, g) in enumerate(wanted)
    ]
    the_plan = plan(rules, T0)
    assert len(the_plan.queries) == 2
    assert the_plan.queries[0].metrics == ("latency_p95", "latency_p99", "error_rate")
