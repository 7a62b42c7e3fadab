"""Replaying rules over stored history: when each would have fired, and how many notifications it would have sent.

The replay runs the live evaluator itself (alerts/evaluate.py: the same queries, the same state machine) at every
instant live evaluation would have used (multiples of each rule's interval since the epoch), with the state kept
in memory. So over the same calls it gives the same firings as `callscope serve` evaluating them as they came.
A notification is counted per instance as Alertmanager would receive it: one when it starts firing, one when it
resolves (grouping and repeat_interval, which belong to notification, are not modelled).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from alerts.evaluate import Evaluator
from alerts.queries import MetricSource
from alerts.rules import Rule
from alerts.store import MemoryStateStore


@dataclass
class Firing:
    """One firing episode of one instance."""

    rule: str
    labels: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None = None  # None: still firing at the end of the replay
    peak: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "labels": self.labels,
            "severity": self.labels.get("severity"),
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "peak": self.peak,
        }


@dataclass
class Replay:
    start: datetime
    end: datetime
    step: dict[str, timedelta]
    evaluations: int = 0
    firings: list[Firing] = field(default_factory=list)
    # Per rule: {group label text: [(time, value), ...]}, when asked for.
    series: dict[str, dict[str, list[tuple[datetime, float | None]]]] = field(default_factory=dict)

    def notifications(self, rule: str | None = None) -> int:
        chosen = [f for f in self.firings if rule is None or f.rule == rule]
        return len(chosen) + sum(1 for f in chosen if f.ends_at is not None)


def grid(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """Multiples of `step` since the epoch in [start, end]: the instants live evaluation uses."""
    s = int(step.total_seconds())
    first = math.ceil(start.timestamp() / s) * s
    last = math.floor(end.timestamp() / s) * s
    return [datetime.fromtimestamp(t, UTC) for t in range(first, last + 1, s)]


def aligned(now: datetime, step: timedelta) -> datetime:
    """The last multiple of `step` since the epoch at or before `now`."""
    s = int(step.total_seconds())
    return datetime.fromtimestamp(math.floor(now.timestamp() / s) * s, UTC)


def replay(
    rules: Sequence[Rule],
    source: MetricSource,
    start: datetime,
    end: datetime,
    *,
    dashboard_url: str = "",
    max_points: int | None = None,
    with_series: bool = False,
) -> Replay:
    """Evaluate `rules` at each of their instants in [start, end]. `max_points` coarsens a rule's step (to a
    multiple of its interval) so it is evaluated at most that many times (the preview's speed limit)."""
    steps: dict[str, timedelta] = {}
    for rule in rules:
        step = rule.interval
        if max_points:
            evaluations = (end - start) / rule.interval
            step = rule.interval * max(1, math.ceil(evaluations / max_points))
        steps[rule.id] = step
    due: dict[datetime, list[Rule]] = {}
    for rule in rules:
        for t in grid(start, end, steps[rule.id]):
            due.setdefault(t, []).append(rule)
    states = MemoryStateStore()
    evaluator = Evaluator(source, states, dashboard_url)
    result = Replay(start, end, steps)
    open_firings: dict[str, Firing] = {}
    by_id = {rule.id: rule for rule in rules}
    for t in sorted(due):
        before = {fp: inst.firing for fp, inst in states.by_fp.items()}
        changes = evaluator.evaluate(due[t], t)
        result.evaluations += len(due[t])
        for inst in changes.instances:
            was = before.get(inst.fingerprint, False)
            if inst.firing and not was:
                firing = Firing(inst.rule_id, dict(inst.labels), inst.starts_at or t, peak=inst.value)
                open_firings[inst.fingerprint] = firing
                result.firings.append(firing)
            elif was and not inst.firing:
                open_firings.pop(inst.fingerprint).ends_at = inst.ends_at
            elif inst.firing and inst.value is not None:
                firing = open_firings[inst.fingerprint]
                upward = by_id[inst.rule_id].op.upward
                worse = max if upward else min
                firing.peak = inst.value if firing.peak is None else worse(firing.peak, inst.value)
            rule = by_id[inst.rule_id]
            if with_series and inst.labels.get("severity") == next(iter(rule.thresholds)).value:
                key = ", ".join(f"{d}={inst.labels.get(d, '')}" for d in rule.group_by) or "all"
                points = result.series.setdefault(inst.rule_id, {}).setdefault(key, [])
                points.append((t, inst.value))
    return result
