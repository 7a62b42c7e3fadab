"""Budget routes (/api/v1/budgets/...): `router` reads (status of every budget, one budget's series), and
`write_router` changes (create, replace, delete) so access control can require an editor role on it alone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from starlette.responses import Response

from analytics import budgets as budgets_mod
from analytics.api_context import Api
from analytics.responses import OrjsonResponse
from analytics.timewin import parse_instant, parse_zone

router = APIRouter(prefix="/budgets", tags=["budgets"])
write_router = APIRouter(prefix="/budgets", tags=["budgets"])
BudgetBody = Annotated[Any, Body(description="name, amount_usd, period (month/week/rolling), days, tz, filters, meta")]
BudgetName = Annotated[str, Path(description="the budget's name")]
AtParam = Annotated[str | None, Query(alias="at", description="evaluate as at this instant (ISO 8601); default now")]


def _at(raw: str | None) -> datetime:
    return parse_instant(raw, parse_zone("UTC"), "at") if raw else datetime.now(UTC)


@router.get("", summary="Every budget with spend to date, burn rate, forecast, interval and crossing date")
def list_budgets(api: Api, at: AtParam = None) -> Any:
    when = _at(at)
    with api.cursor() as db:
        found = budgets_mod.load_budgets(db)
        out = [budgets_mod.evaluate(db, b, when) for b in found]
    return {"budgets": out}


@router.get("/{name}", summary="One budget's status with its daily spend and forecast series")
def get_budget(api: Api, name: BudgetName, at: AtParam = None) -> Any:
    with api.cursor() as db:
        found = [b for b in budgets_mod.load_budgets(db) if b.name == name]
        if not found:
            return OrjsonResponse({"error": f"no budget {name!r}"}, status_code=404)
        return budgets_mod.evaluate(db, found[0], _at(at))


@write_router.post("", summary="Create a budget", status_code=201)
def create_budget(api: Api, body: BudgetBody) -> Response:
    budget = budgets_mod.parse_budget(body)
    with api.cursor() as db:
        stored = budgets_mod.save_budget(db, budget)
    return OrjsonResponse(stored.as_dict(), status_code=201)


@write_router.put("/{name}", summary="Replace a budget (API budgets only)")
def replace_budget(api: Api, name: BudgetName, body: BudgetBody) -> Any:
    budget = budgets_mod.parse_budget(body)
    with api.cursor() as db:
        try:
            stored = budgets_mod.save_budget(db, budget, replace_name=name)
        except LookupError as exc:
            return OrjsonResponse({"error": str(exc)}, status_code=404)
    return stored.as_dict()


@write_router.delete("/{name}", summary="Delete a budget (API budgets only)")
def remove_budget(api: Api, name: BudgetName) -> Any:
    with api.cursor() as db:
        try:
            budgets_mod.delete_budget(db, name)
        except LookupError as exc:
            return OrjsonResponse({"error": str(exc)}, status_code=404)
    return {"deleted": name}
