"""The read API (mounted at /api/v1 by `callscope serve`): statistics, calls, traces and exports as JSON/Arrow/CSV.

Every route reads through its own DuckDB cursor on the server's connection (MVCC snapshot; the writer keeps
writing), at most `api_max_queries` at a time so analytics never starves ingest. Errors in what the caller asked
for are 400 with {"error": reason} and run no SQL. Routes live in routers (analytics/routes_*.py, and those other
packages add through `routers`); this module composes them with the shared checks and error answers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

from analytics import (
    routes_access,
    routes_budgets,
    routes_calls,
    routes_drift,
    routes_prices,
    routes_retention,
    routes_stats,
)
from analytics.access import Access, undeclared
from analytics.api_context import PERCENTILE_DEFINITION, ReadApi
from analytics.api_params import reject_unknown_params
from analytics.errors import QueryError
from analytics.responses import OrjsonResponse
from analytics.sign_in_throttle import SignInThrottle

log = logging.getLogger("callscope.api")


class UndeclaredRoute(RuntimeError):
    """A route that does not say who may call it (analytics/access.py): the app is not built."""


def create_app(read_api: ReadApi, version: str, access: Access, routers: Iterable[APIRouter] = ()) -> FastAPI:
    """The read API: the built-in routers and `routers` (e.g. alerts'), each behind the unknown-parameter check
    and the requirement it declares (analytics/access.py); a route that declares none stops the build."""
    app = FastAPI(
        title="callscope read API",
        version=version,
        description="Statistics, calls, traces and exports of the model calls callscope recorded. "
        "Percentiles: " + PERCENTILE_DEFINITION + ".",
        dependencies=[Depends(reject_unknown_params)],
        default_response_class=OrjsonResponse,
    )
    app.state.read_api = read_api
    app.state.access = access
    app.state.sign_in_throttle = SignInThrottle()
    builtin = (
        routes_stats.router,
        routes_calls.router,
        routes_drift.router,
        routes_drift.write_router,
        routes_budgets.router,
        routes_budgets.write_router,
        routes_prices.router,
        routes_prices.write_router,
        routes_retention.router,
        routes_retention.write_router,
    )
    for router in (*builtin, *routes_access.routers(), *routers):
        app.include_router(router)
    missing = undeclared(app)
    if missing:
        raise UndeclaredRoute(
            "routes without an access requirement (add requires(Role...), signed_in() or public() to their "
            f"router's dependencies; see docs/architecture.md): {', '.join(missing)}"
        )
    _add_error_answers(app)
    return app


def _add_error_answers(app: FastAPI) -> None:
    """Every error as {"error": reason}: 400 for what the caller asked wrongly, 500 (logged) for our faults."""

    @app.exception_handler(QueryError)
    async def query_error(_: Request, exc: QueryError) -> Response:
        return OrjsonResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        reasons = [f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()]
        return OrjsonResponse({"error": "; ".join(reasons)}, status_code=400)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("read API %s failed", request.url.path)
        return OrjsonResponse({"error": f"internal error ({type(exc).__name__}); see the server log"}, status_code=500)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        return OrjsonResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
