"""Alert rules as data and as code: every field checked, errors naming the field (and in a file, its line),
`callscope alerts check` like promtool, and links the dashboard understands."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from alerts.render import DASHBOARD_DIMS, UNPRICED_SECTION, dashboard_link, format_value, page_for
from alerts.rulefile import parse_text
from alerts.rules import NoData, Op, Relative, RuleError, Severity, parse_rule
from analytics.metrics import METRICS
from dashboard import filters as dashboard_filters
from tests.helpers import ROOT

FULL = {
    "name": "HighErrorRate",
    "metric": "error_rate",
    "filters": {"service": ["support-bot", "agent"], "http_status": 429, "meta.team": "search", "q": "timeout"},
    "group_by": ["model", "environment"],
    "window": "1h30m",
    "op": ">=",
    "warning": 0.05,
    "critical": 0.2,
    "min_calls": 20,
    "for": "5m",
    "keep_firing_for": "10m",
    "no_data": "keep_last",
    "interval": "30s",
    "labels": {"team": "search", "page": True},
    "summary": "{{alertname}} {{value}} {{labels.team}}",
    "description": "see {{dashboard_url}}",
}


def test_a_full_rule_parses_and_round_trips():
    rule = parse_rule(FULL)
    assert rule.window == timedelta(hours=1, minutes=30) and rule.interval == timedelta(seconds=30)
    assert rule.op is Op.GE and rule.no_data is NoData.KEEP_LAST and rule.relative_to is None
    assert rule.thresholds == {Severity.CRITICAL: 0.2, Severity.WARNING: 0.05}
    assert rule.labels == {"team": "search", "page": "true"}
    assert rule.filters.dims == {"service": ("support-bot", "agent"), "http_status": (429,), "meta.team": ("search",)}
    assert rule.filters.search == "timeout"
    assert parse_rule(rule.spec()) == rule


def test_defaults():
    rule = parse_rule({"name": "n", "metric": "calls", "window": "5m", "op": "lt", "warning": 1})
    assert rule.op is Op.LT and rule.interval == timedelta(minutes=1) and rule.no_data is NoData.NODATA
    assert rule.for_ == timedelta(0) and rule.keep_firing_for == timedelta(0) and rule.min_calls == 0
    assert rule.group_by == () and rule.thresholds == {Severity.WARNING: 1.0}
    assert Relative.WEEK_AGO.offset(rule.window) == timedelta(days=7)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"metric": "error_rat"}, "metric", "unknown metric 'error_rat'"),
        ({"window": "45d"}, "window", "between 1m and 31d"),
        ({"window": "30s"}, "window", "between 1m and 31d"),
        ({"window": 5}, "window", "not a duration"),
        ({"window": "5 minutes"}, "window", "not a duration"),
        ({"op": "=="}, "op", "not one of"),
        ({"warning": "high"}, "warning", "must be a number"),
        ({"critical": 0.01}, "critical", "at or above the warning"),
        ({"warning": None, "critical": None}, "warning", "give a warning or a critical"),
        ({"filters": {"servce": "x"}}, "filters.servce", "unknown dimension 'servce'"),
        ({"filters": {"http_status": "abc"}}, "filters", "http_status must be an integer"),
        ({"filters": "service=x"}, "filters", "must be a mapping"),
        ({"group_by": ["modle"]}, "group_by", "unknown dimension 'modle'"),
        ({"group_by": ["model", "service", "user", "tag", "provider"]}, "group_by", "at most 4"),
        ({"relative_to": "yesterday"}, "relative_to", "previous_window, week_ago"),
        ({"min_calls": -1}, "min_calls", ">= 0"),
        ({"for": "soon"}, "for", "not a duration"),
        ({"keep_firing_for": "40d"}, "keep_firing_for", "at most 31d"),
        ({"no_data": "ignore"}, "no_data", "ok, alerting, keep_last, nodata"),
        ({"interval": "5s"}, "interval", "between 10s and 1d"),
        ({"labels": {"severity": "x"}}, "labels.severity", "set by callscope"),
        ({"labels": {"model": "x"}}, "labels.model", "group_by dimension"),
        ({"labels": {"bad-name": "x"}}, "labels.bad-name", "label name"),
        ({"summary": "{{valu}}"}, "summary", "unknown template variable {{valu}}"),
        ({"name": "has space"}, "name", "letters, digits"),
        ({"name": None}, "name", "is required"),
        ({"windw": "5m"}, "windw", "did you mean 'window'"),
    ],
)
def test_bad_fields_are_named(change, field, message):
    spec = {**FULL, **change}
    with pytest.raises(RuleError) as exc:
        parse_rule({k: v for k, v in spec.items() if v is not None})
    assert exc.value.field == field
    assert message in exc.value.message
    assert f"field {field!r}" in str(exc.value)


def test_every_metric_of_the_read_api_can_be_alerted_on():
    for name in METRICS:
        assert parse_rule({"name": "m", "metric": name, "window": "1h", "op": ">", "critical": 1}).metric == name


GOOD_FILE = """\
# on-call rules
rules:
  - name: ErrorRate
    metric: error_rate
    window: 5m
    op: ">"
    critical: 0.1
  - name: P95
    metric: latency_p95
    group_by: [model]
    window: 15m
    op: gt
    warning: 2000
"""

BAD_FILE = """\
rules:
  - name: ErrorRate
    metric: error_rate
    window: 5m
    op: ">"
    critical: 0.1
  - name: P95
    metric: latency_p95
    group_by: [model]
    window: 45d
    op: gt
    warning: 2000
  - name: Spend
    metric: cost_usd
    window: 1d
    op: ">"
    critical: 100
    filters:
      service: support-bot
      modle: gpt-4.1
  - name: ErrorRate
    metric: errors
    window: 5m
    op: ">"
    critical: 5
"""


def test_a_file_reports_every_problem_with_its_line():
    assert parse_text(GOOD_FILE, "alerts.yaml").ok
    loaded = parse_text(BAD_FILE, "alerts.yaml")
    assert not loaded.ok and loaded.rules == ()
    found = [(p.line, p.rule, p.field) for p in loaded.problems]
    assert found == [(10, "P95", "window"), (20, "Spend", "filters.modle"), (21, "ErrorRate", "name")]
    assert str(loaded.problems[0]).startswith("alerts.yaml:10: rule 'P95': field 'window': must be between 1m and 31d")
    assert "line 2" in loaded.problems[2].message


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("rules:\n  - name: a\n    name: b\n", 3, "appears twice"),
        ("rules:\n  - name: a\n   metric: b\n", 3, "invalid YAML"),
        ("groups:\n  - name: a\n", 1, "one key, rules"),
        ("rules: {name: a}\n", 1, "must be a list"),
        ("rules:\n  - just text\n", None, "must be a mapping"),
        ("rules:\n  - name: X\n    metric: calls\n    window: 5m\n    op: >\n    critical: 1\n", 5, "not one of"),
    ],
)
def test_broken_files(text: str, line: int | None, message: str):
    (problem,) = parse_text(text, "f.yaml").problems
    assert problem.line == line and message in str(problem), str(problem)


def test_a_rule_name_taken_by_an_api_rule_is_a_file_problem():
    loaded = parse_text(GOOD_FILE, "alerts.yaml", taken_names=["P95"])
    assert [(p.line, p.field) for p in loaded.problems] == [(8, "name")]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "callscope.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_alerts_check_command(tmp_path: Path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD_FILE)
    bad.write_text(BAD_FILE)
    ok = run_cli("alerts", "check", str(good))
    assert ok.returncode == 0 and "SUCCESS: 2 rules found" in ok.stdout
    failed = run_cli("alerts", "check", str(good), str(bad))
    assert failed.returncode == 1
    assert f"{bad}:10: rule 'P95': field 'window': must be between 1m and 31d, got 45d" in failed.stdout
    assert f"{bad}:20: rule 'Spend': field 'filters.modle': unknown dimension 'modle'" in failed.stdout
    missing = run_cli("alerts", "check", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1 and "no such file" in missing.stdout


def test_dashboard_links_use_the_dashboards_url_parameters():
    assert set(DASHBOARD_DIMS) == set(dashboard_filters.FILTER_DIMS)
    rule = parse_rule(FULL | {"filters": {"service": ["support-bot", "agent"], "q": "timeout"}})
    start, end = datetime(2026, 4, 1, 10, tzinfo=UTC), datetime(2026, 4, 1, 11, 30, tzinfo=UTC)
    link = urlparse(dashboard_link("http://dash:8501/", rule, {"model": "gpt-4.1", "environment": None}, start, end))
    assert link.path == "/errors"
    view = dashboard_filters.ViewFilters.from_query(parse_qs(link.query, keep_blank_values=True))
    assert view.window() == (start, end)
    assert view.dims == {"service": ("support-bot", "agent"), "model": ("gpt-4.1",), "environment": ("null",)}
    assert view.q == "timeout"
    assert (page_for("latency_p99"), page_for("cost_per_call"), page_for("calls"), page_for("rate_limited_share")) == (
        "latency",
        "cost",
        "",
        "errors",
    )
    # an unpriced share opens the Cost page on its tab (a label the Cost page binds to ?section=)
    unpriced = parse_rule(FULL | {"metric": "unpriced_call_share", "filters": {}})
    link = urlparse(dashboard_link("http://dash:8501", unpriced, {}, start, end))
    assert link.path == "/cost" and parse_qs(link.query)["section"] == [UNPRICED_SECTION[1]]
    assert "section" not in parse_qs(urlparse(dashboard_link("http://dash:8501", rule, {}, start, end)).query)
    cost_page = (Path(__file__).resolve().parents[2] / "dashboard" / "views" / "cost.py").read_text()
    assert f'    "{UNPRICED_SECTION[1]}": ui.Section(' in cost_page
    assert 'key="section", bind="query-params"' in cost_page


def test_values_read_in_their_unit():
    assert format_value(0.0734, "ratio") == "7.34%"
    assert format_value(1234.5, "USD") == "$1,234.50" and format_value(0.00123, "USD") == "$0.00123"
    assert format_value(2345.2, "ms") == "2,345 ms" and format_value(53.21, "%") == "+53.2%"
    assert format_value(None, "ms") == "no data"
