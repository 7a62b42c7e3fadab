"""The state machine of one alert instance, as a pure function: (instance, outcome, now, timing) -> instance.

States (alerts/model.py AlertState) and what moves them, with Prometheus' meanings for `for` and
`keep_firing_for` and Grafana's for no-data and error:

- NORMAL: the condition is false (or the instance is new).
- PENDING: the condition is true since `active_at`, for less than `for`. False once -> NORMAL (never notified).
- FIRING: the condition has been true for `for` (at once when `for` is 0). `starts_at` is set, `ends_at` cleared.
- RECOVERING: the condition is false since `keep_firing_since`, for less than `keep_firing_for`; the alert still
  counts as firing (ends_at stays NULL). True again -> FIRING (the same alert); false for keep_firing_for ->
  NORMAL with `ends_at` (resolved).
- NODATA: no value (no calls, an undefined ratio, or the rule's groups all vanished) under `no_data: nodata`.
  Shown, never notified; a firing alert resolves (ends_at) on entering it. Data again -> as from NORMAL.
- ERROR: the query failed. The reason is kept; nothing else changes: a firing alert is neither resolved nor
  re-fired, a pending one keeps its `active_at`, and the next successful evaluation continues from the state
  before the error (`resume_state`), as Prometheus leaves its alerts alone when a rule's query fails.

A transition never depends on wall-clock time, only on `now` passed in, so live evaluation and the backtest give
the same answers, and tests drive the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from alerts.model import AlertState


class Outcome(StrEnum):
    """What one evaluation says about one instance (after the rule's no-data mode was applied)."""

    BREACH = "breach"  # the condition holds
    CLEAR = "clear"  # the condition does not hold (or too few calls, or no data under no_data: ok)
    NODATA = "nodata"  # no value, no_data: nodata
    KEEP = "keep"  # no value, no_data: keep_last
    ERROR = "error"  # the query failed


@dataclass(frozen=True)
class Instance:
    """One alert instance as the store keeps it (a row of alert_instances)."""

    fingerprint: str
    rule_id: str
    labels: Mapping[str, str]
    state: AlertState = AlertState.NORMAL
    annotations: Mapping[str, str] | None = None
    value: float | None = None
    threshold: float | None = None
    active_at: datetime | None = None  # condition true since (pending since)
    starts_at: datetime | None = None  # fired at (the current or last episode)
    ends_at: datetime | None = None  # resolved at; None while firing
    keep_firing_since: datetime | None = None  # condition false since, while RECOVERING
    resume_state: AlertState | None = None  # the state under an ERROR
    last_eval_at: datetime | None = None
    error: str | None = None

    @property
    def firing(self) -> bool:
        """Counts as firing for notification (FIRING, RECOVERING, or an ERROR over one of those)."""
        return self.starts_at is not None and self.ends_at is None


def step(
    inst: Instance,
    outcome: Outcome,
    now: datetime,
    *,
    for_: timedelta,
    keep_firing_for: timedelta,
    error: str | None = None,
) -> Instance:
    """The instance after one evaluation at `now`."""
    if outcome is Outcome.ERROR:
        base = inst.resume_state if inst.state is AlertState.ERROR else inst.state
        return replace(inst, state=AlertState.ERROR, resume_state=base, error=error, last_eval_at=now)
    # Back from an error: continue from the state the error interrupted.
    if inst.state is AlertState.ERROR:
        inst = replace(inst, state=inst.resume_state or AlertState.NORMAL)
    inst = replace(inst, resume_state=None, error=None, last_eval_at=now)
    state = inst.state
    if outcome is Outcome.KEEP:
        return inst
    if outcome is Outcome.BREACH:
        if state in (AlertState.NORMAL, AlertState.NODATA):
            inst = replace(inst, active_at=now, keep_firing_since=None)
            return _fire(inst, now) if for_ <= timedelta(0) else replace(inst, state=AlertState.PENDING)
        if state is AlertState.PENDING:
            assert inst.active_at is not None
            return _fire(inst, now) if now - inst.active_at >= for_ else inst
        return replace(inst, state=AlertState.FIRING, keep_firing_since=None)  # FIRING, RECOVERING
    if outcome is Outcome.CLEAR:
        if state is AlertState.FIRING:
            if keep_firing_for > timedelta(0):
                return replace(inst, state=AlertState.RECOVERING, keep_firing_since=now)
            return _resolve(inst, now, AlertState.NORMAL)
        if state is AlertState.RECOVERING:
            assert inst.keep_firing_since is not None
            if now - inst.keep_firing_since >= keep_firing_for:
                return _resolve(inst, now, AlertState.NORMAL)
            return inst
        return replace(inst, state=AlertState.NORMAL, active_at=None)
    # NODATA
    if state in (AlertState.FIRING, AlertState.RECOVERING):
        return _resolve(inst, now, AlertState.NODATA)
    return replace(inst, state=AlertState.NODATA, active_at=None)


def _fire(inst: Instance, now: datetime) -> Instance:
    return replace(inst, state=AlertState.FIRING, starts_at=now, ends_at=None, keep_firing_since=None)


def _resolve(inst: Instance, now: datetime, to: AlertState) -> Instance:
    return replace(inst, state=to, ends_at=now, active_at=None, keep_firing_since=None)
