"""Budget routes (/api/v1/budgets/...): `router` reads (status of every budget, one budget's series), and
`write_router` changes (create, replace, delete), which need the editor role.

A budget belongs to the projects its `project` filter names; one without that filter spans every project. So a
budget is shown to whoever may view all of its projects, and changed by whoever may edit all of them (a budget
over every project: the role on every project). A budget the asker may not see is "not found", never "forbidden",
so its existence is not told. Every change is written to the audit log in its own transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request
from starlette.responses import Response

from analytics import budgets as budgets_mod
from analytics.access import principal_of, requires
from analytics.api_context import Api
from analytics.responses import OrjsonResponse
from analytics.timewin import parse_instant, parse_zone
from core.access import Role

router = APIRouter(prefix="/budgets", tags=["budgets"], dependencies=[requires(Role.viewer)])
write_router = APIRouter(prefix="/budgets", tags=["budgets"], dependencies=[requires(Role.editor)])
BudgetBody = Annotated[Any, Body(description="name, amount_usd, period (month/week/rolling), days, tz, filters, meta")]
BudgetName = Annotated[str, Path(description="the budget's name")]
AtParam = Annotated[str | None, Query(alias="at", description="evaluate as at this instant (ISO 8601); default now")]


def _allowed(request: Request, budget: budgets_mod.Budget, role: Role) -> bool:
    """Whether the asker holds `role` on every project the budget covers."""
    principal = principal_of(request)
    projects = budget.filters.get("project")
    if not projects:
        return principal.everywhere(role)
    return all(principal.can(role, p) for p in projects)


def _check_change(request: Request, budget: budgets_mod.Budget) -> None:
    if not budget.filters.get("project"):
        if not principal_of(request).everywhere(Role.editor):
            raise HTTPException(403, "not allowed: a budget over every project needs the editor role on every project")
        return
    if not _allowed(request, budget, Role.viewer):
        raise HTTPException(404, f"no budget {budget.name!r}")
    if not _allowed(request, budget, Role.editor):
        raise HTTPException(403, "not allowed: changing this budget needs the editor role on all of its projects")


def _at(raw: str | None) -> datetime:
    return parse_instant(raw, parse_zone("UTC"), "at") if raw else datetime.now(UTC)


@router.get("", summary="Every budget with spend to date, burn rate, forecast, interval and crossing date")
def list_budgets(request: Request, api: Api, at: AtParam = None) -> Any:
    when = _at(at)
    with api.cursor() as db:
        found = [b for b in budgets_mod.load_budgets(db) if _allowed(request, b, Role.viewer)]
        out = [budgets_mod.evaluate(db, b, when) for b in found]
    return {"budgets": out}


@router.get("/{name}", summary="One budget's status with its daily spend and forecast series")
def get_budget(request: Request, api: Api, name: BudgetName, at: AtParam = None) -> Any:
    with api.cursor() as db:
        found = [b for b in budgets_mod.load_budgets(db) if b.name == name and _allowed(request, b, Role.viewer)]
        if not found:
            return OrjsonResponse({"error": f"no budget {name!r}"}, status_code=404)
        return budgets_mod.evaluate(db, found[0], _at(at))


@write_router.post("", summary="Create a budget", status_code=201)
def create_budget(request: Request, api: Api, body: BudgetBody) -> Response:
    budget = budgets_mod.parse_budget(body)
    _check_change(request, budget)
    with api.cursor() as db:
        stored = budgets_mod.save_budget(db, budget, actor=principal_of(request))
    return OrjsonResponse(stored.as_dict(), status_code=201)


@write_router.put("/{name}", summary="Replace a budget (API budgets only)")
def replace_budget(request: Request, api: Api, name: BudgetName, body: BudgetBody) -> Any:
    budget = budgets_mod.parse_budget(body)
    _check_change(request, budget)
    with api.cursor() as db:
        old = [b for b in budgets_mod.load_budgets(db) if b.name == name]
        if old:
            _check_change(request, old[0])
        try:
            stored = budgets_mod.save_budget(db, budget, replace_name=name, actor=principal_of(request))
        except LookupError as exc:
            return OrjsonResponse({"error": str(exc)}, status_code=404)
    return stored.as_dict()


@write_router.delete("/{name}", summary="Delete a budget (API budgets only)")
def remove_budget(request: Request, api: Api, name: BudgetName) -> Any:
    with api.cursor() as db:
        old = [b for b in budgets_mod.load_budgets(db) if b.name == name]
        if old:
            _check_change(request, old[0])
        try:
            budgets_mod.delete_budget(db, name, actor=principal_of(request))
        except LookupError as exc:
            return OrjsonResponse({"error": str(exc)}, status_code=404)
    return {"deleted": name}
