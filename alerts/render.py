"""What an alert says: values in their unit, the summary/description templates, and the dashboard link.

The link opens the dashboard page of the metric filtered to the instance (the rule's filters and the group's
values) and to the evaluated window, using the query parameters the dashboard reads from its URL
(dashboard/filters.py ViewFilters.from_query: `from`, `to`, one parameter per dimension). Dimensions the
dashboard does not filter on (e.g. status, request_model, meta.<key>) cannot be expressed in its URL and are left
out of the link; the alert's labels still name them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlencode

from alerts.rules import Rule, Severity, format_duration
from analytics.metrics import metric_unit

# The dimensions dashboard/filters.py FILTER_DIMS reads from the URL (a test checks both stay in step).
DASHBOARD_DIMS = ("environment", "service", "provider", "model", "user", "tag")
_PAGES = {
    "latency": ("latency_", "ttft_", "output_tokens_per_s"),
    "errors": ("errors", "error_rate", "rate_limited"),
    "cost": ("cost", "unpriced", "priced", "reported_cost", "tokens", "input_", "output_", "cache_", "reasoning_"),
}
# The Cost page's tab that draws the unpriced calls (dashboard/views/cost.py SECTIONS, bound to ?section=; a test
# checks both stay in step): an alert on an unpriced share opens it.
UNPRICED_SECTION = ("section", "Unpriced calls")
_VAR = re.compile(r"{{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*}}")


def page_for(metric: str) -> str:
    """The dashboard page (its URL path) that shows a metric; the Overview ("") for call counts."""
    for page, prefixes in _PAGES.items():
        if any(metric.startswith(p) or metric.endswith(p) for p in prefixes):
            return page
    return ""


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def dashboard_link(base_url: str, rule: Rule, group: Mapping[str, str | None], start: datetime, end: datetime) -> str:
    """The dashboard page for the rule's metric over [start, end), filtered to the rule's filters and the group."""
    params: list[tuple[str, str]] = [("from", iso(start)), ("to", iso(end))]
    for dim in DASHBOARD_DIMS:
        if dim in group:
            value = group[dim]
            params.append((dim, "null" if value is None else value))
        else:
            params += [(dim, v) for v in rule.filter_spec.get(dim, ())]
    if "q" in rule.filter_spec:
        params.append(("q", rule.filter_spec["q"][0]))
    if rule.metric.startswith("unpriced"):
        params.append(UNPRICED_SECTION)
    return f"{base_url.rstrip('/')}/{page_for(rule.metric)}?{urlencode(params)}"


def format_value(value: float | None, unit: str) -> str:
    """A value as people read it: ratios as percentages, dollars with a $, milliseconds with ms."""
    if value is None:
        return "no data"
    if unit == "%":
        return f"{value:+.1f}%"
    if unit == "ratio":
        return f"{value * 100:.2f}%"
    if unit == "USD":
        return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4g}"
    if unit == "ms":
        return f"{value:,.0f} ms" if abs(value) >= 10 else f"{value:.3g} ms"
    if unit in ("calls", "tokens"):
        return f"{value:,.0f}"
    return f"{value:,.4g} {unit}"


def group_text(group: Mapping[str, str | None]) -> str:
    if not group:
        return "all calls"
    return ", ".join(f"{k}={'null' if v is None else v}" for k, v in group.items())


def render(template: str, variables: Mapping[str, str]) -> str:
    """{{name}} replaced by its value; names were checked when the rule was parsed."""
    return _VAR.sub(lambda m: variables.get(m.group(1), ""), template)


def annotations(
    rule: Rule,
    severity: Severity,
    group: Mapping[str, str | None],
    labels: Mapping[str, str],
    *,
    value: float | None,
    baseline: float | None,
    calls: int | None,
    start: datetime,
    end: datetime,
    dashboard_base_url: str,
) -> dict[str, str]:
    """summary, description and dashboard_url of one instance at one evaluation."""
    link = dashboard_link(dashboard_base_url, rule, group, start, end)
    unit = rule.unit
    compare = ""
    if rule.relative_to is not None:
        what = "the previous window" if rule.relative_to.value == "previous_window" else "the same window a week ago"
        compare = f" vs {what} ({format_value(baseline, metric_unit(rule.metric))})"
    variables = {
        "alertname": rule.name,
        "severity": severity.value,
        "metric": rule.metric,
        "unit": unit,
        "value": format_value(value, unit),
        "threshold": format_value(rule.thresholds[severity], unit),
        "op": rule.op.value,
        "window": format_duration(rule.window),
        "calls": "unknown" if calls is None else f"{calls:,}",
        "group": group_text(group),
        "baseline": format_value(baseline, metric_unit(rule.metric)),
        "compare": compare,
        "from": iso(start),
        "to": iso(end),
        "dashboard_url": link,
        **{f"labels.{k}": v for k, v in labels.items()},
    }
    return {
        "summary": render(rule.summary, variables),
        "description": render(rule.description, variables),
        "dashboard_url": link,
    }
