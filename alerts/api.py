"""The alerting routes of the read API (/api/v1/alerts/...): rules, instances, history, preview.

Mounted into the read API's app by the server, so the read keys, the unknown-parameter check and the JSON
error format are the read API's. A rule body is the rule as data (alerts/rules.py); a bad field is a 400 naming
it: {"error": "...", "field": "window", "rule": "HighErrorRate"}. Rules from the rules file are listed read-only
with their file and line; changing them through the API is a 409.
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
from analytics.errors import QueryError
from analytics.responses import OrjsonResponse
from analytics.timewin import parse_instant, parse_zone

# A preview evaluates the rule at up to this many instants: each is the live query over a whole window, so the
# cost is points x calls per window; the step grows in multiples of the interval to stay under it.
PREVIEW_POINTS = 200

router = APIRouter(prefix="/alerts", tags=["alerts"])
RuleBody = Annotated[Any, Body(description="the rule as data: name, metric, window, op, warning/critical, ...")]
RuleName = Annotated[str, Path(description="the rule's name (its alertname)")]


def _alerting(request: Request) -> Alerting:
    alerting = getattr(request.app.state, "alerting", None)
    if alerting is None:
        raise QueryError("alerting is not running in this server")
    return alerting


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
    rules = [_rule_dict(r, health.get(r.id), states.get(r.id, Counter())) for r in alerting.rules()]
    evaluation = {"last_cycle": alerting.last_cycle, "tick_failures": alerting.tick_failures}
    return {"rules": rules, "file": alerting.file.as_dict(), "evaluation": evaluation}


@router.get("/rules/{name}", summary="One alert rule")
def get_rule(request: Request, name: RuleName) -> Any:
    alerting = _alerting(request)
    try:
        rule = alerting.rule(name)
    except RuleNotFound as exc:
        return _error(404, str(exc))
    return _rule_dict(rule, alerting.states.health().get(rule.id), _states_by_rule(alerting).get(rule.id, Counter()))


@router.post("/rules", status_code=201, summary="Create a rule (stored in the store, evaluated from the next tick)")
def create_rule(request: Request, body: RuleBody) -> Any:
    alerting = _alerting(request)
    try:
        rule = alerting.create(body)
    except RuleError as exc:
        return _rule_error(exc)
    except RuleConflict as exc:
        return _error(409, str(exc))
    return OrjsonResponse(_rule_dict(rule, None, Counter()), status_code=201)


@router.put("/rules/{name}", summary="Replace a rule created through the API")
def update_rule(request: Request, name: RuleName, body: RuleBody) -> Any:
    alerting = _alerting(request)
    if not isinstance(body, dict):
        return _rule_error(RuleError("rule", "a rule must be a JSON object of fields", name))
    try:
        rule = alerting.update(name, body)
    except RuleError as exc:
        return _rule_error(exc)
    except RuleConflict as exc:
        return _error(409, str(exc))
    except RuleNotFound as exc:
        return _error(404, str(exc))
    return _rule_dict(rule, None, Counter())


@router.delete("/rules/{name}", summary="Delete a rule created through the API; its firing alerts resolve")
def delete_rule(request: Request, name: RuleName) -> Any:
    alerting = _alerting(request)
    try:
        alerting.delete(name)
    except RuleConflict as exc:
        return _error(409, str(exc))
    except RuleNotFound as exc:
        return _error(404, str(exc))
    return {"deleted": name}


@router.get("/file", summary="The rules file: path, when it was loaded, its problems (file, line, rule, field)")
def rules_file(request: Request) -> Any:
    return _alerting(request).file.as_dict()


@router.get("/instances", summary="Alert instances with their state, value, threshold, last evaluation and error")
def instances(
    request: Request,
    rule: Annotated[str | None, Query(description="only this rule's instances")] = None,
    state: Annotated[
        str | None, Query(description="only instances in this state (normal, pending, firing, ...)")
    ] = None,
) -> Any:
    found = _alerting(request).states.instances(rule, state)
    return {"instances": [_instance_dict(i) for i in found]}


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
    rows = _alerting(request).states.history(rule, start, end, limit)
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
    try:
        rule = parse_rule(spec)
        length = parse_duration(last, "last")
    except RuleError as exc:
        return _rule_error(exc)
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
