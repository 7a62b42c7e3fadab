"""Price book, re-pricing, price coverage and what-if routes (/api/v1/prices/...).

`router` only reads; `write_router` holds every route that changes something (price entries, re-pricing runs),
so access control can require an editor role on it alone. Price entries are validated by core/pricebook.py: a bad
one is a 400 naming the field or the entry it overlaps, and nothing is stored.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from starlette.responses import Response

from analytics import reprice as reprice_mod
from analytics.access import principal_of, requires
from analytics.api_context import Api, Format, ReadApi
from analytics.api_params import WindowParam
from analytics.errors import QueryError
from analytics.query import Params
from analytics.responses import OrjsonResponse, choose_format, table_response
from analytics.whatif import TargetRates, whatif
from core.access import Principal, Role
from core.pricebook import PriceBookError

router = APIRouter(prefix="/prices", tags=["prices"], dependencies=[requires(Role.viewer)])
# The price book is server-wide (a price applies to every project's calls): changing it, or re-pricing, needs the
# editor role on every project.
write_router = APIRouter(prefix="/prices", tags=["prices"], dependencies=[requires(Role.editor, everywhere=True)])
EntryBody = Annotated[Any, Body(description="provider, model (name or glob), input_mtok, output_mtok, ...")]
EntryId = Annotated[int, Path(description="the price entry's id")]


def _prices(api: ReadApi) -> Any:
    if api.prices is None:
        raise QueryError("the price book is not available in this server")
    return api.prices


def _actor(request: Request) -> Principal:
    """Who made a change, for the audit logs: the signed-in user or key the route's requirement found."""
    return principal_of(request)


def _bad(exc: Exception, status: int = 400) -> Response:
    return OrjsonResponse({"error": str(exc)}, status_code=status)


@router.get("/entries", summary="The price book: entries with effective dates (config file and API)")
def list_entries(api: Api) -> Any:
    return {"entries": [e.as_dict() | {"label": e.label()} for e in _prices(api).entries()]}


@router.get("/audit", summary="Every change of the price book: who, when, old and new entry")
def audit(api: Api, limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> Any:
    return {"changes": _prices(api).audit(limit)}


@write_router.post("/entries", summary="Add a price entry", status_code=201)
def add_entry(request: Request, api: Api, body: EntryBody) -> Any:
    try:
        entry = _prices(api).add(body, _actor(request))
    except PriceBookError as exc:
        return _bad(exc)
    return OrjsonResponse(entry.as_dict() | {"label": entry.label()}, status_code=201)


@write_router.put("/entries/{entry_id}", summary="Change a price entry (API entries only)")
def update_entry(request: Request, api: Api, entry_id: EntryId, body: EntryBody) -> Any:
    try:
        entry = _prices(api).update(entry_id, body, _actor(request))
    except PriceBookError as exc:
        return _bad(exc)
    except LookupError as exc:
        return _bad(exc, 404)
    return entry.as_dict() | {"label": entry.label()}


@write_router.delete("/entries/{entry_id}", summary="Delete a price entry (kept, marked deleted, for the calls)")
def delete_entry(request: Request, api: Api, entry_id: EntryId) -> Any:
    try:
        old = _prices(api).delete(entry_id, _actor(request))
    except PriceBookError as exc:
        return _bad(exc)
    except LookupError as exc:
        return _bad(exc, 404)
    return {"deleted": old.as_dict()}


@write_router.post(
    "/reprice",
    summary="Re-price stored calls of a window (and filters) with the current price book; runs in the background",
    status_code=202,
)
def start_reprice(request: Request, api: Api, window: WindowParam) -> Any:
    if request.query_params.get("from") is None:
        raise QueryError("from is required: the start of the calls to re-price")
    prices = _prices(api)
    if not api.reprice_lock.acquire(blocking=False):
        return _bad(QueryError("a re-pricing run is already running; wait for it"), 409)
    try:
        filters = {k: list(v) for k, v in window.selection.filters.dims.items()}
        progress = reprice_mod.start_run(api.db, window.selection, _actor(request).name, filters)
    except BaseException:
        api.reprice_lock.release()
        raise
    pricer = prices.pricer()

    def work() -> None:
        try:
            reprice_mod.run(api.db, window.selection, pricer, progress)
        finally:
            api.reprice_lock.release()

    threading.Thread(target=work, name=f"callscope-reprice-{progress.run_id}", daemon=True).start()
    return OrjsonResponse({"run_id": progress.run_id, "total": progress.total, "status": "running"}, status_code=202)


@router.get("/reprice/{run_id}", summary="A re-pricing run's progress (scanned of total) and result")
def reprice_status(api: Api, run_id: Annotated[int, Path()]) -> Any:
    with api.cursor() as db:
        found = reprice_mod.get_run(db, run_id)
    if found is None:
        return _bad(LookupError(f"no re-pricing run {run_id}"), 404)
    return found


@router.get("/coverage", summary="Unpriced calls and tokens by model, the unpriced share, genai-prices data age")
def coverage(request: Request, api: Api, window: WindowParam, format: Format = None) -> Any:
    params = Params()
    where = window.selection.where(params)
    tokens = "(coalesce(input_tokens, 0) + coalesce(output_tokens, 0))"
    with api.cursor() as db:
        rows = db.sql(
            f"SELECT provider, coalesce(model, response_model, request_model) AS model, count(*) AS unpriced_calls,"  # noqa: S608
            f" coalesce(sum({tokens}), 0)::BIGINT AS unpriced_tokens FROM calls WHERE {where}"
            " AND pricing = 'unpriced' GROUP BY ALL ORDER BY unpriced_calls DESC LIMIT 500",
            params=params.values,
        ).to_arrow_table()
        params2 = Params()
        totals = db.execute(
            f"SELECT count(*), count(*) FILTER (WHERE pricing = 'unpriced'), coalesce(sum({tokens}), 0),"  # noqa: S608
            f" coalesce(sum({tokens}) FILTER (WHERE pricing = 'unpriced'), 0)"
            f" FROM calls WHERE {window.selection.where(params2)}",
            params2.values,
        ).fetchone()
    n, unpriced, all_tokens, unpriced_tokens = totals  # type: ignore[misc]
    data_date = _prices(api).data_date()
    age = (datetime.now(UTC) - data_date).days if data_date else None
    stale = age is None or age > api.prices_max_age_days
    meta = {
        "calls": n,
        "unpriced_calls": unpriced,
        "unpriced_call_share": unpriced / n if n else None,
        "unpriced_token_share": unpriced_tokens / all_tokens if all_tokens else None,
        "genai_prices_data_date": data_date.date().isoformat() if data_date else None,
        "genai_prices_data_age_days": age,
        "max_age_days": api.prices_max_age_days,
        "warning": (
            f"the installed genai-prices data is {age} days old (its newest price is from"
            f" {data_date.date().isoformat() if data_date else 'unknown'}): update it with"
            " `pip install -U genai-prices` (or `make setup` after raising its pin) and restart, then re-price"
            " (`callscope reprice`) to fix the costs of calls stored meanwhile"
            if stale
            else None
        ),
        "alert_metrics": ["unpriced_call_share", "unpriced_token_share"],
    }
    fmt = choose_format(format, request.headers.get("accept"))
    return table_response(rows, fmt, meta)


@router.get("/whatif", summary="Cost of the same calls (same tokens) on another model, per model pair")
def what_if(
    api: Api,
    window: WindowParam,
    other: Annotated[list[str], Query(description="other model(s) to compare with; default every model seen")] = [],  # noqa: B006
) -> Any:
    prices = _prices(api)

    def rates(model: str) -> TargetRates | None:
        found = prices.target_rates(model)
        return None if found is None else TargetRates(**found)

    with api.cursor() as db:
        rows = whatif(db, window.selection, other, rates)
    return {"rows": rows, "days": window.selection.range.length.total_seconds() / 86400}
