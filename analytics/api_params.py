"""Request parameters shared by the read API's routes: the time window, the filters, and strict checking.

Filters are one query parameter per dimension (repeat it for "any of": `?service=a&service=b`), plus
`meta=key=value` for metadata and `q` for free-text search. A parameter the route does not document is a 400, so
a typo (`servce=`) never silently widens a query.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Query, Request

from analytics.access import visible_projects
from analytics.dimensions import DIMENSIONS
from analytics.errors import QueryError
from analytics.query import Selection, parse_selection


@dataclass(frozen=True)
class Window:
    selection: Selection
    zone: ZoneInfo


def _window_dependency():
    """A FastAPI dependency whose signature lists every dimension, so each appears in the OpenAPI document."""
    params = [
        inspect.Parameter(
            "from_",
            inspect.Parameter.KEYWORD_ONLY,
            default=Query(None, alias="from", description="start, ISO 8601 (local to tz when no offset)"),
            annotation=str | None,
        ),
        inspect.Parameter(
            "to",
            inspect.Parameter.KEYWORD_ONLY,
            default=Query(None, description="end (exclusive), ISO 8601; default now"),
            annotation=str | None,
        ),
        inspect.Parameter(
            "last",
            inspect.Parameter.KEYWORD_ONLY,
            default=Query(None, description="instead of from: a duration before `to`, e.g. 15m, 24h, 7d, 4w"),
            annotation=str | None,
        ),
        inspect.Parameter(
            "tz",
            inspect.Parameter.KEYWORD_ONLY,
            default=Query("UTC", description="IANA time zone for buckets and times without an offset"),
            annotation=str,
        ),
        inspect.Parameter(
            "meta",
            inspect.Parameter.KEYWORD_ONLY,
            default=Query(None, description="metadata filter key=value (repeatable)"),
            annotation=list[str] | None,
        ),
        inspect.Parameter(
            "q",
            inspect.Parameter.KEYWORD_ONLY,
            default=Query(
                None,
                description="search text: model, service, user, session, span name, error type or message, trace id",
            ),
            annotation=str | None,
        ),
    ]
    for dim in DIMENSIONS.values():
        params.append(
            inspect.Parameter(
                dim.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=Query(None, description=f"filter: {dim.help} (repeat for any of; 'null' for missing)"),
                annotation=list[str] | None,
            )
        )

    params.insert(0, inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request))

    def window(request: Request, **kwargs: Any) -> Window:
        dims = {name: kwargs[name] for name in DIMENSIONS if kwargs.get(name)}
        selection, zone = parse_selection(
            kwargs["from_"], kwargs["to"], kwargs["last"], kwargs["tz"], dims, kwargs["meta"] or (), kwargs["q"]
        )
        # Every window is cut to the projects the asker may read: no route can forget it.
        return Window(replace(selection, projects=visible_projects(request)), zone)

    window.__signature__ = inspect.Signature(params, return_annotation=Window)  # type: ignore[attr-defined]
    return window


window_params = _window_dependency()
WindowParam = Annotated[Window, Depends(window_params)]


def reject_unknown_params(request: Request) -> None:
    """Every query parameter must be one the route documents (taken from the OpenAPI document itself)."""
    route = request.scope.get("route")
    if route is None:
        return
    allowed = _documented(request, route.path, request.method.lower())
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise QueryError(f"unknown parameter(s): {', '.join(unknown)}; see {request.scope.get('root_path', '')}/docs")


_DOCUMENTED: dict[tuple[str, str], set[str]] = {}


def _documented(request: Request, path: str, method: str) -> set[str]:
    key = (path, method)
    if key not in _DOCUMENTED:
        spec = request.app.openapi()
        operation = spec.get("paths", {}).get(path, {}).get(method, {})
        _DOCUMENTED[key] = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
    return _DOCUMENTED[key]
