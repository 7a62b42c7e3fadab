"""The figures of a digest, taken from the same analytics functions the read API answers with (stats.run,
stats.compare_previous, changes.what_changed), with the same arguments a caller of `/api/v1/stats` or
`/api/v1/changes` would pass; nothing here computes a statistic of its own.

For a digest over [end - period, end):
- totals: calls, spend, error rate, p95 latency, against the period before (`/stats?compare=true`)
- spend by model, by service, and the top users, each against the period before (`group_by`, `order_by=cost_usd`)
- top movers: which (service, model) pairs changed the spend most (`/changes?metric=cost_usd&dims=service,model`)
- trend: error rate, p95 latency, calls and spend per hour (daily digest) or per day (weekly) (`bucket=`)
- the alerts firing at `end`
- budgets: each budget's spend to date, forecast with its interval, crossing date and signals at `end`
  (analytics/budgets.py evaluate, as GET /api/v1/budgets?at=end answers)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import duckdb

from alerts.model import Alert, alerts_for_notification
from alerts.notify_config import DigestConfig
from analytics.budgets import evaluate, load_budgets
from analytics.changes import what_changed
from analytics.query import Filters, Selection
from analytics.responses import table_rows
from analytics.stats import StatsQuery, compare_previous, run
from analytics.timewin import Bucket, Bucketing, TimeRange

TOTAL_METRICS = ("calls", "cost_usd", "error_rate", "latency_p95")
GROUP_METRICS = ("cost_usd", "calls")
TREND_METRICS = ("calls", "cost_usd", "error_rate", "latency_p95")
GROUPS = (("by_model", "model"), ("by_service", "service"), ("top_users", "user"))
DASHBOARD_DIMS = ("environment", "service", "provider", "model", "user", "tag")  # dashboard/filters.py FILTER_DIMS


@dataclass(frozen=True)
class DigestFigures:
    digest: DigestConfig
    window: TimeRange
    previous: TimeRange
    totals: dict[str, Any]
    groups: dict[str, list[dict[str, Any]]]  # by_model, by_service, top_users
    movers: dict[str, Any]
    trend: list[dict[str, Any]]
    firing: list[Alert]
    link: str
    budgets: list[dict[str, Any]] = field(default_factory=list)


def period_selection(digest: DigestConfig, end: datetime) -> Selection:
    """The period ending at `end`: a local day (or week) in the digest's zone, so 23 or 25 hours across a DST
    change (Python subtracts a timedelta from a zoned time on the wall clock)."""
    filters = Filters.parse({k: list(v) for k, v in digest.filters.items()})
    start = (end.astimezone(ZoneInfo(digest.tz)) - digest.length).astimezone(UTC)
    return Selection(TimeRange(start, end), filters)


def dashboard_link(base: str, digest: DigestConfig, window: TimeRange, page: str = "cost") -> str:
    """The dashboard page filtered as the digest: its window (a custom range) and the filters the dashboard has."""
    params: list[tuple[str, str]] = [
        ("from", window.start.isoformat().replace("+00:00", "Z")),
        ("to", window.end.isoformat().replace("+00:00", "Z")),
    ]
    if digest.tz != "UTC":
        params.append(("tz", digest.tz))
    for dim in DASHBOARD_DIMS:
        params += [(dim, v) for v in digest.filters.get(dim, ())]
    return f"{base.rstrip('/')}/{page}?{urlencode(params)}"


def compute(cur: duckdb.DuckDBPyConnection, digest: DigestConfig, end: datetime, dashboard_base: str) -> DigestFigures:
    selection = period_selection(digest, end)
    window = selection.range
    totals = table_rows(compare_previous(cur, StatsQuery(selection, TOTAL_METRICS)))
    groups = {
        section: table_rows(
            compare_previous(
                cur,
                StatsQuery(selection, GROUP_METRICS, (dim,), order_by="cost_usd", limit=digest.top_n),
            )
        )
        for section, dim in GROUPS
    }
    movers = what_changed(cur, selection, window.previous(), "cost_usd", ("service", "model"), limit=digest.top_n)
    bucket = Bucket.HOUR if digest.period == "day" else Bucket.DAY
    trend = table_rows(
        run(cur, StatsQuery(selection, TREND_METRICS, bucketing=Bucketing(bucket, ZoneInfo(digest.tz), window)))
    )
    firing = [a for a in alerts_for_notification(cur, end) if a.firing and a.starts_at <= end]
    budgets = [evaluate(cur, budget, end) for budget in load_budgets(cur)]
    return DigestFigures(
        digest,
        window,
        window.previous(),
        totals[0] if totals else {},
        groups,
        movers.as_dict(),
        trend,
        firing,
        dashboard_link(dashboard_base, digest, window),
        budgets,
    )


# Budget figures in the CSV: (metric, key of the evaluation); "previous" carries the budget's amount.
BUDGET_FIGURES = (
    ("spent_usd", "spent_usd"),
    ("forecast_usd", "forecast_usd"),
    ("forecast_low_usd", "forecast_low_usd"),
    ("forecast_high_usd", "forecast_high_usd"),
    ("spent_share", "spent_share"),
)
CSV_COLUMNS = ("section", "group", "metric", "now", "previous", "delta", "delta_pct", "period_from", "period_to")


def csv_rows(figures: DigestFigures) -> list[dict[str, Any]]:
    """Every figure of the digest, one per row, as the CSV attachment carries them."""
    window = {"period_from": figures.window.start.isoformat(), "period_to": figures.window.end.isoformat()}
    rows: list[dict[str, Any]] = []

    def compared(section: str, group: str, source: Mapping[str, Any], metrics: tuple[str, ...]) -> None:
        for m in metrics:
            rows.append(
                {
                    "section": section,
                    "group": group,
                    "metric": m,
                    "now": source.get(m),
                    "previous": source.get(f"{m}_prev"),
                    "delta": source.get(f"{m}_delta"),
                    "delta_pct": source.get(f"{m}_delta_pct"),
                    **window,
                }
            )

    compared("totals", "", figures.totals, TOTAL_METRICS)
    for section, dim in GROUPS:
        for row in figures.groups[section]:
            compared(section, "" if row[dim] is None else str(row[dim]), row, GROUP_METRICS)
    for mover in figures.movers["contributors"]:
        rows.append(
            {
                "section": "movers",
                "group": " ".join(f"{d}={mover[d]}" for d in figures.movers["dimensions"]),
                "metric": "cost_usd",
                "now": mover["now"],
                "previous": mover["before"],
                "delta": mover["contribution"],
                "delta_pct": mover["share_of_change"],
                **window,
            }
        )
    for point in figures.trend:
        for m in TREND_METRICS:
            rows.append(
                {"section": "trend", "group": point["bucket"], "metric": m, "now": point[m], "previous": None}
                | {"delta": None, "delta_pct": None, **window}
            )
    for b in figures.budgets:
        for metric, key in BUDGET_FIGURES:
            rows.append(
                {"section": "budgets", "group": b["budget"]["name"], "metric": metric, "now": b[key]}
                | {"previous": b["budget"]["amount_usd"], "delta": None, "delta_pct": None, **window}
            )
    for alert in figures.firing:
        rows.append(
            {
                "section": "firing_alerts",
                "group": " ".join(f"{k}={v}" for k, v in sorted(alert.labels.items())),
                "metric": "value",
                "now": alert.value,
                "previous": alert.threshold,
                "delta": None,
                "delta_pct": None,
                **window,
            }
        )
    return rows
