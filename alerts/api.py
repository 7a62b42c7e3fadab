"""The alerting routes of the read API (/api/v1/alerts/...): rules, instances, history, preview.

Mounted into the read API's app by the server, so the access checks, the unknown-parameter check and the JSON
error format are the read API's. A rule belongs to the projects its `filters.project` names; one without is
server-wide. A principal sees (viewer) or changes (editor) a rule only when it holds that role on each of the rule's
projects (on every project for a server-wide rule); a rule it may not see is answered as missing. Each change is
written to the audit log once, with the rule before and after. A rule body is the rule as data (alerts/rules.py);
a bad field is a 400 naming it: {"error": "...", "field": "window", "rule": "HighErrorRate"}. Rules from the rules
file are listed read-only with their file and line; changing them through the API is a 409.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from starlette.responses import Response

from alerts.backtest import replay
from alerts.machine import Instance
from alerts.queries import StoreSource
from alerts.rules import MAX_WINDOW, Rule, RuleError, parse_duration, parse_rule
from alerts.service import Alerting, RuleConflict, RuleNotFound
from analytics.access import principal_of, requires
from analytics.errors import QueryError
from analytics.responses import OrjsonResponse
from analytics.timewin import parse_instant, parse_zone
from core import audit
from core.access import Principal, Role
from core.store import transaction

# A preview evaluates the rule at up to this many instants: each is the live query over a whole window, so the
# cost is points x calls per window; the step grows in multiples of the interval to stay under it.
PREVIEW_POINTS = 200

router = APIRouter(prefix="/alerts", tags=["alerts"], dependencies=[requires(Role.viewer)])
# Changes to rules, declared for editors; each route checks the rule's own projects.
write_router = APIRouter(prefix="/alerts", tags=["alerts"], dependencies=[requires(Role.editor)])
RuleBody = Annotated[Any, Body(description="the rule as data: name, metric, window, op, warning/critical, ...")]
RuleName = Annotated[str, Path(description="the rule's name (its alertname)")]


def _alerting(request: Request) -> Alerting:
    alerting = getattr(request.app.state, "alerting", None)
    if alerting is None:
        raise QueryError("alerting is not running in this server")
    return alerting


def rule_projects(rule: Rule) -> tuple[str, ...] | None:
    """The projects a rule reads (its filters.project); None: every project (a server-wide rule)."""
    values = rule.filters.dims.get("project")
    return tuple(str(v) for v in values) if values else None


def _may(principal: Principal, rule: Rule, role: Role) -> bool:
    projects = rule_projects(rule)
    if projects is None:
        return principal.everywhere(role)
    return all(principal.can(role, p) for p in projects)


def _visible_rules(request: Request, alerting: Alerting) -> list[Rule]:
    principal = principal_of(request)
    return [r for r in alerting.rules() if _may(principal, r, Role.viewer)]


def _checked_rule(request: Request, alerting: Alerting, name: str, role: Role) -> Rule | Response:
    """The rule if the asker holds `role` on it; 404 if they cannot see it (as if missing), 403 if only see it."""
    principal = principal_of(request)
    try:
        rule = alerting.rule(name)
    except RuleNotFound as exc:
        return _error(404, str(exc))
    if not _may(principal, rule, Role.viewer):
        return _error(404, f"no rule named {name!r}")
    if not _may(principal, rule, role):
        return _error(403, f"not allowed: changing rule {name!r} needs the {role.name} role on its projects")
    return rule


def _audit(request: Request, action: str, name: str, before: Rule | None, after: Rule | None) -> None:
    projects = rule_projects(after or before)  # type: ignore[arg-type]
    alerting = _alerting(request)
    with transaction(request.app.state.access.db, alerting.states.write_lock) as cur:
        audit.record(
            cur,
            principal_of(request),
            action,
            "rule",
            name,
            before=before.spec() if before else None,
            after=after.spec() if after else None,
            project=projects[0] if projects and len(projects) == 1 else None,
        )


def _rule_error(exc: RuleError) -> Response:
    return OrjsonResponse({"error": str(exc), "field": exc.field, "rule": exc.rule}, status_code=400)


def _error(status: int, message: str) -> Response:
    return OrjsonResponse({"error": message}, status_code=status)


def _instance_dict(inst: Instance) -> dict[str, Any]:
    return {
        "fingerprint": inst.fingerprint,
        "rule": inst.rule_id,
        "labels": dict(inst.labels),
        "annotations": dict(inst.annotations or {}),
        "state": inst.state.value,
        "firing": inst.firing,
        "value": inst.value,
        "threshold": inst.threshold,
        "active_at": inst.active_at,
        "starts_at": inst.starts_at,
        "ends_at": inst.ends_at,
        "last_eval_at": inst.last_eval_at,
        "error": inst.error,
    }


def _rule_dict(rule: Rule, health: dict[str, Any] | None, states: Counter[str]) -> dict[str, Any]:
    return {
        "name": rule.name,
        "source": rule.origin.kind,
        "file": rule.origin.file,
        "line": rule.origin.line,
        "read_only": rule.origin.read_only,
        "spec": rule.spec(),
        "health": health,
        "instances": dict(states),
    }


def _states_by_rule(alerting: Alerting) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for inst in alerting.states.instances():
        out.setdefault(inst.rule_id, Counter())[inst.state.value] += 1
    return out


@router.get("/rules", summary="Alert rules (file rules read-only, with their file), their health and instance states")
def list_rules(request: Request) -> Any:
    alerting = _alerting(request)
    health = alerting.states.health()
    states = _states_by_rule(alerting)
    rules = [_rule_dict(r, health.get(r.id), states.get(r.id, Counter())) for r in _visible_rules(request, alerting)]
    evaluation = {"last_cycle": alerting.last_cycle, "tick_failures": alerting.tick_failures}
    return {"rules": rules, "file": alerting.file.as_dict(), "evaluation": evaluation}


@router.get("/rules/{name}", summary="One alert rule")
def get_rule(request: Request, name: RuleName) -> Any:
    alerting = _alerting(request)
    rule = _checked_rule(request, alerting, name, Role.viewer)
    if isinstance(rule, Response):
        return rule
    return _rule_dict(rule, alerting.states.health().get(rule.id), _states_by_rule(alerting).get(rule.id, Counter()))


@write_router.post(
    "/rules", status_code=201, summary="Create a rule (stored in the store, evaluated from the next tick)"
)
def create_rule(request: Request, body: RuleBody) -> Any:
    alerting = _alerting(request)
    try:
        wanted = parse_rule(body)
    except RuleError as exc:
        return _rule_error(exc)
    if not _may(principal_of(request), wanted, Role.editor):
        return _error(403, "not allowed: the rule's filters.project must name projects where you are an editor")
    try:
        rule = alerting.create(body)
    except RuleError as exc:
        return _rule_error(exc)
    except RuleConflict as exc:
        return _error(409, str(exc))
    _audit(request, "create", rule.name, None, rule)
    return OrjsonResponse(_rule_dict(rule, None, Counter()), status_code=201)


@write_router.put("/rules/{name}", summary="Replace a rule created through the API")
def update_rule(request: Request, name: RuleName, body: RuleBody) -> Any:
    alerting = _alerting(request)
    if not isinstance(body, dict):
        return _rule_error(RuleError("rule", "a rule must be a JSON object of fields", name))
    before = _checked_rule(request, alerting, name, Role.editor)
    if isinstance(before, Response):
        return before
    try:
        wanted = parse_rule({**body, "name": body.get("name", name)})
    except RuleError as exc:
        return _rule_error(exc)
    if not _may(principal_of(request), wanted, Role.editor):
        return _error(403, "not allowed: the rule's filters.project must name projects where you are an editor")
    try:
        rule = alerting.update(name, body)
    except RuleError as exc:
        return _rule_error(exc)
    except RuleConflict as exc:
        return _error(409, str(exc))
    except RuleNotFound as exc:
        return _error(404, str(exc))
    if rule.spec() != before.spec():
        _audit(request, "update", name, before, rule)
    return _rule_dict(rule, None, Counter())


@write_router.delete("/rules/{name}", summary="Delete a rule created through the API; its firing alerts resolve")
def delete_rule(request: Request, name: RuleName) -> Any:
    alerting = _alerting(request)
    before = _checked_rule(request, alerting, name, Role.editor)
    if isinstance(before, Response):
        return before
    try:
        alerting.delete(name)
    except RuleConflict as exc:
        return _error(409, str(exc))
    except RuleNotFound as exc:
        return _error(404, str(exc))
    _audit(request, "delete", name, before, None)
    return {"deleted": name}


@router.get("/file", summary="The rules file: path, when it was loaded, its problems (file, line, rule, field)")
def rules_file(request: Request) -> Any:
    principal = principal_of(request)
    shown = _alerting(request).file.as_dict()
    if principal.everywhere(Role.viewer):
        return shown
    # Its problems name rules of every project: a project's member sees the file's path and time only.
    return {k: v for k, v in shown.items() if not isinstance(v, list)}


@router.get("/instances", summary="Alert instances with their state, value, threshold, last evaluation and error")
def instances(
    request: Request,
    rule: Annotated[str | None, Query(description="only this rule's instances")] = None,
    state: Annotated[
        str | None, Query(description="only instances in this state (normal, pending, firing, ...)")
    ] = None,
) -> Any:
    alerting = _alerting(request)
    visible = {r.id for r in _visible_rules(request, alerting)}
    found = alerting.states.instances(rule, state)
    return {"instances": [_instance_dict(i) for i in found if i.rule_id in visible]}


@router.get("/history", summary="State changes of alert instances, newest first")
def history(
    request: Request,
    rule: Annotated[str | None, Query(description="only this rule's changes")] = None,
    from_: Annotated[str | None, Query(alias="from", description="from this instant (ISO 8601)")] = None,
    to: Annotated[str | None, Query(description="before this instant (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> Any:
    utc = parse_zone("UTC")
    start = parse_instant(from_, utc, "from") if from_ else None
    end = parse_instant(to, utc, "to") if to else None
    alerting = _alerting(request)
    visible = {r.id for r in _visible_rules(request, alerting)}
    if principal_of(request).everywhere(Role.viewer):
        return {"history": alerting.states.history(rule, start, end, limit)}
    # Changes of rules this principal may see only (a deleted rule's history is no longer anyone's project).
    if rule is not None:
        rows = alerting.states.history(rule, start, end, limit) if rule in visible else []
    else:
        rows = [r for r in alerting.states.history(None, start, end, 100_000) if r["rule_id"] in visible][:limit]
    return {"history": rows}


@router.post("/preview", summary="A rule's value over past days and when it would have fired (nothing is saved)")
def preview(
    request: Request,
    body: RuleBody,
    last: Annotated[str, Query(description="how far back, e.g. 24h, 7d (at most 31d)")] = "7d",
    to: Annotated[str | None, Query(description="end of the preview (ISO 8601); default now")] = None,
    points: Annotated[int, Query(ge=10, le=2000, description="most evaluation instants")] = PREVIEW_POINTS,
) -> Any:
    alerting = _alerting(request)
    spec = dict(body) if isinstance(body, dict) else body
    if isinstance(spec, dict):
        spec.setdefault("name", "preview")
    principal = principal_of(request)
    visible = principal.projects(Role.viewer)
    if isinstance(spec, dict) and visible is not None:
        filters = spec.get("filters") if spec.get("filters") is not None else {}
        if isinstance(filters, dict) and "project" not in filters:
            filters = dict(filters)
            filters["project"] = sorted(visible)  # a preview reads only the asker's projects
            spec["filters"] = filters
    try:
        rule = parse_rule(spec)
        length = parse_duration(last, "last")
    except RuleError as exc:
        return _rule_error(exc)
    if not _may(principal, rule, Role.viewer):
        return _error(404, "no such project in filters.project")
    if length > MAX_WINDOW:
        raise QueryError("last must be at most 31d")
    end = parse_instant(to, parse_zone("UTC"), "to") if to else alerting.clock()
    start = end - length
    result = replay(
        [rule],
        StoreSource(alerting.cursor),
        start,
        end,
        dashboard_url=alerting.dashboard_url,
        max_points=points,
        with_series=True,
    )
    step: timedelta = result.step[rule.id]
    return {
        "rule": rule.spec(),
        "from": start.astimezone(UTC).isoformat(),
        "to": end.astimezone(UTC).isoformat(),
        "step_seconds": int(step.total_seconds()),
        "exact": step == rule.interval,
        "thresholds": {s.value: v for s, v in rule.thresholds.items()},
        "unit": rule.unit,
        "series": [
            {"group": group, "points": [[t.isoformat(), v] for t, v in points]}
            for group, points in result.series.get(rule.id, {}).items()
        ],
        "firings": [f.as_dict() for f in result.firings],
        "notifications": result.notifications(),
        "evaluated_at": datetime.now(UTC).isoformat(),
    }
