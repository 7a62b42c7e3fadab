"""The Alerts page's parts that need no server: the rule editor's fields <-> a rule body, the link from an alert
to its calls, the state timeline built from history rows, and the counts and rows the page shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from alerts.render import dashboard_link
from alerts.rules import parse_rule
from dashboard import fmt
from dashboard.alert_links import calls_url, calls_view, metric_page_url
from dashboard.alert_rows import active_rows, delivery_problems, firing_counts, rule_rows, timeline
from dashboard.filters import ViewFilters
from dashboard.rule_form import FormError, form_values, spec_from_form

T0 = datetime(2026, 6, 2, 12, 0, tzinfo=UTC)
SPEC = {
    "name": "SlowSupport",
    "metric": "latency_p95",
    "filters": {"service": "support-bot", "model": ["gpt-4.1", "gpt-4o"]},
    "group_by": ["model"],
    "window": "15m",
    "op": ">",
    "warning": 2500.0,
    "critical": 8000.0,
    "min_calls": 20,
    "for": "2m",
    "keep_firing_for": "5m",
    "no_data": "ok",
    "interval": "30s",
    "labels": {"team": "support"},
    "summary": "{{alertname}} {{value}}",
    "description": "p95 of {{group}} is {{value}}",
}


def test_a_rule_goes_through_the_editor_unchanged() -> None:
    values = form_values(SPEC)
    assert values["filters"] == "service=support-bot\nmodel=gpt-4.1\nmodel=gpt-4o"
    assert values["warning"] == "2500" and values["critical"] == "8000"
    assert spec_from_form(values) == SPEC
    # The server reads it as the same rule.
    assert parse_rule(spec_from_form(values)).spec() == parse_rule(SPEC).spec()


def test_the_editor_leaves_empty_fields_to_the_server_and_sends_what_it_cannot_read() -> None:
    values = form_values({}) | {"name": "R", "window": "5m", "warning": " 0.05 ", "critical": "lots"}
    spec = spec_from_form(values)
    assert spec["warning"] == 0.05 and spec["critical"] == "lots"  # the server names `critical`
    assert "filters" not in spec and "labels" not in spec and "summary" not in spec and "relative_to" not in spec
    with pytest.raises(FormError) as bad_line:
        spec_from_form(values | {"filters": "service=a\njust-a-word"})
    assert bad_line.value.field == "filters" and "line 2" in bad_line.value.message
    with pytest.raises(FormError) as twice:
        spec_from_form(values | {"labels": "team=a\nteam=b"})
    assert twice.value.field == "labels.team"


def instance(link: str | None, **labels: str) -> dict:
    return {
        "fingerprint": "f" * 16,
        "rule": labels.get("alertname", "R"),
        "labels": {"alertname": "R", "severity": "critical", **labels},
        "annotations": {"dashboard_url": link} if link else {},
        "state": "firing",
        "firing": True,
        "value": 0.2,
        "threshold": 0.1,
    }


def test_an_alert_opens_its_breaching_calls_with_the_servers_window_and_group() -> None:
    rule = parse_rule(
        {"name": "E", "metric": "error_rate", "filters": {"environment": "prod", "request_model": "x"}}
        | {"group_by": ["service"], "window": "1h", "op": ">", "critical": 0.1}
    )
    link = dashboard_link("https://dash.example/base", rule, {"service": "support-bot"}, T0 - timedelta(hours=1), T0)
    view = calls_view(instance(link, service="support-bot"), rule.spec(), tz="Europe/Paris")
    assert view is not None
    filters, params = view
    assert filters == ViewFilters(
        "custom",
        "2026-06-02T11:00:00Z",
        "2026-06-02T12:00:00Z",
        "Europe/Paris",
        {"environment": ("prod",), "service": ("support-bot",)},  # request_model has no dashboard filter
    )
    assert params == {"status": "error"}  # an error rule: its failed calls
    url = calls_url("http://127.0.0.1:8501/cs/alerts?range=7d", view)
    parts = urlsplit(url)
    assert (parts.netloc, parts.path) == ("127.0.0.1:8501", "/cs/calls")
    assert parse_qs(parts.query) == {
        "from": ["2026-06-02T11:00:00Z"],
        "to": ["2026-06-02T12:00:00Z"],
        "tz": ["Europe/Paris"],
        "environment": ["prod"],
        "service": ["support-bot"],
        "status": ["error"],
    }
    # The metric's own page (as e-mails link it), but on this dashboard rather than the configured host.
    chart = metric_page_url("http://127.0.0.1:8501/cs/alerts", instance(link))
    assert chart is not None and chart.startswith("http://127.0.0.1:8501/cs/errors?from=2026-06-02T11")


def test_latency_and_cost_alerts_open_the_worst_calls_first() -> None:
    link = "http://x/latency?from=2026-06-02T11%3A45%3A00Z&to=2026-06-02T12%3A00%3A00Z&model=null"
    view = calls_view(instance(link, model=""), {"metric": "latency_p99", "filters": {"status": "ok"}})
    assert view is not None
    assert view[1] == {"status": "ok", "sort": "duration_ms"}
    assert view[0].dims == {"model": ("null",)}  # a missing group value is the API's `null`
    assert calls_view(instance(link), {"metric": "cost_per_call"})[1] == {"sort": "cost_usd"}  # type: ignore[index]
    assert calls_view(instance(None), {"metric": "errors"}) is None
    assert calls_view(instance("http://x/errors?service=a"), {"metric": "errors"}) is None  # no window: no link
    assert calls_url("", view).startswith("./calls?")


def test_the_timeline_is_the_non_normal_stretches_of_each_instance() -> None:
    start, end = T0, T0 + timedelta(hours=2)

    def change(minutes: int, fp: str, before: str, after: str) -> dict:
        labels = {"alertname": "R", "severity": "warning", "model": fp}
        at = (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
        return {"changed_at": at, "rule_id": "R", "fingerprint": fp, "labels": labels, "from_state": before,
                "to_state": after, "value": 1.0, "reason": f"{before}->{after}"}  # fmt: skip

    history = [  # newest first, as the API answers
        change(100, "b", "firing", "recovering"),
        change(90, "a", "firing", "normal"),
        change(30, "a", "pending", "firing"),
        change(10, "a", "normal", "pending"),
        change(20, "b", "firing", "normal"),  # b was firing before the window started
    ]
    got = [(s.instance, s.state, s.start, s.end) for s in timeline(history, start, end)]
    minute = timedelta(minutes=1)
    assert got == [
        ("R · model=a · warning", "pending", T0 + 10 * minute, T0 + 30 * minute),
        ("R · model=a · warning", "firing", T0 + 30 * minute, T0 + 90 * minute),
        ("R · model=b · warning", "firing", T0, T0 + 20 * minute),
        ("R · model=b · warning", "recovering", T0 + 100 * minute, end),
    ]


def test_counts_rows_and_delivery_problems() -> None:
    def inst(fp: str, state: str, severity: str, value: float | None, model: str) -> dict:
        return {"fingerprint": fp, "rule": "Slow", "state": state, "firing": state in ("firing", "recovering"),
                "labels": {"alertname": "Slow", "severity": severity, "team": "support", "model": model},
                "value": value, "threshold": 2500.0 if severity == "warning" else 8000.0}  # fmt: skip

    instances = [
        inst("1", "firing", "warning", 3000.0, "a"),
        inst("2", "recovering", "warning", 2600.0, "b"),
        inst("3", "firing", "critical", 9000.0, "c"),
        inst("4", "pending", "critical", 8500.0, "a"),
        inst("5", "normal", "warning", 100.0, "d"),
    ]
    assert firing_counts(instances) == {"critical": 1, "warning": 2}
    rules = [{"name": "Slow", "spec": SPEC | {"name": "Slow"}, "read_only": True, "file": "/etc/a.yaml", "line": 3}]
    [row] = rule_rows(rules, instances, {"latency_p95": "ms"})
    # The most urgent instance: firing before recovering and pending, critical before warning.
    assert (row["state"], row["last_value"], row["last_group"]) == ("firing", fmt.ms(9000.0), "model=c")
    assert row["firing"] == 3 and row["source"] == "file /etc/a.yaml:3 (read-only)"
    assert row["condition"] == "> 2.50 s (warning), > 8.00 s (critical) over 15m"
    active = active_rows(instances, {"Slow": SPEC}, {"latency_p95": "ms"})
    assert [r["fingerprint"] for r in active] == ["3", "1", "2", "4"]
    assert active[0]["group"] == "model=c" and active[0]["threshold"] == "8.00 s"

    day_ago = T0 - timedelta(days=1)
    notes = [
        {"status": "failed", "last_attempt_at": (T0 - timedelta(days=2)).isoformat()},
        {"status": "retrying", "last_attempt_at": T0.isoformat()},
        {"status": "failed", "last_attempt_at": T0.isoformat()},
        {"status": "sent", "last_attempt_at": T0.isoformat()},
    ]
    assert delivery_problems(notes) == [notes[0], notes[1], notes[2]]
    assert delivery_problems(notes, since=day_ago) == [notes[1], notes[2]]
    assert [fmt.duration(s) for s in (0, 45, 3060, 5400, 172800)] == ["0s", "45s", "51m", "1h30m", "2d"]
