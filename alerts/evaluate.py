"""One evaluation of a set of rules at one instant: query, decide each instance's outcome, step its state machine.

Instances are Grafana's multi-dimensional ones: a rule yields one instance per group (its group-by values) and
severity (warning, critical). Per instance:

- its value is the rule's metric over [at - window, at) for its group (for a relative rule: the % change against
  the baseline window, (value - baseline) / |baseline| * 100, as the read API's compare=true; no value when the
  baseline is 0 or missing);
- no value (no calls, an undefined statistic) -> the rule's no_data mode;
- fewer calls than min_calls -> the condition is false;
- otherwise value <op> the severity's threshold.

A group that disappears from the answer is a missing series (Grafana, Prometheus): its instance clears (a firing
one resolves, after keep_firing_for), and once normal it is forgotten. When a grouped rule's answer has no group
at all, its groups are all missing series and one instance without group labels (the most severe) takes the
no_data mode, as Grafana's no-data alert does (with keep_last, every instance keeps its state instead).

Everything an evaluation changes (instances, history, rule health) is handed to the state store, which writes it
in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from alerts.machine import Instance, Outcome, step
from alerts.model import AlertState, fingerprint
from alerts.queries import GroupKey, MetricSource, Plan, Row, plan, window_range
from alerts.render import annotations, format_value
from alerts.rules import NoData, Rule, Severity

# A normal instance of a vanished group is kept this long after it resolved, so notification can send the resolve.
KEEP_RESOLVED = timedelta(days=1)


@dataclass(frozen=True)
class Transition:
    """A state change of one instance: a row of alert_history."""

    at: datetime
    rule_id: str
    fingerprint: str
    labels: Mapping[str, str]
    from_state: AlertState
    to_state: AlertState
    value: float | None
    threshold: float | None
    reason: str


@dataclass(frozen=True)
class RuleHealth:
    """How a rule's last evaluation went: a row of alert_rule_status."""

    rule_id: str
    evaluated_at: datetime
    duration_ms: float
    health: str  # ok | error
    error: str | None
    series: int


@dataclass
class Changes:
    """What one evaluation writes."""

    at: datetime
    instances: list[Instance] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    history: list[Transition] = field(default_factory=list)
    health: list[RuleHealth] = field(default_factory=list)
    queries: int = 0
    query_seconds: float = 0.0


def instance_labels(rule: Rule, severity: Severity, group: Mapping[str, str | None]) -> dict[str, str]:
    return {
        "alertname": rule.name,
        "severity": severity.value,
        **rule.labels,
        **{dim: "" if value is None else value for dim, value in group.items()},
    }


def percent_change(value: float | None, baseline: float | None) -> float | None:
    if value is None or baseline is None or baseline == 0:
        return None
    return (value - baseline) / abs(baseline) * 100.0


def no_data_outcome(rule: Rule, severity: Severity) -> Outcome:
    if rule.no_data is NoData.OK:
        return Outcome.CLEAR
    if rule.no_data is NoData.ALERTING:
        return Outcome.BREACH if severity is rule.top_severity else Outcome.CLEAR
    if rule.no_data is NoData.KEEP_LAST:
        return Outcome.KEEP
    return Outcome.NODATA


def decide(rule: Rule, severity: Severity, value: float | None, calls: int | None) -> tuple[Outcome, str]:
    threshold = rule.thresholds[severity]
    if value is None:
        return no_data_outcome(rule, severity), "no data"
    if rule.min_calls and (calls or 0) < rule.min_calls:
        return Outcome.CLEAR, f"{calls or 0} calls, fewer than min_calls {rule.min_calls}"
    shown = f"{format_value(value, rule.unit)} {rule.op.value} {format_value(threshold, rule.unit)}"
    if rule.op.holds(value, threshold):
        return Outcome.BREACH, shown
    return Outcome.CLEAR, "not " + shown


class StateStore:
    """Where instances live between evaluations (the DuckDB store, or memory for a backtest)."""

    def load(self, rule_ids: Sequence[str]) -> list[Instance]:
        raise NotImplementedError

    def save(self, changes: Changes) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class Series:
    value: float | None
    calls: int | None
    baseline: float | None


class Evaluator:
    def __init__(self, source: MetricSource, states: StateStore, dashboard_url: str) -> None:
        self.source = source
        self.states = states
        self.dashboard_url = dashboard_url

    def evaluate(self, rules: Sequence[Rule], at: datetime) -> Changes:
        """Evaluate `rules` at `at` and save what changed; returns the changes."""
        changes = Changes(at)
        if not rules:
            return changes
        the_plan = plan(rules, at)
        answers: list[dict[GroupKey, Row] | Exception] = []
        timings: list[float] = []
        for query in the_plan.queries:
            started = time.perf_counter()
            try:
                answers.append(self.source.fetch(query))
            except Exception as exc:  # a failed query is the rules' error state, never a crashed scheduler
                answers.append(exc)
            timings.append((time.perf_counter() - started) * 1000)
        known: dict[str, list[Instance]] = {}
        for inst in self.states.load([r.id for r in rules]):
            known.setdefault(inst.rule_id, []).append(inst)
        for rule in rules:
            self._rule(rule, at, the_plan, answers, timings, known.get(rule.id, []), changes)
        self.states.save(changes)
        changes.queries = len(the_plan.queries)
        changes.query_seconds = sum(timings) / 1000
        return changes

    def _rule(
        self,
        rule: Rule,
        at: datetime,
        the_plan: Plan,
        answers: list,
        timings: list[float],
        known: list[Instance],
        changes: Changes,
    ) -> None:
        current_i = the_plan.current[rule.id]
        baseline_i = the_plan.baseline.get(rule.id)
        used = [current_i] if baseline_i is None else [current_i, baseline_i]
        duration = sum(timings[i] for i in used)
        failure = next((answers[i] for i in used if isinstance(answers[i], Exception)), None)
        if failure is not None:
            reason = f"query failed: {type(failure).__name__}: {failure}"[:1000]
            for inst in known:
                self._apply(rule, inst, Outcome.ERROR, reason, at, changes, error=reason)
            changes.health.append(RuleHealth(rule.id, at, duration, "error", reason, len(known)))
            return
        series = self._series(rule, answers[current_i], answers[baseline_i] if baseline_i is not None else None)
        by_fp = {inst.fingerprint: inst for inst in known}
        seen: set[str] = set()
        for key, s in series.items():
            group = dict(zip(rule.group_by, key, strict=True))
            for severity in rule.thresholds:
                labels = instance_labels(rule, severity, group)
                fp = fingerprint(labels)
                seen.add(fp)
                inst = by_fp.get(fp) or Instance(fp, rule.id, labels)
                outcome, reason = decide(rule, severity, s.value, s.calls)
                notes = self._notes(rule, severity, group, labels, s, at)
                self._apply(rule, inst, outcome, reason, at, changes, value=s.value, notes=notes, severity=severity)
        if not series:  # a grouped rule whose answer has no group at all
            self._no_groups(rule, known, at, changes)
        else:
            for inst in known:
                if inst.fingerprint in seen:
                    continue
                severity = Severity(inst.labels.get("severity", rule.top_severity.value))
                self._apply(rule, inst, Outcome.CLEAR, "series gone", at, changes, severity=severity, missing=True)
        changes.health.append(RuleHealth(rule.id, at, duration, "ok", None, len(seen)))

    def _no_groups(self, rule: Rule, known: list[Instance], at: datetime, changes: Changes) -> None:
        """Grafana's no-data for a multi-dimensional rule: the groups' instances are gone (missing series), and
        one instance without group labels (the most severe) takes the no_data mode; keep_last keeps them all."""
        if rule.no_data is NoData.KEEP_LAST:
            for inst in known:
                self._apply(rule, inst, Outcome.KEEP, "no data", at, changes)
            return
        severity = rule.top_severity
        labels = instance_labels(rule, severity, {})
        no_data_fp = fingerprint(labels)
        for inst in known:
            if inst.fingerprint != no_data_fp:
                inst_severity = Severity(inst.labels.get("severity", severity.value))
                self._apply(rule, inst, Outcome.CLEAR, "no data", at, changes, severity=inst_severity, missing=True)
        existing = next((i for i in known if i.fingerprint == no_data_fp), None)
        outcome = no_data_outcome(rule, severity)
        if existing is None and outcome is Outcome.CLEAR:
            return  # nothing to show for an instance that never existed
        inst = existing or Instance(no_data_fp, rule.id, labels)
        notes = self._notes(rule, severity, {}, labels, Series(None, None, None), at)
        self._apply(rule, inst, outcome, "no data", at, changes, severity=severity, notes=notes)

    def _notes(
        self,
        rule: Rule,
        severity: Severity,
        group: Mapping[str, str | None],
        labels: Mapping[str, str],
        s: Series,
        at: datetime,
    ) -> Callable[[], dict[str, str]]:
        """The instance's annotations, rendered only when used (most instances are normal and need none)."""
        start, end = window_range(rule, at)
        return lambda: annotations(
            rule,
            severity,
            group,
            labels,
            value=s.value,
            baseline=s.baseline,
            calls=s.calls,
            start=start,
            end=end,
            dashboard_base_url=self.dashboard_url,
        )

    def _series(self, rule: Rule, current: dict[GroupKey, Row], baseline: dict[GroupKey, Row] | None) -> dict:
        out: dict[GroupKey, Series] = {}
        for key, row in current.items():
            value = row[rule.metric]
            calls = row.get("calls")
            base = None
            if baseline is not None:
                base_row = baseline.get(key)
                base = None if base_row is None else base_row[rule.metric]
                value = percent_change(value, base)
            out[key] = Series(None if value is None else float(value), None if calls is None else int(calls), base)
        return out

    def _apply(
        self,
        rule: Rule,
        inst: Instance,
        outcome: Outcome,
        reason: str,
        at: datetime,
        changes: Changes,
        *,
        value: float | None = None,
        notes: Callable[[], Mapping[str, str]] | None = None,
        severity: Severity | None = None,
        error: str | None = None,
        missing: bool = False,
    ) -> None:
        new = step(inst, outcome, at, for_=rule.for_, keep_firing_for=rule.keep_firing_for, error=error)
        if outcome not in (Outcome.ERROR, Outcome.KEEP):
            threshold = rule.thresholds.get(severity) if severity is not None else inst.threshold
            # Annotations are rendered for instances that are not normal, and on every change (a resolve keeps
            # the text of the moment it resolved, for the resolve message); a normal instance keeps its old ones.
            rendered = notes is not None and (new.state is not AlertState.NORMAL or new.state is not inst.state)
            new = replace(new, value=value, threshold=threshold, annotations=notes() if rendered else inst.annotations)
        if new.state is not inst.state or (inst.state is AlertState.ERROR and new.error != inst.error):
            changes.history.append(
                Transition(
                    at, rule.id, new.fingerprint, new.labels, inst.state, new.state, new.value, new.threshold, reason
                )
            )
        forget = (
            missing
            and new.state is AlertState.NORMAL
            and (new.starts_at is None or (new.ends_at is not None and new.ends_at <= at - KEEP_RESOLVED))
        )
        if forget:
            changes.removed.append(new.fingerprint)
        else:
            changes.instances.append(new)


def retire(instances: Sequence[Instance], at: datetime, reason: str = "rule removed") -> Changes:
    """Instances of rules that no longer exist: firing ones resolve now; the rest are forgotten, except those
    resolved less than KEEP_RESOLVED ago (notification may still have to send their resolve)."""
    changes = Changes(at)
    for inst in instances:
        recently_resolved = (
            inst.starts_at is not None and inst.ends_at is not None and inst.ends_at > at - KEEP_RESOLVED
        )
        if inst.firing:
            new = replace(inst, state=AlertState.NORMAL, ends_at=at, active_at=None, keep_firing_since=None)
            new = replace(new, resume_state=None, error=None, last_eval_at=at)
            changes.instances.append(new)
        elif recently_resolved:
            if inst.state is AlertState.NORMAL:
                continue
            new = replace(inst, state=AlertState.NORMAL, resume_state=None, error=None, active_at=None)
            changes.instances.append(new)
        else:
            new = replace(inst, state=AlertState.NORMAL)
            changes.removed.append(inst.fingerprint)
        if new.state is not inst.state:
            changes.history.append(
                Transition(
                    at,
                    inst.rule_id,
                    inst.fingerprint,
                    inst.labels,
                    inst.state,
                    new.state,
                    inst.value,
                    inst.threshold,
                    reason,
                )
            )
    return changes
