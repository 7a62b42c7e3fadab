"""The alerting service in-process over a real store file, with a controlled clock: the schedule (aligned
instants, nothing evaluated twice, also after a restart), rules file edge cases, API rules and deletion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.queries import connection_cursor
from alerts.rules import RuleError
from alerts.service import Alerting, RuleConflict, RuleNotFound
from tests.alert_calls import DASHBOARD, Store, minute_of_calls

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
RULES = """\
rules:
  - name: EveryMinute
    metric: calls
    window: 5m
    op: ">"
    critical: 100
  - name: Every30s
    metric: error_rate
    window: 1m
    op: ">"
    critical: 0.5
    interval: 30s
"""
SPEC = {"name": "ApiErrors", "metric": "errors", "window": "1m", "op": ">", "critical": 0}


def service(store: Store, path: Path, clock: list[datetime]) -> Alerting:
    alerting = Alerting(store.states, lambda: connection_cursor(store.db), path, DASHBOARD, lambda: clock[0])
    alerting.load()
    return alerting


def test_rules_are_evaluated_at_their_aligned_instants_once(tmp_path: Path):
    store = Store(tmp_path / "data", minute_of_calls(T0, 4, 4))
    (tmp_path / "alerts.yaml").write_text(RULES)
    clock = [T0 + timedelta(seconds=45)]
    alerting = service(store, tmp_path / "alerts.yaml", clock)
    assert alerting.run_due(clock[0]) == 2
    health = store.states.health()
    assert health["EveryMinute"]["evaluated_at"] == T0 and health["Every30s"]["evaluated_at"] == T0 + timedelta(
        seconds=30
    )
    assert alerting.run_due(T0 + timedelta(seconds=59)) == 0  # nothing new is due
    assert alerting.run_due(T0 + timedelta(seconds=61)) == 2  # both: 12:01:00 is a multiple of 30 s and 60 s
    # A restarted server does not evaluate an instant twice (it reads the last evaluation from the store).
    again = service(store, tmp_path / "alerts.yaml", clock)
    assert again.run_due(T0 + timedelta(seconds=75)) == 0
    assert again.run_due(T0 + timedelta(seconds=95)) == 1  # only Every30s at 12:01:30
    store.close()


def test_no_file_missing_file_and_name_conflicts(tmp_path: Path):
    store = Store(tmp_path / "data", [])
    path = tmp_path / "alerts.yaml"
    clock = [T0]
    alerting = service(store, path, clock)
    assert alerting.rules() == [] and alerting.file.problems == ()
    path.write_text(RULES)
    alerting.tick()
    assert [r.name for r in alerting.rules()] == ["EveryMinute", "Every30s"]
    path.unlink()  # an editor that deletes before writing must not drop the rules
    alerting.tick()
    assert len(alerting.rules()) == 2 and "file missing" in alerting.file.problems[0].message
    # An API rule may not take a file rule's name, and a file rule may not take an API rule's.
    with pytest.raises(RuleConflict):
        alerting.create(SPEC | {"name": "EveryMinute"})
    alerting.create(SPEC)
    path.write_text(RULES.replace("EveryMinute", "ApiErrors"))
    alerting.tick()
    assert alerting.file.problems[0].field == "name" and alerting.file.problems[0].line == 2
    assert {r.name for r in alerting.rules()} == {"EveryMinute", "Every30s", "ApiErrors"}
    with pytest.raises(RuleConflict):
        alerting.delete("Every30s")
    with pytest.raises(RuleNotFound):
        alerting.delete("Nope")
    with pytest.raises(RuleError):
        alerting.update("ApiErrors", SPEC | {"window": "0m"})
    store.close()


def test_a_deleted_api_rule_resolves_its_alerts_at_the_next_tick(tmp_path: Path):
    store = Store(tmp_path / "data", minute_of_calls(T0, 4, 2))
    clock = [T0 + timedelta(minutes=1)]
    alerting = service(store, tmp_path / "alerts.yaml", clock)
    alerting.create(SPEC)
    alerting.tick()
    (inst,) = store.states.instances("ApiErrors")
    assert inst.state.value == "firing" and inst.value == 2
    alerting.delete("ApiErrors")
    clock[0] += timedelta(seconds=10)
    alerting.tick()
    (inst,) = store.states.instances("ApiErrors")
    assert inst.state.value == "normal" and inst.ends_at == clock[0]
    history = store.states.history("ApiErrors", None, None, 10)
    assert history[0]["reason"] == "rule removed" and history[0]["to_state"] == "normal"
    store.close()


def test_a_rule_deleted_while_a_tick_reads_the_rules_has_its_alerts_resolved(tmp_path: Path):
    store = Store(tmp_path / "data", minute_of_calls(T0, 4, 2))
    clock = [T0 + timedelta(minutes=1)]
    alerting = service(store, tmp_path / "alerts.yaml", clock)
    alerting.create(SPEC)
    alerting.tick()
    assert [i.state.value for i in store.states.instances("ApiErrors")] == ["firing"]
    rules = alerting.rules

    def rules_then_a_delete() -> list:
        taken = rules()
        alerting.delete("ApiErrors")  # the API's thread, right after the tick took the rules
        return taken

    alerting.rules = rules_then_a_delete  # type: ignore[method-assign]
    clock[0] += timedelta(seconds=10)
    alerting.tick()  # still evaluates the rule it took
    del alerting.rules
    clock[0] += timedelta(seconds=10)
    alerting.tick()
    (inst,) = store.states.instances("ApiErrors")
    assert inst.state.value == "normal" and inst.ends_at == clock[0]
    assert store.states.history("ApiErrors", None, None, 1)[0]["reason"] == "rule removed"
    store.close()


def test_state_and_history_commit_together_and_a_failed_tick_is_retried(tmp_path: Path):
    store = Store(tmp_path / "data", minute_of_calls(T0, 4, 4))
    clock = [T0 + timedelta(minutes=1, seconds=5)]
    alerting = service(store, tmp_path / "alerts.yaml", clock)
    alerting.create(SPEC)
    store.db.execute("ALTER TABLE alert_history RENAME TO history_away")  # the history insert will fail
    alerting.tick()
    assert alerting.tick_failures == 1
    assert store.states.instances("ApiErrors") == []  # the instance row was rolled back with its history row
    with store.db.cursor() as cur:
        assert cur.execute("SELECT count(*) FROM alert_instances").fetchall() == [(0,)]
    store.db.execute("ALTER TABLE history_away RENAME TO alert_history")
    clock[0] += timedelta(seconds=1)
    alerting.tick()  # the same instant again: nothing was recorded as evaluated
    (inst,) = store.states.instances("ApiErrors")
    assert inst.state.value == "firing" and inst.starts_at == T0 + timedelta(minutes=1)
    (change,) = store.states.history("ApiErrors", None, None, 10)
    assert (change["from_state"], change["to_state"], change["changed_at"]) == ("normal", "firing", inst.starts_at)
    store.close()
