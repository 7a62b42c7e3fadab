"""Budgets: a USD amount for the calls of a filter over a period, with spend to date, burn rate and a forecast.

A budget's filter is the read API's (project, service, tag, model, user, ..., and meta.<key>): the same
validation, so an unknown filter is refused the same way. Periods: "month" (the calendar month in the budget's
time zone), "week" (Monday to Sunday in its zone) or "rolling" (the last `days` days; its forecast is the spend of
the trailing window `days` days from now). Spend is analytics' cost_usd (sum over priced calls).
Signals (what alerts and the digest read): spent_share = spent / amount, forecast_share = forecast / amount,
the thresholds crossed among 50/80/100 %, and overrun (the forecast's expected total above the amount).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import orjson

from analytics.errors import QueryError
from analytics.forecast import crossing_day, forecast
from analytics.query import Filters, Selection
from analytics.stats import StatsQuery, run
from analytics.timewin import Bucket, Bucketing, TimeRange, parse_zone
from core import audit
from core.access import Principal
from core.store import transaction

PERIODS = ("month", "week", "rolling")
THRESHOLDS = (0.5, 0.8, 1.0)
HISTORY_DAYS = 112  # complete days of spend the forecast learns weekday factors and the level from
BUDGET_FIELDS = ("name", "filters", "meta", "period", "days", "tz", "amount_usd")


@dataclass(frozen=True)
class Budget:
    name: str
    amount_usd: float
    period: str = "month"
    days: int | None = None
    tz: str = "UTC"
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    meta: tuple[str, ...] = ()
    source: str = "api"
    budget_id: int | None = None

    def selection_filters(self) -> Filters:
        return Filters.parse(self.filters, self.meta)

    def as_dict(self) -> dict[str, Any]:
        return {
            "budget_id": self.budget_id,
            "name": self.name,
            "amount_usd": self.amount_usd,
            "period": self.period,
            "days": self.days,
            "tz": self.tz,
            "filters": {k: list(v) for k, v in self.filters.items()},
            "meta": list(self.meta),
            "source": self.source,
        }


def parse_budget(raw: Mapping[str, Any], *, source: str = "api") -> Budget:
    """A budget from request or config values; QueryError names what is wrong."""
    if not isinstance(raw, Mapping):
        raise QueryError("a budget must be an object (name, amount_usd, period, filters, ...)")
    unknown = set(raw) - set(BUDGET_FIELDS)
    if unknown:
        raise QueryError(f"unknown budget field(s) {', '.join(sorted(unknown))}; known: {', '.join(BUDGET_FIELDS)}")
    name = str(raw.get("name") or "").strip()
    if not name or len(name) > 100:
        raise QueryError("name is required (at most 100 characters)")
    amount = raw.get("amount_usd")
    if isinstance(amount, bool) or not isinstance(amount, int | float | str):
        raise QueryError("amount_usd is required: a positive number of USD")
    try:
        amount_f = float(amount)
    except ValueError:
        raise QueryError(f"amount_usd: {amount!r} is not a number") from None
    if not amount_f > 0 or amount_f == float("inf"):
        raise QueryError(f"amount_usd must be more than 0 (got {amount!r}): a budget of 0 would always be spent")
    period = str(raw.get("period") or "month")
    if period not in PERIODS:
        raise QueryError(f"period: {period!r} is not one of {', '.join(PERIODS)}")
    days = raw.get("days")
    if period == "rolling":
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 366:
            raise QueryError("days: a rolling budget needs a whole number of days from 1 to 366")
    elif days is not None:
        raise QueryError("days: only a rolling budget has days")
    tz = str(raw.get("tz") or "UTC")
    parse_zone(tz)
    filters_raw = raw.get("filters") or {}
    if not isinstance(filters_raw, Mapping):
        raise QueryError("filters must be an object of dimension -> value or list of values")
    filters = {
        str(k): tuple(str(x) for x in (v if isinstance(v, list | tuple) else [v])) for k, v in filters_raw.items()
    }
    meta_raw = raw.get("meta") or []
    meta = tuple(str(m) for m in (meta_raw if isinstance(meta_raw, list | tuple) else [meta_raw]))
    budget = Budget(name, amount_f, period, days, tz, filters, meta, source)
    budget.selection_filters()  # an unknown dimension or bad value is a QueryError here
    return budget


# ---- the store -------------------------------------------------------------------------------------------------


def load_budgets(db: duckdb.DuckDBPyConnection) -> list[Budget]:
    rows = db.execute(
        "SELECT budget_id, name, source, filters, period, days, tz, amount_usd FROM budgets ORDER BY name"
    ).fetchall()
    out = []
    for budget_id, name, source, filters, period, days, tz, amount in rows:
        spec = orjson.loads(filters)
        out.append(
            Budget(
                name,
                amount,
                period,
                days,
                tz,
                {k: tuple(v) for k, v in spec["dims"].items()},
                tuple(spec["meta"]),
                source,
                budget_id,
            )
        )
    return out


def save_budget(
    db: duckdb.DuckDBPyConnection, budget: Budget, *, replace_name: str | None = None, actor: Principal | None = None
) -> Budget:
    """Insert (or replace the budget named `replace_name`) in one transaction, with its audit row when `actor`
    (a person or key) made the change (the config file's budgets are synced without one)."""
    with transaction(db) as cur:
        return _save(cur, budget, replace_name, actor)


def _save(cur: duckdb.DuckDBPyConnection, budget: Budget, replace_name: str | None, actor: Principal | None) -> Budget:
    """save_budget's work inside the caller's transaction."""
    before = None
    if replace_name is not None:
        found = cur.execute("SELECT budget_id, source FROM budgets WHERE name = ?", [replace_name]).fetchall()
        before = next((b.as_dict() for b in load_budgets(cur) if b.name == replace_name), None)
        if not found:
            raise LookupError(f"no budget {replace_name!r}")
        if found[0][1] == "config" and budget.source != "config":
            raise QueryError(f"budget {replace_name!r} comes from the config file: change it there")
        cur.execute("DELETE FROM budgets WHERE name = ?", [replace_name])
    elif cur.execute("SELECT count(*) FROM budgets WHERE name = ?", [budget.name]).fetchone()[0]:  # type: ignore[index]
        raise QueryError(f"a budget named {budget.name!r} exists already")
    (budget_id,) = cur.execute("SELECT coalesce(max(budget_id), 0) + 1 FROM budgets").fetchone()  # type: ignore[misc]
    spec = {"dims": {k: list(v) for k, v in budget.filters.items()}, "meta": list(budget.meta)}
    cur.execute(
        "INSERT INTO budgets VALUES (?, ?, ?, ?, ?, ?, ?, ?, now())",
        [
            budget_id,
            budget.name,
            budget.source,
            orjson.dumps(spec).decode(),
            budget.period,
            budget.days,
            budget.tz,
            budget.amount_usd,
        ],
    )
    if actor is not None:
        after = Budget(**{**budget.__dict__, "budget_id": budget_id}).as_dict()
        action = "update" if replace_name is not None else "create"
        audit.record(cur, actor, action, "budget", budget.name, before=before, after=after, project=_project(budget))
    return Budget(**{**budget.__dict__, "budget_id": budget_id})


def delete_budget(db: duckdb.DuckDBPyConnection, name: str, *, actor: Principal | None = None) -> None:
    """Delete an API budget (and write its audit row when `actor` made the change) in one transaction."""
    found = [b for b in load_budgets(db) if b.name == name]
    if not found:
        raise LookupError(f"no budget {name!r}")
    if found[0].source == "config":
        raise QueryError(f"budget {name!r} comes from the config file: remove it there")
    with transaction(db) as cur:
        cur.execute("DELETE FROM budgets WHERE name = ?", [name])
        if actor is not None:
            audit.record(cur, actor, "delete", "budget", name, before=found[0].as_dict(), project=_project(found[0]))


def _project(budget: Budget) -> str | None:
    """The audit row's project: the budget's one project, else None (a budget over several or every project)."""
    projects = budget.filters.get("project") or ()
    return projects[0] if len(projects) == 1 else None


def sync_config_budgets(db: duckdb.DuckDBPyConnection, configured: list[Budget]) -> None:
    """The config file's [[budgets]] replace the stored config budgets (API budgets are kept), in one transaction:
    nodes of a lake starting together each replace the whole set, one after the other (never both halves)."""
    with transaction(db) as cur:
        cur.execute("DELETE FROM budgets WHERE source = 'config'")
        for budget in configured:
            _save(cur, budget, None, None)


# ---- evaluation --------------------------------------------------------------------------------------------------


def period_bounds(budget: Budget, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the budget's current period, as aware datetimes in its zone."""
    zone = ZoneInfo(budget.tz)
    local = now.astimezone(zone)
    today = datetime(local.year, local.month, local.day, tzinfo=zone)
    if budget.period == "month":
        start = today.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    elif budget.period == "week":
        start = today - timedelta(days=today.weekday())
        end = start + timedelta(days=7)
    else:
        days = budget.days or 30
        return now - timedelta(days=days), now + timedelta(days=days)
    # re-anchor to the zone (DST): midnight local of those dates
    return _midnight(start.date(), zone), _midnight(end.date(), zone)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def daily_spend(
    db: duckdb.DuckDBPyConnection, filters: Filters, start: datetime, end: datetime, tz: str
) -> dict[date, float]:
    """Spend (analytics' cost_usd) per local day of `tz`: the read API's own daily buckets, answered from the
    hourly rollups where that is exact (`GET /api/v1/stats?metrics=cost_usd&bucket=day&tz=...`)."""
    zone = ZoneInfo(tz)
    selection = Selection(TimeRange(start.astimezone(UTC), end.astimezone(UTC)), filters)
    bucketing = Bucketing(Bucket.DAY, zone, selection.range)
    table = run(db, StatsQuery(selection, ("cost_usd",), bucketing=bucketing))
    out = {}
    for bucket, cost in zip(table["bucket"].to_pylist(), table["cost_usd"].to_pylist(), strict=True):
        if cost is not None:
            out[bucket.astimezone(zone).date()] = float(cost)
    return out


def evaluate(db: duckdb.DuckDBPyConnection, budget: Budget, now: datetime | None = None) -> dict[str, Any]:
    """Spend to date, burn rate, forecast with interval, crossing date and signals of one budget."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    zone = ZoneInfo(budget.tz)
    local_now = now.astimezone(zone)
    today = local_now.date()
    filters = budget.selection_filters()
    start, end = period_bounds(budget, now)
    if budget.period == "rolling":
        days = budget.days or 30
        history_start = _midnight(today - timedelta(days=max(HISTORY_DAYS, days)), zone)
    else:
        history_start = _midnight(start.date() - timedelta(days=HISTORY_DAYS), zone)
    by_day = daily_spend(db, filters, history_start, now, budget.tz)
    if budget.period == "rolling":
        spent = _spend_between(db, filters, now - timedelta(days=budget.days or 30), now)
    else:
        spent = sum(v for d, v in by_day.items() if d >= start.date())
    first_day = history_start.date()
    hist_days = [first_day + timedelta(days=i) for i in range((today - first_day).days)]
    history = [by_day.get(d, 0.0) for d in hist_days]
    # drop leading days before any spend (a new project has no history, not a history of zeros)
    first_spend = next((i for i, v in enumerate(history) if v > 0), len(history))
    hist_days, history = hist_days[first_spend:], history[first_spend:]
    seconds_left_today = (_midnight(today + timedelta(days=1), zone) - local_now).total_seconds()
    frac_left = max(0.0, min(1.0, seconds_left_today / 86400))
    if budget.period == "rolling":
        days = budget.days or 30
        remaining = [today + timedelta(days=i) for i in range(days + 1)]
        base = 0.0  # the trailing window N days from now holds only days still to come
    else:
        remaining = [today + timedelta(days=i) for i in range((end.date() - today).days)]
        base = spent
    fc = forecast(history, [d.weekday() for d in hist_days], base, [d.weekday() for d in remaining], frac_left)
    cross = crossing_day(base, fc.remaining, budget.amount_usd)
    elapsed_days = max((now - start).total_seconds() / 86400, 1e-9) if budget.period != "rolling" else budget.days
    result = {
        "budget": budget.as_dict(),
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "spent_usd": spent,
        "burn_rate_usd_per_day": spent / elapsed_days if elapsed_days else None,
        "forecast_usd": fc.expected,
        "forecast_low_usd": fc.low,
        "forecast_high_usd": fc.high,
        "interval_level": fc.level,
        "forecast_method": fc.method,
        "crossing_date": remaining[cross].isoformat() if cross is not None else None,
        "spent_share": spent / budget.amount_usd,
        "forecast_share": fc.expected / budget.amount_usd,
        "thresholds_crossed": [t for t in THRESHOLDS if spent >= t * budget.amount_usd],
        "overrun": fc.expected > budget.amount_usd,
        "daily": [
            {"day": d.isoformat(), "spent_usd": by_day.get(d, 0.0)}
            for d in sorted(by_day)
            if budget.period == "rolling" or d >= start.date()
        ],
        "forecast_daily": [
            {"day": d.isoformat(), "expected_usd": x} for d, x in zip(remaining, fc.remaining, strict=True)
        ],
    }
    result["seconds"] = time.perf_counter() - started
    return result


def _spend_between(db: duckdb.DuckDBPyConnection, filters: Filters, start: datetime, end: datetime) -> float:
    table = run(db, StatsQuery(Selection(TimeRange(start, end), filters), ("cost_usd",)))
    value = table["cost_usd"].to_pylist()[0] if table.num_rows else None
    return float(value or 0.0)


def budget_signals(
    db: duckdb.DuckDBPyConnection, at: datetime, names: tuple[str, ...] = ()
) -> dict[str, dict[str, float]]:
    """The budget metrics (analytics/metrics.py BUDGET_METRICS) of every budget (or those named) at `at`."""
    out = {}
    for budget in load_budgets(db):
        if names and budget.name not in names:
            continue
        out[budget.name] = signals_of(evaluate(db, budget, at))
    return out


def signals_of(result: Mapping[str, Any]) -> dict[str, float]:
    amount = result["budget"]["amount_usd"]
    return {
        "budget_spent_share": result["spent_share"],
        "budget_forecast_share": result["forecast_share"],
        "budget_forecast_high_share": result["forecast_high_usd"] / amount,
    }
