"""Read-API routes of drift and anomaly detection: the latest drift verdicts per cell and metric, their history,
the two distributions behind one verdict, an on-demand comparison (e.g. since a release), release markers (listed,
and added by a person), anomalous hours with the filters of their calls, and one anomaly series for charts.

`model` here is the model asked for (request_model), as drift and anomaly cells are keyed by it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Query, Request
from starlette.responses import Response

from analytics import releases
from analytics.access import check_project, requires, visible_projects
from analytics.anomalies import queries as anomaly_queries
from analytics.anomalies.series import SERIES
from analytics.anomalies.series import Scope as SeriesScope
from analytics.api_context import Api, Format
from analytics.drift import results
from analytics.drift.compare import Scope, Windows, compare
from analytics.drift.distribution import distribution
from analytics.drift.job import default_windows, since_release, whole_hour
from analytics.drift.metrics import DRIFT_METRICS
from analytics.errors import QueryError
from analytics.responses import choose_format, table_response
from analytics.timewin import TimeRange, parse_instant, parse_range
from core.access import Role

router = APIRouter(dependencies=[requires(Role.viewer)])
# Changes (release markers) on a router of their own, declared for editors; the route checks the marker's project.
write_router = APIRouter(dependencies=[requires(Role.editor)])
UTC_ZONE = ZoneInfo("UTC")

From = Annotated[str | None, Query(alias="from", description="start, ISO 8601 (UTC when no offset)")]
To = Annotated[str | None, Query(description="end (exclusive), ISO 8601; default now")]
Last = Annotated[str | None, Query(description="instead of from: a duration before `to`, e.g. 24h, 7d, 4w")]
Project = Annotated[str | None, Query(description="project of the ingest key")]
Services = Annotated[list[str] | None, Query(alias="service", description="service (repeat for any of)")]
Models = Annotated[list[str] | None, Query(alias="model", description="model asked for (repeat for any of)")]


def _window(start: str | None, end: str | None, last: str | None, default: timedelta) -> TimeRange:
    if start is None and last is None:
        last = f"{int(default.total_seconds() // 3600)}h"
    return parse_range(start, end, last, UTC_ZONE)


def _metrics(raw: list[str] | None, known: dict[str, Any], what: str) -> tuple[str, ...]:
    names = tuple(n.strip() for item in raw or [] for n in item.split(",") if n.strip())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise QueryError(f"unknown {what}(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return names


# ---------------------------------------------------------------------------------------------- drift


@router.get("/drift", summary="Drift verdicts of a drift run (default the latest) per (service, model) and metric")
def drift(
    request: Request,
    api: Api,
    run_id: Annotated[int | None, Query(ge=1, description="a run (see /drift/runs); default the latest")] = None,
    project: Project = None,
    service: Services = None,
    model: Models = None,
    metric: Annotated[list[str] | None, Query(description="drift metric(s), comma-separated or repeated")] = None,
    drifted: Annotated[bool, Query(description="only the drifted cells")] = False,
    format: Format = None,
) -> Response:
    fmt = choose_format(format, request.headers.get("accept"))
    where = results.ResultFilter(
        project,
        tuple(service or ()),
        tuple(model or ()),
        _metrics(metric, DRIFT_METRICS, "drift metric"),
        drifted,
        visible_projects(request),
    )
    with api.cursor() as db:
        run = run_id or results.latest_run_id(db)
        table = results.results(db, run, where) if run is not None else results.empty()
        info = next((r for r in results.runs(db, limit=1, run_id=run)), None) if run is not None else None
    info = _run_shown(request, info) if info is not None else None
    return table_response(table, fmt, {"run": info, "metrics": {m.name: m.unit for m in DRIFT_METRICS.values()}})


@router.get("/drift/runs", summary="The latest drift runs: when, windows, cells and how many drifted")
def drift_runs(request: Request, api: Api, limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> Any:
    with api.cursor() as db:
        return {"runs": [_run_shown(request, run) for run in results.runs(db, limit=limit)]}


def _run_shown(request: Request, run: dict[str, Any]) -> dict[str, Any]:
    """A run counts cells of every project: those counts are shown only to who sees every project."""
    if visible_projects(request) is None:
        return run
    return {k: v for k, v in run.items() if k not in ("cells", "drifted_cells")}


@router.get("/drift/history", summary="Stored drift verdicts over time (a cell's or metric's history)")
def drift_history(
    request: Request,
    api: Api,
    start: From = None,
    to: To = None,
    last: Last = None,
    project: Project = None,
    service: Services = None,
    model: Models = None,
    metric: Annotated[list[str] | None, Query(description="drift metric(s)")] = None,
    drifted: Annotated[bool, Query(description="only drifted verdicts")] = False,
    format: Format = None,
) -> Response:
    fmt = choose_format(format, request.headers.get("accept"))
    window = _window(start, to, last, timedelta(days=7))
    where = results.ResultFilter(
        project,
        tuple(service or ()),
        tuple(model or ()),
        _metrics(metric, DRIFT_METRICS, "drift metric"),
        drifted,
        visible_projects(request),
    )
    with api.cursor() as db:
        table = results.history(db, where, window.start, window.end)
    return table_response(table, fmt, {"from": window.start.isoformat(), "to": window.end.isoformat()})


def _comparison_windows(
    db: Any,
    api: Api,
    service: str | None,
    project: str | None,
    release: str | None,
    run_id: int | None,
    cell: tuple[str | None, str | None, str | None] | None,
    reference: tuple[str | None, str | None],
    current: tuple[str | None, str | None],
    projects: frozenset[str] | None = None,
) -> Windows:
    """The windows a comparison is over: since a release; or those of a stored run (for one cell: the run's own
    windows for it); or explicit reference_from/to + current_from/to; or the default pair ending at the last whole
    hour."""
    explicit = (*reference, *current)
    if (release is not None) + (run_id is not None) + any(explicit) > 1:
        raise QueryError("give one of release, run_id or explicit windows")
    now = datetime.now(UTC)
    if release is not None:
        if service is None:
            raise QueryError("release needs the service it belongs to")
        marker = releases.find(db, service, release, project, projects)
        return since_release(marker, now, api.drift, whole=True)
    if run_id is not None:
        stored = results.windows_of(db, run_id, cell)
        if stored is None:
            raise QueryError(f"no drift run {run_id}" + (" with that cell" if cell else ""))
        return stored
    if any(explicit):
        if not all(explicit):
            raise QueryError("give reference_from, reference_to, current_from and current_to together")
        names = ("reference_from", "reference_to", "current_from", "current_to")
        rf, rt, cf, ct = (parse_instant(v or "", UTC_ZONE, n) for v, n in zip(explicit, names, strict=True))
        if rt <= rf or ct <= cf:
            raise QueryError("a window is empty or reversed")
        try:
            return Windows(TimeRange(rf, rt), TimeRange(cf, ct), "chosen windows")
        except ValueError as exc:
            raise QueryError(str(exc)) from None
    return default_windows(whole_hour(now), api.drift)


@router.get(
    "/drift/compare",
    summary="Drift computed now: since a release of a service, or over windows you choose (nothing is stored)",
)
def drift_compare(
    request: Request,
    api: Api,
    service: Annotated[str | None, Query(description="only this service (needed with release)")] = None,
    release: Annotated[str | None, Query(description="compare after this release with the reference before it")] = None,
    project: Project = None,
    model: Annotated[str | None, Query(description="only this model (asked for)")] = None,
    metric: Annotated[list[str] | None, Query(description="drift metric(s); default all")] = None,
    reference_from: Annotated[str | None, Query(description="explicit reference start, ISO 8601")] = None,
    reference_to: Annotated[str | None, Query(description="explicit reference end")] = None,
    current_from: Annotated[str | None, Query(description="explicit current start")] = None,
    current_to: Annotated[str | None, Query(description="explicit current end")] = None,
    format: Format = None,
) -> Response:
    fmt = choose_format(format, request.headers.get("accept"))
    metrics = _metrics(metric, DRIFT_METRICS, "drift metric") or None
    projects = visible_projects(request)
    scope = Scope(services=(service,) if service is not None else None, model=model, project=project, projects=projects)
    with api.cursor() as db:
        windows = _comparison_windows(
            db,
            api,
            service,
            project,
            release,
            None,
            None,
            (reference_from, reference_to),
            (current_from, current_to),
            projects,
        )
        rows = compare(db, windows, api.drift, scope, metrics)
    table = results.as_table(rows)
    info = {
        "reference": {"from": windows.reference.start.isoformat(), "to": windows.reference.end.isoformat()},
        "current": {"from": windows.current.start.isoformat(), "to": windows.current.end.isoformat()},
        "baseline": windows.baseline,
    }
    return table_response(table, fmt, info)


@router.get("/drift/distribution", summary="The two distributions behind one verdict (histogram shares and ECDF)")
def drift_distribution(
    request: Request,
    api: Api,
    metric: Annotated[str, Query(description="a drift metric")],
    service: Annotated[str | None, Query(description="the cell's service ('null' for none)")] = None,
    model: Annotated[str | None, Query(description="the cell's model asked for ('null' for none)")] = None,
    project: Annotated[str, Query(description="the cell's project")] = "default",
    run_id: Annotated[int | None, Query(ge=1, description="the windows of this stored run")] = None,
    release: Annotated[str | None, Query(description="since this release of the service")] = None,
    reference_from: Annotated[str | None, Query(description="explicit reference start")] = None,
    reference_to: Annotated[str | None, Query(description="explicit reference end")] = None,
    current_from: Annotated[str | None, Query(description="explicit current start")] = None,
    current_to: Annotated[str | None, Query(description="explicit current end")] = None,
    bins: Annotated[int, Query(ge=2, le=200, description="histogram bins")] = 30,
) -> Any:
    if metric not in DRIFT_METRICS:
        raise QueryError(f"unknown drift metric {metric!r}; known: {', '.join(DRIFT_METRICS)}")
    check_project(request, project, Role.viewer)
    cell = (project, None if service in (None, "null") else service, None if model in (None, "null") else model)
    with api.cursor() as db:
        windows = _comparison_windows(
            db,
            api,
            cell[1],
            project,
            release,
            run_id,
            cell,
            (reference_from, reference_to),
            (current_from, current_to),
        )
        return distribution(db, cell, metric, windows, api.drift, bins=bins)


# ---------------------------------------------------------------------------------------------- releases


@router.get("/releases", summary="Release markers: service.version changes seen in the calls, and markers added here")
def list_releases(
    request: Request,
    api: Api,
    start: From = None,
    to: To = None,
    last: Last = None,
    project: Project = None,
    service: Services = None,
) -> Any:
    window = parse_range(start, to, last, UTC_ZONE) if (start or last) else None
    with api.cursor() as db:
        found = releases.markers(
            db,
            project=project,
            services=tuple(service or ()),
            start=window.start if window else None,
            end=window.end if window else None,
            projects=visible_projects(request),
        )
    return {"releases": [m.as_dict() for m in found]}


@write_router.post(
    "/releases", summary="Add a release marker (e.g. a prompt change that carries no service.version); editors"
)
def add_release(
    request: Request,
    api: Api,
    body: Annotated[
        dict[str, Any],
        Body(
            examples=[{"service": "support-bot", "release": "prompt-v5", "released_at": "2026-01-31T09:00:00Z"}],
            description="service, release (required); released_at (ISO 8601, default now); note; project",
        ),
    ],
) -> Any:
    allowed = {"service", "release", "released_at", "note", "project"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise QueryError(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    for name in allowed:
        if body.get(name) is not None and not isinstance(body[name], str):
            raise QueryError(f"{name} must be a string")
    project = body.get("project") or "default"
    check_project(request, project, Role.editor)
    at = body.get("released_at")
    released_at = parse_instant(at, UTC_ZONE, "released_at") if at else datetime.now(UTC)
    with api.cursor() as db:
        marker = releases.add_marker(
            db,
            project=project,
            service=body.get("service") or "",
            release=body.get("release") or "",
            released_at=released_at,
            note=body.get("note"),
        )
    return {"release": marker.as_dict()}


# ---------------------------------------------------------------------------------------------- anomalies


def _anomaly_filter(
    request: Request,
    project: str | None,
    scope: str | None,
    service: list[str] | None,
    model: list[str] | None,
    metric: list[str] | None,
) -> anomaly_queries.AnomalyFilter:
    try:
        parsed = SeriesScope(scope) if scope is not None else None
    except ValueError:
        raise QueryError(f"scope={scope!r} is not one of service, model") from None
    return anomaly_queries.AnomalyFilter(
        project,
        parsed,
        tuple(service or ()),
        tuple(model or ()),
        _metrics(metric, SERIES, "anomaly metric"),
        visible_projects(request),
    )


Scope_ = Annotated[str | None, Query(alias="scope", description="service or model")]


@router.get("/anomalies", summary="Anomalous hours (newest first), each with the filters that select its calls")
def list_anomalies(
    request: Request,
    api: Api,
    start: From = None,
    to: To = None,
    last: Last = None,
    project: Project = None,
    scope: Scope_ = None,
    service: Services = None,
    model: Models = None,
    metric: Annotated[
        list[str] | None, Query(description="spend, calls, latency_p95, error_rate, rate_limited_share")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> Any:
    window = _window(start, to, last, timedelta(days=7))
    where = _anomaly_filter(request, project, scope, service, model, metric)
    with api.cursor() as db:
        rows = anomaly_queries.anomalies(db, window, where, limit=limit)
    return {
        "from": window.start.isoformat(),
        "to": window.end.isoformat(),
        "units": {name: m.unit for name, m in SERIES.items()},
        "anomalies": rows,
    }


@router.get("/anomalies/series", summary="Scored hours of anomaly series: value, seasonal baseline, spread, score")
def anomaly_series(
    request: Request,
    api: Api,
    start: From = None,
    to: To = None,
    last: Last = None,
    project: Project = None,
    scope: Scope_ = None,
    service: Services = None,
    model: Models = None,
    metric: Annotated[list[str] | None, Query(description="anomaly metric(s)")] = None,
    format: Format = None,
) -> Response:
    fmt = choose_format(format, request.headers.get("accept"))
    window = _window(start, to, last, timedelta(days=7))
    where = _anomaly_filter(request, project, scope, service, model, metric)
    with api.cursor() as db:
        table = anomaly_queries.series(db, window, where)
    return table_response(table, fmt, {"from": window.start.isoformat(), "to": window.end.isoformat()})
