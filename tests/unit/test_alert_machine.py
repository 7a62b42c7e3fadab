"""The alert instance state machine, transition by transition, with the clock passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.machine import Instance, Outcome, step
from alerts.model import AlertState

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
B, C, N, K, E = Outcome.BREACH, Outcome.CLEAR, Outcome.NODATA, Outcome.KEEP, Outcome.ERROR


def run(outcomes: list[Outcome], *, for_: timedelta = 2 * MIN, keep: timedelta = 2 * MIN) -> list[Instance]:
    """The instance after each outcome, evaluated one minute apart from T0."""
    inst = Instance("fp", "rule", {"alertname": "rule", "severity": "critical"})
    out = []
    for i, outcome in enumerate(outcomes):
        inst = step(inst, outcome, T0 + i * MIN, for_=for_, keep_firing_for=keep, error="boom")
        out.append(inst)
    return out


def states(instances: list[Instance]) -> list[str]:
    return [i.state.value for i in instances]


def test_pending_for_then_firing_then_recovering_for_keep_firing_for_then_resolved():
    got = run([C, B, B, B, B, C, C, C])
    assert states(got) == [
        "normal",
        "pending",
        "pending",
        "firing",  # true since T0+1m, for 2m: fires at T0+3m (>= for, as Prometheus)
        "firing",
        "recovering",
        "recovering",
        "normal",  # false since T0+5m, keep_firing_for 2m: resolved at T0+7m
    ]
    assert got[1].active_at == T0 + MIN and got[1].starts_at is None
    assert got[3].starts_at == T0 + 3 * MIN and got[3].ends_at is None and got[3].firing
    assert got[5].keep_firing_since == T0 + 5 * MIN and got[5].firing and got[5].ends_at is None
    assert got[7].ends_at == T0 + 7 * MIN and not got[7].firing
    assert got[7].starts_at == T0 + 3 * MIN  # the resolved episode keeps its start, for the resolve message


def test_pending_that_clears_never_fires():
    got = run([B, B, C, B])
    assert states(got) == ["pending", "pending", "normal", "pending"]
    assert all(i.starts_at is None for i in got)
    assert got[3].active_at == T0 + 3 * MIN  # a new pending period starts over


def test_for_zero_fires_at_once_and_keep_zero_resolves_at_once():
    got = run([B, C], for_=timedelta(0), keep=timedelta(0))
    assert states(got) == ["firing", "normal"]
    assert got[0].starts_at == T0 and got[1].ends_at == T0 + MIN


def test_recovering_that_breaches_again_is_the_same_alert():
    got = run([B, B, B, C, B, C, C, C])
    assert states(got) == ["pending", "pending", "firing", "recovering", "firing", "recovering", "recovering", "normal"]
    assert {i.starts_at for i in got[2:]} == {T0 + 2 * MIN}  # never re-fired: one notification episode
    assert got[4].keep_firing_since is None and got[5].keep_firing_since == T0 + 5 * MIN
    assert got[7].ends_at == T0 + 7 * MIN


def test_nodata_resolves_a_firing_alert_and_data_restarts_pending():
    got = run([B, B, B, N, N, B, B, B])
    assert states(got) == ["pending", "pending", "firing", "nodata", "nodata", "pending", "pending", "firing"]
    assert got[3].ends_at == T0 + 3 * MIN and not got[3].firing
    assert got[5].active_at == T0 + 5 * MIN
    assert got[7].starts_at == T0 + 7 * MIN and got[7].ends_at is None  # a new episode


def test_keep_last_changes_nothing_and_advances_no_timer():
    got = run([B, K, K, K, B])
    assert states(got) == ["pending", "pending", "pending", "pending", "firing"]
    assert got[3].active_at == T0  # still the first breach: keep_last does not reset the pending timer
    firing = run([B, B, B, K, K])
    assert states(firing)[2:] == ["firing", "firing", "firing"] and firing[4].starts_at == T0 + 2 * MIN


def test_error_keeps_the_alert_and_resumes_where_it_was():
    got = run([B, B, B, E, E, B, C, C, C])
    assert states(got) == ["pending", "pending", "firing", "error", "error", "firing", "recovering", "recovering",
                           "normal"]  # fmt: skip
    assert got[3].error == "boom" and got[3].resume_state is AlertState.FIRING
    assert got[3].firing and got[4].firing  # a failed query neither resolves nor re-fires
    assert got[5].starts_at == T0 + 2 * MIN and got[5].error is None and got[5].resume_state is None
    pending = run([B, E, B])
    assert states(pending) == ["pending", "error", "firing"]
    assert pending[2].starts_at == T0 + 2 * MIN  # pending since T0 (its timer survived the error): 2m >= for


@pytest.mark.parametrize(
    ("start", "outcome", "expected"),
    [
        ("normal", B, "pending"),
        ("normal", C, "normal"),
        ("normal", N, "nodata"),
        ("normal", K, "normal"),
        ("normal", E, "error"),
        ("pending", C, "normal"),
        ("pending", N, "nodata"),
        ("firing", C, "recovering"),
        ("firing", N, "nodata"),
        ("firing", K, "firing"),
        ("recovering", B, "firing"),
        ("recovering", N, "nodata"),
        ("nodata", B, "pending"),
        ("nodata", C, "normal"),
        ("nodata", K, "nodata"),
    ],
)
def test_each_transition(start: str, outcome: Outcome, expected: str):
    inst = Instance(
        "fp",
        "rule",
        {},
        state=AlertState(start),
        active_at=T0 if start == "pending" else None,
        starts_at=T0 if start in ("firing", "recovering") else None,
        keep_firing_since=T0 if start == "recovering" else None,
    )
    assert step(inst, outcome, T0 + MIN, for_=5 * MIN, keep_firing_for=5 * MIN).state.value == expected
