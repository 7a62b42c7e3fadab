"""The alerting API's answers turned into what the Alerts page and the Overview show: counts, table rows, the
state timeline. Plain data in, plain data out (no Streamlit, no requests), so it is tested on its own.

States are the server's (README "Alerts"): normal, pending, firing, recovering (still firing within
keep_firing_for), nodata, error. "Firing" counts firing and recovering instances, as Prometheus does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dashboard import fmt

# Most urgent first: a rule's state is that of its most urgent instance.
STATES = ("firing", "recovering", "pending", "error", "nodata", "normal")
SEVERITIES = ("critical", "warning")
FIXED_LABELS = frozenset({"alertname", "severity"})


def firing_counts(instances: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Firing instances by severity: {"critical": n, "warning": m}."""
    counts = Counter(i["labels"].get("severity") for i in instances if i.get("firing"))
    return {s: counts.get(s, 0) for s in SEVERITIES}


def instance_name(instance: Mapping[str, Any]) -> str:
    """ "rule · group · severity" from an instance's (or a history row's) labels."""
    labels = instance["labels"]
    return f"{labels.get('alertname', '')} · {group_text(instance)} · {labels.get('severity', '')}"


def group_text(instance: Mapping[str, Any], rule_labels: Mapping[str, str] = {}) -> str:
    """The instance's own labels (its group's values), without alertname, severity and the rule's labels."""
    own = {k: v for k, v in instance["labels"].items() if k not in FIXED_LABELS and k not in rule_labels}
    return ", ".join(f"{k}={v or '(none)'}" for k, v in sorted(own.items())) or "all calls"


def unit_of(spec: Mapping[str, Any], units: Mapping[str, str]) -> str:
    """A rule's value unit: the metric's, or % for a rule on the change against a baseline."""
    return "%" if spec.get("relative_to") else units.get(spec.get("metric", ""), "")


def _urgency(instance: Mapping[str, Any], upward: bool) -> tuple[int, int, float]:
    state = STATES.index(instance["state"]) if instance["state"] in STATES else len(STATES)
    severity = 0 if instance["labels"].get("severity") == "critical" else 1
    value = instance.get("value")
    extreme = float("inf") if value is None else (-value if upward else value)
    return state, severity, extreme


def condition_text(spec: Mapping[str, Any], unit: str) -> str:
    """e.g. "> 5.00% (warning), > 25.00% (critical) over 3h"; relative rules say against what."""
    op = spec.get("op", "")
    parts = [f"{op} {fmt.by_unit(unit, spec[s])} ({s})" for s in ("warning", "critical") if spec.get(s) is not None]
    text = ", ".join(parts) + f" over {spec.get('window')}"
    if spec.get("relative_to"):
        against = "the window before" if spec["relative_to"] == "previous_window" else "the same window a week ago"
        text = f"{spec['metric']} change vs {against}: {text}"
    return text


def rule_rows(
    rules: Sequence[Mapping[str, Any]], instances: Iterable[Mapping[str, Any]], units: Mapping[str, str]
) -> list[dict[str, Any]]:
    """One row per rule: where it comes from, its condition, its state and last value, its health."""
    by_rule: dict[str, list[Mapping[str, Any]]] = {}
    for inst in instances:
        by_rule.setdefault(inst["rule"], []).append(inst)
    rows = []
    for rule in rules:
        spec = rule["spec"]
        unit = unit_of(spec, units)
        mine = by_rule.get(rule["name"], [])
        upward = spec.get("op") in (">", ">=")
        top = min(mine, key=lambda i: _urgency(i, upward)) if mine else None
        health = rule.get("health") or {}
        firing = sum(1 for i in mine if i.get("firing"))
        if rule.get("read_only"):
            source = f"file {rule.get('file')}:{rule.get('line')} (read-only)"
        else:
            source = "API (editable)"
        rows.append(
            {
                "rule": rule["name"],
                "state": top["state"] if top else "not evaluated yet",
                "firing": firing,
                "last_value": fmt.by_unit(unit, top.get("value")) if top else fmt.DASH,
                "last_group": group_text(top, spec.get("labels") or {}) if top else "",
                "metric": spec.get("metric"),
                "condition": condition_text(spec, unit),
                "group_by": ", ".join(spec.get("group_by") or []) or "—",
                "evaluated_at": health.get("evaluated_at"),
                "health": health.get("error") or health.get("health") or "",
                "source": source,
                "read_only": bool(rule.get("read_only")),
            }
        )
    order = {s: i for i, s in enumerate(STATES)}
    return sorted(rows, key=lambda r: (order.get(r["state"], len(STATES)), r["rule"]))


def active_rows(
    instances: Iterable[Mapping[str, Any]], specs: Mapping[str, Mapping[str, Any]], units: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Instances that are not normal, most urgent first, their value and threshold in the rule's unit."""
    rows = []
    for inst in instances:
        if inst["state"] == "normal":
            continue
        spec = specs.get(inst["rule"], {})
        unit = unit_of(spec, units)
        rows.append(
            {
                "state": inst["state"],
                "severity": inst["labels"].get("severity", ""),
                "rule": inst["rule"],
                "group": group_text(inst, spec.get("labels") or {}),
                "value": fmt.by_unit(unit, inst.get("value")),
                "threshold": fmt.by_unit(unit, inst.get("threshold")),
                "since": inst.get("starts_at") or inst.get("active_at"),
                "summary": inst.get("error") or (inst.get("annotations") or {}).get("summary", ""),
                "fingerprint": inst["fingerprint"],
                "_urgency": _urgency(inst, spec.get("op") in (">", ">=")),
            }
        )
    rows.sort(key=lambda r: (r.pop("_urgency"), r["rule"], r["group"]))
    return rows


@dataclass(frozen=True)
class Segment:
    """A stretch of time one instance spent in one state."""

    instance: str  # "rule · group · severity"
    state: str
    start: datetime
    end: datetime
    value: float | None
    reason: str | None


def timeline(history: Sequence[Mapping[str, Any]], start: datetime, end: datetime) -> list[Segment]:
    """The non-normal stretches of each instance in [start, end), from its state changes (any order).

    Before an instance's first change in the window it was in that change's `from_state`; after its last, in the
    last `to_state` until `end`.
    """
    changes: dict[str, list[Mapping[str, Any]]] = {}
    for row in history:
        changes.setdefault(row["fingerprint"], []).append(row)
    segments = []
    for rows in changes.values():
        rows = sorted(rows, key=lambda r: _instant(r["changed_at"]))
        first = rows[0]
        name = instance_name(first)
        stretches = [(first["from_state"], start, _instant(first["changed_at"]), None, None)]
        for row, following in zip(rows, [*rows[1:], None], strict=True):
            until = _instant(following["changed_at"]) if following else end
            stretches.append((row["to_state"], _instant(row["changed_at"]), until, row.get("value"), row.get("reason")))
        for state, since, until, value, reason in stretches:
            since, until = max(since, start), min(until, end)
            if state != "normal" and until > since:
                segments.append(Segment(name, state, since, until, value, reason))
    return sorted(segments, key=lambda s: (s.instance, s.start))


def _instant(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def delivery_problems(
    notifications: Sequence[Mapping[str, Any]], since: datetime | None = None
) -> list[Mapping[str, Any]]:
    """Messages not delivered after an attempt: retrying, or failed (given up; with `since`, only those whose last
    attempt was at or after it). In the API's order, newest first."""

    def counts(n: Mapping[str, Any]) -> bool:
        if n.get("status") == "retrying":
            return True
        if n.get("status") != "failed":
            return False
        last = n.get("last_attempt_at")
        return since is None or (last is not None and _instant(last) >= since)

    return [n for n in notifications if counts(n)]


def target_text(notification: Mapping[str, Any]) -> str:
    """Where a message goes, as the API shows it (webhook URLs already masked)."""
    target = notification.get("target") or {}
    if target.get("to"):
        return ", ".join(target["to"])
    return str(target.get("url") or "")
